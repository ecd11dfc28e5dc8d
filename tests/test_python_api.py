"""The Python API: superb.run with an in-memory module (the example script), evaluate, export."""
from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import superb
from superb.benchmark.runner import RunDirectoryError

REPO = Path(__file__).resolve().parents[1]


def test_import_superb_is_light_and_versioned():
    code = "import sys, superb; print(superb.__version__); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] != "0+unknown" and out[0][0].isdigit() and out[1] == "False"
    assert {"run", "evaluate", "export", "Results"} <= set(dir(superb))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        superb.nope  # noqa: B018


def test_example_runs_an_in_memory_module(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    out = runpy.run_path(str(REPO / "examples" / "python_api.py"))["main"](tmp_path)
    mine = out["mine"]
    assert mine.data["upstream"]["name"] == "in-memory:my_upstream.MyUpstream"
    assert mine.data["upstream"]["weights"] == "in-memory module"
    assert mine.data["upstream"]["parameters"] == sum(p.numel() for p in mine_model_params(tmp_path))
    assert len(mine.data["upstream"]["checkpoint_sha256"]) == 64 and mine.data["steps"] == 6
    assert 0.0 <= mine.score <= 100.0 and mine.primary_metric == "accuracy"
    assert json.loads((tmp_path / "mine-ks" / "results.json").read_text())["metrics"] == mine.metrics
    labels = [u["label"] for u in out["board"]["upstreams"]]
    assert len(labels) == 2 and any("fbank" in x for x in labels)
    # a run folder of an in-memory module cannot be evaluated without the module
    with pytest.raises(RunDirectoryError, match="in-memory upstream .*pass that module again"):
        superb.evaluate(tmp_path / "mine-ks")
    printed = capsys.readouterr().out
    assert "Results(ks / in-memory:my_upstream.MyUpstream" in printed


def mine_model_params(tmp_path):
    from my_upstream import MyUpstream

    torch.manual_seed(0)
    return list(MyUpstream(dim=32).parameters())


def test_overrides_and_bad_upstreams_are_checked(tmp_path):
    with pytest.raises(Exception, match="unknown config key 'runner.total_stepz'"):
        superb.run("fbank", "ks", output=tmp_path / "a", mini_profile="tiny", overrides={"runner.total_stepz": 3})
    with pytest.raises(TypeError, match="lacks hidden_sizes, downsample_rate"):
        superb.run(torch.nn.Linear(2, 2), "ks", output=tmp_path / "b", mini_profile="tiny")
    with pytest.raises(TypeError, match="registered name, a checkpoint path or a torch.nn.Module"):
        superb.run(42, "ks", output=tmp_path / "c")
    res = superb.run("fbank", "KS", output=tmp_path / "d", mini_profile="tiny", progress=False,
                     overrides={"runner": {"total_steps": 2, "eval_every": 2}, "optimizer.lr": 1e-3})
    assert res.data["config"]["optimizer"]["lr"] == 1e-3 and res.data["steps"] == 2
    assert superb.Results.load(tmp_path / "d").metrics == res.metrics


def test_evaluate_settings_are_taken_as_given_not_reparsed():
    """``superb.evaluate(settings=...)`` values are Python values: a str that looks like a number
    (a file called ``1e5``) stays a str, where the command line's ``--set`` parses it as YAML."""
    from superb.benchmark.config import resolve_config
    from superb.benchmark.runner import apply_decode_sets

    api_cfg = resolve_config("asr", use_mini=False)
    apply_decode_sets(api_cfg, {"task.kenlm.lm_path": "1e5", "task.decoder": "kenlm"}, "run")
    assert api_cfg["task"]["kenlm"]["lm_path"] == "1e5" and api_cfg["task"]["decoder"] == "kenlm"
    cli_cfg = resolve_config("asr", use_mini=False)
    apply_decode_sets(cli_cfg, ["task.kenlm.lm_path=1e5"], "run")
    assert cli_cfg["task"]["kenlm"]["lm_path"] == 1e5
    with pytest.raises(ValueError, match="only decoding settings"):
        apply_decode_sets(resolve_config("asr", use_mini=False), {"optimizer.lr": 1.0}, "run")
