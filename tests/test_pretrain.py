"""``superb pretrain`` (generative family): losses by hand, training on the tiny mini corpus, the
exported checkpoints through our loaders and s3prl's experts, exact resume, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import assert_resume_exact, pretrain_log
from golden_utils import assert_states_close, golden_batch, per_utterance
from superb.benchmark.cli import main as cli_main
from superb.upstream import build_upstream
from superb.upstream.apc.model import APCConfig
from superb.upstream.pretrain import apc as apc_obj
from superb.upstream.pretrain import tera as tera_obj
from superb.upstream.pretrain.loop import pretrain

# -- losses by hand --------------------------------------------------------------------------------


def test_apc_loss_by_hand():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(2, 5, 2)).astype(np.float32)
    lengths = [5, 4]
    n = 2
    pred = rng.normal(size=(2, 3, 2)).astype(np.float32)
    total, count = 0.0, 0
    for b in range(2):
        for t in range(lengths[b] - n):  # frame t predicts frame t + n
            for d in range(2):
                total += abs(float(pred[b, t, d]) - float(feats[b, t + n, d]))
                count += 1
    expected = total / count  # 5 pairs x 2 features = 10 terms
    assert count == 10
    got = apc_obj.apc_loss(torch.from_numpy(pred), torch.from_numpy(feats), torch.tensor(lengths), n)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    # padding of utterance 1 (frame 4) and its prediction at t = 2 do not count
    feats[1, 4] = 1e3
    pred[1, 2] = -1e3
    got = apc_obj.apc_loss(torch.from_numpy(pred), torch.from_numpy(feats), torch.tensor(lengths), n)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_apc_objective_predicts_n_frames_ahead():
    # zero GRU weights give zero states (h_t = 0.5 h_{t-1} = 0); residuals add zeros; so the
    # prediction is the postnet bias c at every frame, and the loss is mean |c - x[t + n]|
    cfg = apc_obj.APCPretrainConfig(model=APCConfig(feat_dim=4, hidden_size=4), dropout=0.0, n_future=3)
    obj = apc_obj.APCObjective(cfg)
    with torch.no_grad():
        for p in obj.parameters():
            p.zero_()
        obj.model.postnet.bias.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
    x = np.arange(2 * 7 * 4, dtype=np.float32).reshape(2, 7, 4) / 10.0
    lengths = [7, 5]
    c = np.array([0.5, -1.0, 2.0, 0.0])
    terms = [abs(c[d] - x[b, t + 3, d]) for b in range(2) for t in range(lengths[b] - 3) for d in range(4)]
    assert len(terms) == (4 + 2) * 4
    got = obj.loss(torch.from_numpy(x), torch.tensor(lengths), torch.Generator())
    assert got.item() == pytest.approx(float(np.mean(terms)), abs=1e-5)


def test_reconstruction_loss_by_hand():
    pred = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]], dtype=np.float32)
    orig = np.array([[[0.0, 2.5], [3.0, 1.0], [9.0, 9.0]]], dtype=np.float32)
    mask = np.array([[[True, True], [False, True], [False, False]]])
    expected = (abs(1 - 0) + abs(2 - 2.5) + abs(4 - 1)) / 3  # 1.5
    got = tera_obj.reconstruction_loss(torch.from_numpy(pred), torch.from_numpy(orig), torch.from_numpy(mask))
    assert got.item() == pytest.approx(expected) == pytest.approx(1.5)
    none = tera_obj.reconstruction_loss(torch.from_numpy(pred), torch.from_numpy(orig), torch.zeros(1, 3, 2, dtype=torch.bool))
    assert none.item() == 0.0


def _feats(B=2, T=12, D=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, T, D, generator=g) + 1.0  # no exact zeros


def test_time_alteration_policy():
    cfg = tera_obj.TERAPretrainConfig(mask_proportion=0.5, mask_consecutive_min=2, mask_consecutive_max=2,
                                      mask_frequency=0.0, noise_proportion=0.0)
    feats, lengths = _feats(), torch.tensor([12, 8])
    seen = set()
    for seed in range(40):
        altered, target = tera_obj.alter(feats, lengths, cfg, torch.Generator().manual_seed(seed))
        for b, n in enumerate(lengths.tolist()):
            frames = target[b].any(-1)
            # whole frames only, inside the utterance; round(n * 0.5 / 2) spans of 2 (may overlap)
            assert bool((target[b][frames]).all()) and not bool(frames[n:].any())
            spans = round(n * 0.5 / 2)
            assert 2 <= int(frames.sum()) <= 2 * spans
            assert torch.equal(altered[b][~frames], feats[b][~frames])
            masked = altered[b][frames]
            if bool((masked == 0).all()):
                seen.add("zero")
            elif torch.equal(masked, feats[b][frames]):
                seen.add("unchanged")
            else:  # frames copied from other positions of the same utterance
                rows = {tuple(r.tolist()) for r in feats[b, :n]}
                assert all(tuple(r.tolist()) in rows for r in masked)
                seen.add("random")
    assert seen == {"zero", "unchanged", "random"}


def test_frequency_and_magnitude_alteration():
    cfg = tera_obj.TERAPretrainConfig(mask_proportion=0.0, mask_frequency=0.5, noise_proportion=0.0)
    feats, lengths = _feats(T=6, D=8), torch.tensor([6, 4])
    widths = set()
    for seed in range(30):
        altered, target = tera_obj.alter(feats, lengths, cfg, torch.Generator().manual_seed(seed))
        for b, n in enumerate(lengths.tolist()):
            bins = target[b, 0]
            w = int(bins.sum())
            widths.add(w)
            assert w <= 4  # int(8 * 0.5)
            if w:
                idx = torch.nonzero(bins).view(-1)
                assert idx.tolist() == list(range(int(idx[0]), int(idx[0]) + w))  # one band
            assert bool((target[b, :n] == bins).all()) and not bool(target[b, n:].any())
            assert bool((altered[b][:, bins] == 0).all())
            assert torch.equal(altered[b][:, ~bins], feats[b][:, ~bins])
    assert widths >= {0, 4}
    # magnitude alone: N(0, 0.2) on valid frames, padding untouched, every valid element a target
    cfg = tera_obj.TERAPretrainConfig(mask_proportion=0.0, mask_frequency=0.0, noise_proportion=1.0)
    feats, lengths = torch.zeros(2, 400, 20), torch.tensor([400, 300])
    altered, target = tera_obj.alter(feats, lengths, cfg, torch.Generator().manual_seed(0))
    assert bool(target[0].all()) and bool(target[1, :300].all()) and not bool(target[1, 300:].any())
    assert bool((altered[1, 300:] == 0).all())
    assert float(altered[0].std()) == pytest.approx(0.2, rel=0.05)


def test_tera_objective_reconstructs_the_original():
    cfg, _ = tera_obj.preset("tera", "tiny")
    torch.manual_seed(0)
    obj = tera_obj.TERAObjective("tera", cfg)
    feats, lengths = _feats(B=2, T=30, D=80), torch.tensor([30, 21])
    loss = obj.loss(feats, lengths, torch.Generator().manual_seed(5))
    altered, target = tera_obj.alter(feats, lengths, cfg, torch.Generator().manual_seed(5))
    pred = obj.head(obj.model.encode(altered, lengths)[-1]).detach().numpy()
    f, t = feats.numpy(), target.numpy()
    expected = np.abs(pred - f)[t].mean()
    assert t.sum() > 0 and not np.array_equal(altered.numpy(), f)
    assert loss.item() == pytest.approx(float(expected), abs=1e-6)


# -- training on the tiny mini corpus ----------------------------------------------------------------


#: the test sizes (the tiny presets are sized for minutes of training on the default mini corpus)
_SMALL_TERA = ["model.hidden_size=32", "model.num_layers=2", "model.num_heads=2", "model.intermediate_size=64",
               "loop.lr=2e-3"]
SMALL = {"apc": ["model.hidden_size=32"], "tera": _SMALL_TERA, "mockingjay": _SMALL_TERA}


@pytest.fixture(scope="module")
def trained(mini_data, tmp_path_factory):
    out = {}
    for name, steps in (("apc", 40), ("tera", 60), ("mockingjay", 10)):
        folder = tmp_path_factory.mktemp(f"pt-{name}")
        summary = pretrain(name, folder, data=mini_data, preset="tiny", max_steps=steps, progress=False,
                           sets=SMALL[name])
        out[name] = (folder, summary)
    return out


@pytest.mark.parametrize("name,steps,drop", [("apc", 40, 0.3), ("tera", 60, 0.15)])
def test_loss_falls_on_mini_corpus(trained, name, steps, drop):
    # mean of the last 5 losses at least `drop` below the mean of the first 5 (measured, seed 0:
    # apc 0.78 -> 0.49 in 40 steps, tera 0.79 -> 0.55 in 60 steps; masks make tera's noisier)
    folder, summary = trained[name]
    lines = pretrain_log(folder)
    assert [l["step"] for l in lines] == list(range(1, steps + 1))
    assert all(set(l) == {"step", "loss", "lr", "grad_norm", "wall_s"} for l in lines)
    first = np.mean([l["loss"] for l in lines[:5]])
    last = np.mean([l["loss"] for l in lines[-5:]])
    assert last < (1 - drop) * first, (name, first, last)
    assert summary["num_files"] == 9 and summary["steps"] == steps
    assert (folder / "checkpoints" / "last.pt").is_file() and (folder / f"{name}.ckpt").is_file()


def _s3prl_reference(module, path):
    expert = pytest.importorskip(module).UpstreamExpert(str(path))
    expert.eval()

    def run(wavs):
        with torch.no_grad():
            return list(expert(wavs)["hidden_states"])

    return run


@pytest.mark.parametrize("name,peer", [("apc", "s3prl.upstream.apc.expert"),
                                       ("tera", "s3prl.upstream.mockingjay.expert"),
                                       ("mockingjay", "s3prl.upstream.mockingjay.expert")])
def test_checkpoint_round_trips_through_both_loaders(trained, name, peer):
    folder, _ = trained[name]
    path = folder / f"{name}.ckpt"
    ours = build_upstream(name, path)
    # the weights are the trained ones, bit for bit
    last = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key, value in ours.state_dict().items():
        assert torch.equal(value, last[f"model.{key}"]), key
    wavs, wav_lens, raw = golden_batch((9137, 5003, 12011))
    with torch.no_grad():
        out = ours(wavs, wav_lens)
    ref = _s3prl_reference(peer, path)
    expected = per_utterance(ref, raw)
    ref_lens = [int(ref([w])[0].shape[1]) for w in raw]
    assert len(out.hidden_states) == len(expected) == 3
    worst = assert_states_close(out.hidden_states, expected, out.lengths, ref_lens, what=f"pretrained {name}")
    assert worst <= 1e-4
    from superb.upstream.inspection import inspect_checkpoint

    assert inspect_checkpoint(path)["upstream"] == name


def test_cli_pretrain_then_extract(mini_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(["pretrain", "--objective", "apc", "--data", str(mini_data), "--output", str(out),
                     "--max-steps", "2", "--set", "model.hidden_size=24", "--quiet"]) == 0
    assert "2 steps" in capsys.readouterr().out
    assert [json.loads(l)["step"] for l in (out / "log.jsonl").read_text().splitlines()] == [1, 2]
    audio = sorted(mini_data.rglob("*.flac"))[0]
    assert cli_main(["extract", "--upstream", "apc", "--upstream-ckpt", str(out / "apc.ckpt"), "--quiet",
                     "--output", str(tmp_path / "feats.pt"), str(audio)]) == 0
    feats = torch.load(tmp_path / "feats.pt", weights_only=True)
    assert feats["num_layers"] == 3 and feats["files"][0]["hidden_states"][0].shape[-1] == 24


# -- resume -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tera", "apc"])
def test_resume_continues_exactly(mini_data, tmp_path, monkeypatch, name):
    if name == "apc":  # dropout on: torch's global RNG must be restored too
        cfg, loop = apc_obj.PRESETS["tiny"]
        monkeypatch.setitem(apc_obj.PRESETS, "tiny", (apc_obj.APCPretrainConfig(model=APCConfig(hidden_size=16), dropout=0.3), loop))

    def leave_a_line_past_the_save(folder):  # a killed run may have logged past its last save: dropped on resume
        with open(folder / "log.jsonl", "a") as fh:
            fh.write(json.dumps({"step": 4, "loss": 123.0, "lr": 0.001, "grad_norm": 0.0, "wall_s": 0.0}) + "\n")

    a, b = assert_resume_exact(name, mini_data, tmp_path, steps=6, sets=SMALL[name] if name == "tera" else (),
                               after_first=leave_a_line_past_the_save)
    resumed = tmp_path / "resumed"
    assert torch.equal(a["rng"]["loop"], b["rng"]["loop"])
    # resuming with another seed is refused, naming the key; a second fresh run into the folder too
    with pytest.raises(ValueError, match=r"seed = 3.*this run has 4"):
        pretrain(name, resumed, data=mini_data, max_steps=8, seed=4, resume=True, progress=False,
                 sets=SMALL[name] if name == "tera" else ())
    with pytest.raises(ValueError, match="pass --resume"):
        pretrain(name, resumed, data=mini_data, max_steps=8, seed=3, progress=False)


# -- bad input --------------------------------------------------------------------------------------


def test_bad_objective_and_empty_data(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown --objective 'wav2vec9'; valid objectives: apc, best_rq, cpc, data2vec, hubert, mockingjay, tera, "
                                         r"vicreg, wav2vec2$"):
        pretrain("wav2vec9", tmp_path / "o")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("no audio here")
    with pytest.raises(ValueError, match=rf"--data {empty}: no audio files"):
        pretrain("apc", tmp_path / "o", data=empty)
    with pytest.raises(ValueError, match="unknown --preset 'huge'"):
        pretrain("apc", tmp_path / "o", data=empty, preset="huge")
    assert cli_main(["pretrain", "--objective", "nope", "--output", str(tmp_path / "o")]) == 2
    assert "unknown --objective 'nope'" in capsys.readouterr().err
    assert cli_main(["pretrain", "--objective", "tera", "--data", str(empty), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"--data {empty}: no audio files" in err and err.count("\n") == 1


def test_set_overrides_reach_nested_config_fields_and_name_bad_keys():
    from superb.upstream.pretrain.loop import build_objective

    _, cfg, loop = build_objective("apc", "tiny", 0, ["model.hidden_size=16", "n_future=5", "loop.lr=1e-4",
                                                      "loop.warmup_steps=10"])
    assert (cfg.model.hidden_size, cfg.n_future, loop.lr, loop.warmup_steps) == (16, 5, 1e-4, 10)
    with pytest.raises(ValueError, match=r"--set model.hiden_size: apc config has no field 'model.hiden_size'"):
        build_objective("apc", "tiny", 0, ["model.hiden_size=16"])
    with pytest.raises(ValueError, match=r"--set n_future=three: expected a value like 3 \(int\)"):
        build_objective("apc", "tiny", 0, ["n_future=three"])
    with pytest.raises(ValueError, match=r"--set loop.warmup_steps: warmup_steps must be >= 0|warmup_steps"):
        from superb.upstream.pretrain.loop import LoopConfig
        LoopConfig(warmup_steps=-1).validate("--set loop.warmup_steps")


def test_warmup_rises_linearly_then_holds():
    from superb.upstream.pretrain.loop import LoopConfig, learning_rate

    loop = LoopConfig(lr=1e-3, warmup_steps=4)
    assert [learning_rate(loop, s) for s in (1, 2, 4, 9)] == pytest.approx([2.5e-4, 5e-4, 1e-3, 1e-3])
    assert learning_rate(LoopConfig(lr=1e-3), 1) == 1e-3


def test_bf16_precision_trains_and_is_part_of_the_run(mini_data, tmp_path):
    # bf16 autocast of the loss's forward: close to fp32 at the first step (same weights, same
    # batch), recorded, and a resume in another precision is refused naming the key
    sets = ["model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.intermediate_size=64"]
    fp32 = pretrain("tera", tmp_path / "fp32", data=mini_data, max_steps=3, progress=False, sets=sets)
    bf16 = pretrain("tera", tmp_path / "bf16", data=mini_data, max_steps=3, progress=False, sets=sets,
                    precision="bf16")
    assert bf16["precision"] == "bf16" and fp32["precision"] == "fp32"
    assert json.loads((tmp_path / "bf16" / "pretrain.json").read_text())["precision"] == "bf16"
    assert bf16["first_loss_this_session"] == pytest.approx(fp32["first_loss_this_session"], rel=0.05)
    assert all(np.isfinite(l["loss"]) for l in pretrain_log(tmp_path / "bf16"))
    with pytest.raises(ValueError, match=r"precision = 'bf16', this run has 'fp32'"):
        pretrain("tera", tmp_path / "bf16", data=mini_data, max_steps=4, progress=False, sets=sets, resume=True)
    with pytest.raises(ValueError, match=r"--precision 'fp16': expected one of fp32, bf16"):
        pretrain("tera", tmp_path / "x", data=mini_data, precision="fp16")
