"""Bring your own upstream: file.py:Class, module:Class, entry points, HEAR modules, check-upstream."""
import hashlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from superb.benchmark.check_upstream import FAIL, PASS, WARN, check_upstream
from superb.benchmark.cli import main
from superb.upstream import Upstream, UpstreamOutput, build_upstream, conv_output_lengths, get_spec
from superb.upstream import registry

from conftest import write_speech_commands

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "my_upstream.py"
REF = f"{EXAMPLE}:MyUpstream"


# -- the README example ------------------------------------------------------------------------
def test_readme_example_is_the_tested_file():
    code = EXAMPLE.read_text()
    assert 25 <= len(code.splitlines()) <= 40
    readme = (REPO / "README.md").read_text()
    assert "superb.upstreams" in readme
    assert "```python\n" + code + "```" in readme


def test_readme_example_passes_check_upstream_cli():
    exe = Path(sys.executable).with_name("superb")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "superb.benchmark.cli"]
    res = subprocess.run(cmd + ["check-upstream", "examples/my_upstream.py:MyUpstream"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "result: OK (0 failed, 0 warnings)" in res.stdout
    assert re.search(r"PASS\s+frame rate\s+declared 320, measured 320", res.stdout)


def test_readme_example_runs_a_task_and_evaluates_from_elsewhere(tmp_path, monkeypatch, capsys):
    data = write_speech_commands(tmp_path / "sc", speakers=("aaaa0001", "bbbb0002", "cccc0003"), extra_words=("bed",))
    out = tmp_path / "run"
    args = ["run", "--upstream", "examples/my_upstream.py:MyUpstream", "--task", "ks", "--data", str(data),
            "--max-steps", "3", "--set", "runner.eval_every=3", "--set", "batch.max_seconds=8",
            "--upstream-option", "dim=16", "--output", str(out), "--device", "cpu", "--quiet"]
    monkeypatch.chdir(REPO)
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["upstream"]["name"] == REF  # absolute: rebuilt from any working directory
    assert results["config"]["upstream"]["name"] == REF
    assert results["upstream"]["hidden_sizes"] == [16, 16, 16] and results["upstream"]["downsample_rate"] == 320
    assert results["steps"] == 3 and len(results["layer_weights"]) == 3
    # provenance: the code's file and sha256, the parameter count; "parameter-free" only when it is
    up = results["upstream"]
    assert up["code_file"] == str(EXAMPLE.resolve()) and up["code_sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert up["parameters"] == 16 * 400 + 16 + 2 * (16 * 16 + 16)
    assert up["weights"] == "the module's own (no checkpoint given)" and len(up["checkpoint_sha256"]) == 64
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    # the run folder is data: the custom upstream it names runs only when named again
    assert main(["evaluate", str(out), "--quiet"]) == 2
    assert "--trust-run-dir" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--quiet", "--upstream", REF]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["metrics"]["accuracy"] == pytest.approx(results["metrics"]["test"]["accuracy"])
    assert main(["export", str(out)]) == 0
    table = capsys.readouterr().out
    assert "my_upstream.py:MyUpstream" in table and "no SUPERB_s" in table


def test_example_loads_a_checkpoint_and_hub_ids_are_explained(tmp_path, capsys):
    torch.manual_seed(3)
    model = build_upstream(REF, dim=8)
    ckpt = tmp_path / "mine.pt"
    torch.save(model.state_dict(), ckpt)
    again = build_upstream(REF, ckpt=ckpt, dim=8)
    wav = torch.randn(1, 4000)
    assert torch.equal(model(wav, torch.tensor([4000])).hidden_states[-1],
                       again(wav, torch.tensor([4000])).hidden_states[-1])
    assert main(["check-upstream", REF, "--upstream-ckpt", "facebook/hubert-base-ls960"]) == 2
    err = capsys.readouterr().err
    assert "model-hub identifier" in err and "pass its path" in err
    assert main(["run", "--upstream", "facebook/hubert-base-ls960", "--task", "ks"]) == 2
    err = capsys.readouterr().err
    assert "looks like a model-hub identifier" in err and "--upstream-ckpt <its path>" in err


# -- resolution errors --------------------------------------------------------------------------
def test_bad_custom_references_name_the_file_and_class(tmp_path):
    with pytest.raises(ValueError, match=r"file not found: .*nope\.py"):
        get_spec(str(tmp_path / "nope.py") + ":X")
    with pytest.raises(ValueError, match=r"has no class 'Nope'\. Upstream classes there: MyUpstream"):
        get_spec(f"{EXAMPLE}:Nope")
    plain = tmp_path / "plain.py"
    plain.write_text("class NotAnUpstream:\n    pass\n")
    with pytest.raises(ValueError, match=r"plain.py:NotAnUpstream is not a subclass of superb.upstream.Upstream"):
        get_spec(f"{plain}:NotAnUpstream")
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anywhere\n")
    with pytest.raises(ValueError, match=r"importing upstream file .*broken.py failed: ModuleNotFoundError"):
        get_spec(f"{broken}:X")
    with pytest.raises(ValueError, match=r"module 'no_such_pkg_xyz.models' cannot be imported"):
        get_spec("no_such_pkg_xyz.models:Thing")
    with pytest.raises(ValueError, match=r"hear:no_such_hear_xyz: module 'no_such_hear_xyz' cannot be imported"):
        get_spec("hear:no_such_hear_xyz")
    with pytest.raises(ValueError, match=r"takes no checkpoint"):
        (tmp_path / "nockpt.py").write_text(textwrap.dedent("""
            from superb.upstream import Upstream
            class NoCkpt(Upstream):
                def __init__(self):
                    super().__init__()
        """))
        build_upstream(f"{tmp_path / 'nockpt.py'}:NoCkpt", ckpt=EXAMPLE)


def test_module_class_reference(tmp_path, monkeypatch):
    (tmp_path / "superb_test_pkg_mod.py").write_text(EXAMPLE.read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_upstream("superb_test_pkg_mod:MyUpstream", dim=4)
    assert model.hidden_sizes == [4, 4, 4] and model.upstream_name == "superb_test_pkg_mod:MyUpstream"


# -- entry points -----------------------------------------------------------------------------
def test_entry_points_register_plugins_and_report_broken_ones(tmp_path, monkeypatch):
    registry._load_builtins()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    monkeypatch.setattr(registry, "ENTRY_POINT_ERRORS", {})
    (tmp_path / "superb_demo_plugin.py").write_text(EXAMPLE.read_text() + textwrap.dedent("""
        from superb.upstream import UpstreamSpec

        def specs():
            return [UpstreamSpec(name="demo_spec", factory=lambda ckpt, **o: MyUpstream(dim=2), description="demo",
                                 downsample_rate=320, layers="3", needs_weights=False)]
    """))
    dist = tmp_path / "superb_demo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: superb-demo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[superb.upstreams]\ndemo-class = superb_demo_plugin:MyUpstream\ndemo_specs = superb_demo_plugin:specs\n"
        "demo_broken = superb_demo_plugin:DoesNotExist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(RuntimeWarning, match=r"skipping entry point 'demo_broken'"):
        added = registry.load_entry_points(force=True)
    assert sorted(added) == ["demo_class", "demo_spec"]
    assert build_upstream("demo-class", dim=5).hidden_sizes == [5, 5, 5]
    assert build_upstream("demo_spec").hidden_sizes == [2, 2, 2]
    with pytest.raises(KeyError, match=r"entry point 'demo_broken' failed to load: AttributeError"):
        get_spec("demo_broken")


# -- HEAR ---------------------------------------------------------------------------------------
HEAR_MODULE = '''
"""A tiny HEAR-API model: centred 25 ms frames every 10 ms, a fixed linear projection."""
import torch
from torch import nn

HOP_MS, WIN_MS = 10.0, 25.0


class Model(nn.Module):
    def __init__(self, sample_rate):
        super().__init__()
        self.sample_rate = sample_rate
        self.scene_embedding_size = self.timestamp_embedding_size = 6
        g = torch.Generator().manual_seed(0)
        self.proj = nn.Linear(int(sample_rate * WIN_MS / 1000), 6)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=g))


def load_model(model_file_path="", sample_rate=16000):
    model = Model(int(sample_rate))
    if model_file_path:
        model.load_state_dict(torch.load(model_file_path, weights_only=True))
    return model


def get_timestamp_embeddings(audio, model):
    hop, win = int(model.sample_rate * HOP_MS / 1000), int(model.sample_rate * WIN_MS / 1000)
    x = torch.nn.functional.pad(audio, (win // 2, win // 2))
    frames = x.unfold(1, win, hop)[:, : audio.shape[1] // hop + 1]
    with torch.no_grad():
        emb = torch.tanh(model.proj(frames))
    ts = torch.arange(emb.shape[1], dtype=torch.float32) * HOP_MS
    return emb, ts.expand(audio.shape[0], -1)
'''


@pytest.fixture
def hear_module(tmp_path, monkeypatch):
    (tmp_path / "superb_fake_hear.py").write_text(HEAR_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "superb_fake_hear"


def test_hear_module_as_upstream(hear_module):
    up = build_upstream(f"hear:{hear_module}")
    assert up.downsample_rate == 160 and up.hidden_sizes == [6] and up.frame_step_ms == 10.0
    lens = torch.tensor([8000, 3210, 8000])
    wavs = torch.randn(3, 8000)
    wavs[1, 3210:] = 5.0  # padding must not leak into utterance 1
    out = up(wavs, lens)
    assert out.lengths.tolist() == [51, 21, 51] and out.hidden_states[0].shape == (3, 51, 6)
    alone = up(wavs[1:2, :3210], lens[1:2])
    assert torch.equal(out.hidden_states[0][1, :21], alone.hidden_states[0][0])
    report = check_upstream(up, f"hear:{hear_module}", speed_seconds=1.0)
    assert report.ok and report.status("batch invariance") == PASS, report.text()


def test_hear_module_at_another_sample_rate_is_resampled(hear_module):
    up = build_upstream(f"hear:{hear_module}", sample_rate=8000)
    assert up.model_rate == 8000 and up.downsample_rate == 160
    out = up(torch.randn(2, 16000), torch.tensor([16000, 8000]))
    assert out.lengths.tolist() == [101, 51]  # 8000 and 4000 samples at 8 kHz, 80-sample hop


# -- check-upstream finds broken upstreams ----------------------------------------------------
class _Base(Upstream):
    downsample_rate = 320

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 8, 400, 320)

    @property
    def hidden_sizes(self):
        return [8, 8]

    def frames(self, wavs, wav_lens):
        x = self.conv(wavs.unsqueeze(1)).transpose(1, 2)
        return [x, torch.tanh(x)], conv_output_lengths(wav_lens, [(400, 320)])

    def forward(self, wavs, wav_lens):
        hs, lengths = self.frames(wavs, wav_lens)
        return UpstreamOutput(hs, lengths)


class WrongRate(_Base):
    downsample_rate = 160


class Dropout(_Base):
    def forward(self, wavs, wav_lens):
        hs, lengths = self.frames(wavs, wav_lens)
        return UpstreamOutput([F.dropout(h, 0.5, training=True) for h in hs], lengths)


class Leaky(_Base):
    def __init__(self):
        super().__init__()
        self.__dict__["scale"] = torch.ones(1, requires_grad=True)  # not a registered parameter

    def forward(self, wavs, wav_lens):
        hs, lengths = self.frames(wavs, wav_lens)
        return UpstreamOutput([h * self.scale for h in hs], lengths)


class PaddedLengths(_Base):
    def forward(self, wavs, wav_lens):
        hs, _ = self.frames(wavs, wav_lens)
        return UpstreamOutput(hs, torch.full_like(wav_lens, hs[0].shape[1]))


class TimeNorm(_Base):
    def forward(self, wavs, wav_lens):  # normalises over all frames, padding included (like w2v2 Base's CNN)
        hs, lengths = self.frames(wavs, wav_lens)
        return UpstreamOutput([F.layer_norm(h.transpose(1, 2), h.shape[1:2]).transpose(1, 2) for h in hs], lengths)


class WrongShape(_Base):
    @property
    def hidden_sizes(self):
        return [8, 8, 8]


@pytest.mark.parametrize("cls, check, status, text", [
    (WrongRate, "frame rate", FAIL, "declared 160, measured 320"),
    (Dropout, "determinism", FAIL, "two eval-mode runs differ"),
    (Leaky, "frozen", FAIL, "hidden states require grad"),
    (PaddedLengths, "lengths", FAIL, "batched lengths [74, 74, 74] differ from single-utterance lengths [74, 49, 34]"),
    (TimeNorm, "batch invariance", WARN, "padding changes valid frames"),
    (WrongShape, "output", FAIL, "2 hidden states, hidden_sizes declares 3"),
])
def test_check_upstream_finds_contract_violations(cls, check, status, text):
    torch.manual_seed(0)
    report = check_upstream(cls(), speed_seconds=0.5)
    found = next(c for c in report.checks if c.name == check)
    assert found.status == status and text in found.detail, report.text()
    assert report.ok == (status != FAIL)


def test_check_upstream_json_report_and_exit_status(tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main(["check-upstream", "fbank", "--seconds", "1", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["ok"] and data["facts"]["downsample_rate"] == 160 and data["facts"]["measured_downsample_rate"] == 160
    assert data["facts"]["lengths"] == {"24000": 148, "16000": 98, "11200": 68}
    bad = tmp_path / "bad.py"
    bad.write_text(textwrap.dedent("""
        from superb.upstream import Upstream, UpstreamOutput
        import torch
        class Bad(Upstream):
            downsample_rate = 160
            @property
            def hidden_sizes(self):
                return [4]
            def forward(self, wavs, wav_lens):
                return UpstreamOutput([torch.zeros(len(wavs), 3, 4)], torch.full_like(wav_lens, 3))
    """))
    assert main(["check-upstream", f"{bad}:Bad", "--seconds", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  frame rate" in out and "result: FAILED" in out


BROKEN_HEAR = '''
import numpy as np


class Model:
    sample_rate = 16000
    timestamp_embedding_size = 4


def load_model(model_file_path="", fail="load"):
    if fail == "load":  # as hearbaseline's load_model does inside librosa >= 0.10
        raise TypeError("mel() takes 0 positional arguments but 2 were given\\n  (a second line)")
    model = Model()
    model.fail = fail
    return model


def get_timestamp_embeddings(audio, model):
    raise np.linalg.LinAlgError("SVD did not converge")
'''


def test_errors_inside_a_hear_plugin_are_one_line_naming_it(tmp_path, monkeypatch, capsys):
    from superb.benchmark.cli import main
    from superb.upstream.custom import CustomUpstreamError

    (tmp_path / "superb_broken_hear.py").write_text(BROKEN_HEAR)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CustomUpstreamError) as info:
        build_upstream("hear:superb_broken_hear")
    assert str(info.value) == ("hear:superb_broken_hear: its load_model() raised TypeError: mel() takes 0 positional "
                               "arguments but 2 were given (a second line)")
    with pytest.raises(CustomUpstreamError, match=r"^hear:superb_broken_hear: its get_timestamp_embeddings\(\) "
                                                  r"raised LinAlgError: SVD did not converge$"):
        build_upstream("hear:superb_broken_hear", fail="embed")
    assert main(["run", "--upstream", "hear:superb_broken_hear", "--task", "ks", "--data", str(tmp_path / "none"),
                 "--output", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("superb: error: hear:superb_broken_hear: its load_model() raised TypeError")
