"""TensorBoard event files: the numbers of log.jsonl and results.json, under the same steps; one
folder per rate of a sweep; no duplicated steps after a resume; off with --no-tensorboard."""
import json
import sys

import numpy as np
import pytest

from superb.benchmark import runner as runner_mod
from superb.benchmark.cli import main
from superb.benchmark.config import ConfigError
from superb.benchmark.runner import Runner, resume_run

from test_runner import Killed, KilledRunner, _config


def _cfg(data, **sets):
    cfg = _config("ks", data, **{"runner.total_steps": 10, "runner.eval_every": 4, "runner.save_every": 4,
                                 "runner.log_every": 2, **sets})
    cfg["workers"] = 0
    return cfg


def _events(run_dir):
    """``({scalar tag: [(step, value)]}, {histogram tag: [(step, HistogramValue)]}, event files)``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = run_dir / "tensorboard"
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags["scalars"]}
    hists = {t: [(e.step, e.histogram_value) for e in acc.Histograms(t)] for t in tags["histograms"]}
    return scalars, hists, sorted(p.name for p in folder.iterdir())


def _log(run_dir):
    lines = [json.loads(l) for l in (run_dir / "log.jsonl").read_text().splitlines()]
    return [l for l in lines if "loss" in l], [l for l in lines if "dev" in l]


def _f32(x):
    return float(np.float32(x))  # event files store scalars as float32


def _assert_events_match_the_log(run_dir):
    scalars, hists, _ = _events(run_dir)
    train, dev = _log(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    assert train and dev
    assert scalars["train/loss"] == [(l["step"], _f32(l["loss"])) for l in train]
    assert scalars["train/lr"] == [(l["step"], _f32(l["lr"])) for l in train]
    for metric in dev[0]["dev"]:
        assert scalars[f"dev/{metric}"] == [(l["step"], _f32(l["dev"][metric])) for l in dev], metric
    last = results["steps"]
    assert {k: v for k, v in scalars.items() if k.startswith("test/")} == \
        {f"test/{k}": [(last, _f32(v))] for k, v in results["metrics"]["test"].items()}
    # layer weights at every dev evaluation; at the best step they are the results' (best.pt's)
    weights = results["layer_weights"]
    dev_steps = [l["step"] for l in dev]
    for i, w in enumerate(weights):
        series = dict(scalars[f"layer_weights/{i}"])
        assert sorted(series) == dev_steps
        assert series[results["best_step"]] == _f32(w)
    assert not any(k.startswith("layer_weights/") and int(k.split("/")[1]) >= len(weights) for k in scalars)
    hist = dict(hists["layer_weights"])
    assert sorted(hist) == dev_steps
    best = hist[results["best_step"]]
    assert best.num == len(weights) and best.sum == pytest.approx(1.0, abs=1e-6)
    assert best.min == pytest.approx(min(weights)) and best.max == pytest.approx(max(weights))
    return scalars


def test_event_files_hold_the_log_and_results_numbers_and_resume_writes_no_step_twice(tmp_path, ks_data):
    full = tmp_path / "full"
    Runner(_cfg(ks_data), full, progress=False).run()
    full_scalars = _assert_events_match_the_log(full)
    assert [s for s, _ in full_scalars["train/loss"]] == [2, 4, 6, 8, 10]
    assert [s for s, _ in full_scalars["dev/accuracy"]] == [4, 8, 10]

    killed = KilledRunner(_cfg(ks_data), tmp_path / "killed", progress=False)
    killed.kill_at = 6  # saved at 4; the killed attempt wrote step 6, which is trained and written again
    with pytest.raises(Killed):
        killed.run()
    before, _, _ = _events(tmp_path / "killed")
    assert [s for s, _ in before["train/loss"]] == [2, 4, 6]
    resume_run(tmp_path / "killed", progress=False)
    scalars, _, files = _events(tmp_path / "killed")
    assert len(files) == 2 and all(f.startswith("events.out.tfevents.") for f in files)
    _assert_events_match_the_log(tmp_path / "killed")  # one value per step (purge_step = saved step + 1)
    assert scalars == full_scalars


def test_a_sweep_writes_one_folder_per_rate(tmp_path, ks_data):
    out = tmp_path / "sweep"
    cfg = _cfg(ks_data, **{"runner.total_steps": 6, "runner.eval_every": 3})
    cfg["optimizer"]["lr"] = [1e-3, 3e-3]
    Runner(cfg, out, progress=False).run()
    assert not (out / "tensorboard").exists()
    losses = []
    for lr in ("0.001", "0.003"):
        scalars = _assert_events_match_the_log(out / f"lr{lr}")
        assert {v for _, v in scalars["train/lr"]} == {_f32(float(lr))}
        losses.append(scalars["train/loss"])
    assert losses[0] != losses[1]


def test_no_tensorboard_flag_and_config_key(tmp_path, ks_data, capsys):
    out = tmp_path / "run"
    args = ["--quiet", "--workers", "0"]
    assert main(["run", "--upstream", "fbank", "--task", "ks", "--data", str(ks_data), "--output", str(out),
                 "--max-steps", "2", "--no-tensorboard", *args]) == 0
    assert not (out / "tensorboard").exists()
    assert json.loads((out / "config.json").read_text())["tensorboard"] is False
    # resume may switch it on (it is not part of the protocol) ...
    assert main(["resume", str(out), "--max-steps", "3", *args]) == 0
    assert json.loads((out / "config.json").read_text())["tensorboard"] is False  # the run's setting kept
    assert not (out / "tensorboard").exists()
    assert main(["run", "--upstream", "fbank", "--task", "ks", "--data", str(ks_data), "--output", str(out),
                 "--max-steps", "4", "--resume", *args]) == 0
    scalars, _, _ = _events(out)
    assert [s for s, _ in scalars["train/loss"]] == [4]  # written from the resumed step on
    # ... and off again
    assert main(["resume", str(out), "--max-steps", "5", "--no-tensorboard", *args]) == 0
    assert json.loads((out / "config.json").read_text())["tensorboard"] is False
    assert [s for s, _ in _events(out)[0]["train/loss"]] == [4]
    capsys.readouterr()

    cfg = _cfg(ks_data)
    for bad in (1, "no", "off"):
        cfg["tensorboard"] = bad
        with pytest.raises(ConfigError, match=f"config key tensorboard must be true or false, got {bad!r}"):
            Runner(cfg, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_missing_tensorboard_package_warns_once_and_the_run_goes_on(tmp_path, ks_data, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` of it raises ImportError
    monkeypatch.setattr(runner_mod, "_TENSORBOARD_WARNED", False)
    cfg = _cfg(ks_data, **{"runner.total_steps": 2, "runner.eval_every": 2})
    cfg["optimizer"]["lr"] = [1e-3, 3e-3]  # two writers asked for, one warning
    results = Runner(cfg, tmp_path / "run", progress=False).run()
    assert results["steps"] == 2 and (tmp_path / "run" / "lr0.001" / "results.json").is_file()
    err = capsys.readouterr().err
    assert err.count("warning: no TensorBoard event files") == 1 and "--no-tensorboard" in err
    assert not list((tmp_path / "run").rglob("tensorboard"))
