"""One upstream pass, many learning rates: each head of a sweep trains exactly as its rate alone."""
import json

import pytest
import torch

from superb.benchmark.config import ConfigError
from superb.benchmark.cli import main
from superb.benchmark.runner import RunDirectoryError, Runner, evaluate_run, resume_run

from test_runner import ASR_SMALL, Killed, KilledRunner, _config

RATES = [1e-3, 3e-3]


def _cfg(task, data, lr, **sets):
    small = ASR_SMALL if task == "asr" else {}
    cfg = _config(task, data, **{**small, "runner.total_steps": 10, "runner.eval_every": 5, "runner.save_every": 3,
                                 **sets})
    cfg["optimizer"]["lr"] = lr
    cfg["workers"] = 0
    return cfg


def _assert_same_training(member_dir, single_dir):
    a = json.loads((member_dir / "results.json").read_text())
    b = json.loads((single_dir / "results.json").read_text())
    assert a["metrics"] == b["metrics"] and a["dev_history"] == b["dev_history"]
    assert a["layer_weights"] == b["layer_weights"] and a["best_step"] == b["best_step"]
    pa = torch.load(member_dir / "checkpoints" / "best.pt")
    pb = torch.load(single_dir / "checkpoints" / "best.pt")
    for key in pa["head"]:
        assert torch.equal(pa["head"][key], pb["head"][key]), key
    la = [json.loads(l) for l in (member_dir / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(l) for l in (single_dir / "log.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in x.items() if k != "wall_s"} for x in la] == \
        [{k: v for k, v in x.items() if k != "wall_s"} for x in lb]


@pytest.mark.parametrize("task", ["ks", "asr"])  # ASR: frame-level, dropout and SpecAugment draw from the RNG
def test_each_rate_of_a_sweep_trains_as_it_would_alone(task, tmp_path, ks_data, libri_data):
    data = ks_data if task == "ks" else libri_data
    sweep = Runner(_cfg(task, data, RATES), tmp_path / "sweep", progress=False).run()
    for lr in RATES:
        Runner(_cfg(task, data, lr), tmp_path / f"single{lr:g}", progress=False).run()
        _assert_same_training(tmp_path / "sweep" / f"lr{lr:g}", tmp_path / f"single{lr:g}")
    members = sweep["sweep"]["members"]
    assert [m["lr"] for m in members] == RATES and sweep["sweep"]["rates"] == RATES
    primary = sweep["primary_metric"]
    better = max if sweep["higher_is_better"][primary] else min
    best = better(members, key=lambda m: m["best_dev"])
    assert sweep["sweep"]["best_lr"] == best["lr"] and sweep["metrics"] == best["metrics"]
    assert sweep["config"]["optimizer"]["lr"] == RATES
    assert all(f.startswith(f"lr{best['lr']:g}/") for fs in sweep["predictions"].values() for f in fs)
    # a member folder is a run folder of its own: it evaluates like any run
    again = evaluate_run(tmp_path / "sweep" / f"lr{RATES[0]:g}", "test", progress=False)
    assert again == pytest.approx(members[0]["metrics"]["test"])
    with pytest.raises(RunDirectoryError, match="learning-rate sweep"):
        evaluate_run(tmp_path / "sweep", "test", progress=False)
    with pytest.raises(RunDirectoryError, match="its rates train together"):
        resume_run(tmp_path / "sweep" / f"lr{RATES[0]:g}", progress=False)


def test_kill_and_resume_a_sweep(tmp_path, ks_data):
    full = Runner(_cfg("ks", ks_data, RATES), tmp_path / "full", progress=False).run()
    killed = KilledRunner(_cfg("ks", ks_data, RATES), tmp_path / "killed", progress=False)
    killed.kill_at = 8  # saved at 6
    with pytest.raises(Killed):
        killed.run()
    resumed = resume_run(tmp_path / "killed", progress=False)
    assert resumed["sweep"]["members"] == full["sweep"]["members"]
    for lr in RATES:
        _assert_same_training(tmp_path / "killed" / f"lr{lr:g}", tmp_path / "full" / f"lr{lr:g}")


def test_sweep_rates_are_checked(tmp_path, ks_data):
    for bad, match in (([1e-3, 1e-3], "distinct"), ([1e-3, -1.0], r"optimizer.lr\[1\] must be > 0"),
                       ([1e-3, "abc"], r"optimizer.lr\[1\] must be a number")):
        with pytest.raises(ConfigError, match=match):
            Runner(_cfg("ks", ks_data, bad), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_sweep_from_the_command_line(tmp_path, ks_data, capsys):
    from superb.benchmark.cli import main

    out = tmp_path / "run"
    assert main(["run", "--upstream", "fbank", "--task", "ks", "--data", str(ks_data), "--output", str(out),
                 "--max-steps", "6", "--set", "optimizer.lr=[1e-3,3e-3]", "--set", "runner.eval_every=3",
                 "--workers", "0"]) == 0
    text = capsys.readouterr()
    assert "2 heads: lr 0.001, 0.003" in text.err
    results = json.loads((out / "results.json").read_text())
    best = results["sweep"]["best_lr"]
    assert f"reported: lr {best:g} ({out / f'lr{best:g}'})" in text.out
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["checkpoints", "lr0.001", "lr0.003"]


def test_cross_validated_sweep_reports_each_folds_rate(tmp_path, capsys):
    """ER (5 folds) with two rates: each fold is a sweep of its own and picks its rate on its dev
    set; the parent's ``sweep`` lists every fold's choice (not the first fold's alone)."""
    out = tmp_path / "er"
    assert main(["run", "--upstream", "fbank", "--task", "er", "--mini-profile", "tiny", "--max-steps", "3",
                 "--set", "optimizer.lr=[1e-3,1e-1]", "--output", str(out), "--quiet", "--no-tensorboard"]) == 0
    parent = json.loads((out / "results.json").read_text())
    for k in ("1", "2", "3", "4", "5"):
        fold = json.loads((out / f"fold{k}" / "results.json").read_text())
        assert parent["sweep"]["per_fold"][k]["best_lr"] == fold["sweep"]["best_lr"]
        assert fold["sweep"]["best_lr"] in (1e-3, 1e-1)
    assert parent["sweep"]["rates"] == [1e-3, 1e-1] and "best_lr" not in parent["sweep"]
    assert "fold 5: lr" in capsys.readouterr().out
