"""Runner protocol settings: LR schedules (exact resume), precision, frame budgets, feature
selection, per-metric units."""
import json
import math
from pathlib import Path

import pytest
import torch

from superb.benchmark.config import ConfigError, load_recipe, resolve_config
from superb.benchmark.runner import Runner, autocast_settings, select_layers
from superb.benchmark.schedulers import Schedule
from superb.downstream.tasks import get_task, list_tasks

REPO = Path(__file__).resolve().parents[1]
CUSTOM = f"{REPO / 'examples' / 'my_upstream.py'}:MyUpstream"


class Killed(Exception):
    pass


class KilledRunner(Runner):
    kill_at = None

    def _after_step(self, step):
        if step == self.kill_at:
            raise Killed(step)


def _config(data, upstream="fbank", options=None, **sets):
    base = {"runner.total_steps": 12, "runner.eval_every": 5, "runner.save_every": 4, "runner.log_every": 1,
            "optimizer.lr": 1e-2}
    base.update(sets)
    cfg = resolve_config("ks", use_mini=False, sets=[f"{k}={v}" for k, v in base.items()])
    cfg.update({"upstream": {"name": upstream, "ckpt": None, "random_init": False, "options": options or {}},
                "data": {"dir": str(data)}, "device": "cpu"})
    return cfg


# -- schedules -----------------------------------------------------------------------------------
def test_schedule_factors_match_the_s3prl_formulas():
    # sqrt decay with warm-up 10k (ST): linear to 1 at 10k, then sqrt(10k / step)
    st = Schedule("sqrt_decay_warmup", 10000, 32000, 1e-3)
    assert st.lr(0) == 0.0 and st.lr(5000) == pytest.approx(5e-4) and st.lr(10000) == pytest.approx(1e-3)
    assert st.lr(40000) == pytest.approx(1e-3 * math.sqrt(10000 / 40000)) == pytest.approx(5e-4)
    # linear warm-up + linear decay to 0 at total_steps (VC)
    vc = Schedule("linear_warmup_decay", 4000, 10000, 1e-4)
    assert vc.lr(2000) == pytest.approx(5e-5) and vc.lr(4000) == pytest.approx(1e-4)
    assert vc.lr(7000) == pytest.approx(5e-5) and vc.lr(10000) == 0.0
    assert Schedule("constant", 0, 100, 1e-4).lr(0) == 1e-4
    with pytest.raises(ValueError, match="scheduler.name 'cosine'"):
        Schedule("cosine", 0, 10, 1e-3)


def test_schedule_is_applied_and_resumes_exactly(tmp_path, ks_data):
    sets = {"scheduler.name": "linear_warmup_decay", "scheduler.warmup_steps": 4}
    full = Runner(_config(ks_data, **sets), tmp_path / "full", progress=False).run()
    lrs = [l["lr"] for l in map(json.loads, (tmp_path / "full" / "log.jsonl").read_text().splitlines()) if "lr" in l]
    expected = [1e-2 * (n / 4 if n < 4 else (12 - n) / 8) for n in range(12)]
    assert lrs == pytest.approx(expected)
    killed = KilledRunner(_config(ks_data, **sets), tmp_path / "killed", progress=False)
    killed.kill_at = 7  # last save at 4
    with pytest.raises(Killed):
        killed.run()
    resumed = Runner(_config(ks_data, **sets), tmp_path / "killed", resume=True, progress=False).run()
    assert resumed["metrics"] == full["metrics"] and resumed["layer_weights"] == full["layer_weights"]
    assert (tmp_path / "killed" / "log.jsonl").read_text() != ""
    again = [l["lr"] for l in map(json.loads, (tmp_path / "killed" / "log.jsonl").read_text().splitlines()) if "lr" in l]
    assert again == lrs


def test_every_recipe_names_a_known_schedule_and_fp32():
    for task in list_tasks():
        recipe = load_recipe(task.name)
        assert recipe["runner"]["precision"] == "fp32", task.name
        if task.trainable:
            assert recipe["scheduler"]["name"] in ("constant", "linear_warmup_decay", "sqrt_decay_warmup"), task.name


# -- precision -----------------------------------------------------------------------------------
def test_cuda_runs_are_fp32_unless_the_recipe_opts_in():
    assert autocast_settings("cuda", "fp32") == ("fp32", False, torch.float32)
    assert autocast_settings("cuda", None) == ("fp32", False, torch.float32)
    assert autocast_settings("cuda", "bf16") == ("bf16", True, torch.bfloat16)
    assert autocast_settings("cuda", "fp16") == ("fp16", True, torch.float16)
    assert autocast_settings("cpu", "bf16") == ("fp32", False, torch.float32)


def test_precision_is_validated_and_recorded(tmp_path, ks_data):
    with pytest.raises(ConfigError, match="runner.precision must be one of fp32, bf16, fp16, got 'fp64'"):
        Runner(_config(ks_data, **{"runner.precision": "fp64"}), tmp_path / "bad", progress=False)
    res = Runner(_config(ks_data, **{"runner.total_steps": 2, "runner.precision": "bf16"}), tmp_path / "r",
                 progress=False).run()
    assert res["precision"] == "fp32"  # CPU: autocast is CUDA-only


# -- frame budgets -------------------------------------------------------------------------------
def test_max_frames_budget_counts_upstream_frames(tmp_path, ks_data):
    cfg = _config(ks_data)
    cfg["batch"]["max_frames"] = 250  # fbank: 160 samples per frame -> 2.5 s
    runner = Runner(cfg, tmp_path / "r", progress=False)
    try:
        train = runner.splits["train"]
        assert runner._sampler(train, train=True).max_batch_samples == 250 * 160
        assert runner._sampler(train, train=False).max_batch_samples == int(cfg["batch"]["eval_max_seconds"] * 16000)
    finally:
        runner.close()
    cfg["batch"]["max_frames"] = 0
    with pytest.raises(ConfigError, match="batch.max_frames must be >= 1"):
        Runner(cfg, tmp_path / "r2", progress=False)


# -- feature selection ---------------------------------------------------------------------------
def test_select_layers():
    assert select_layers(None, 4) == [0, 1, 2, 3] == select_layers("hidden_states", 4)
    assert select_layers("last_hidden_state", 4) == [3]
    assert select_layers("hidden_state_1", 4) == [1] and select_layers("hidden_state_-1", 4) == [3]
    assert select_layers("layers:0,2-3", 4) == [0, 2, 3]
    for bad in ("layers:5", "layers:1,1", "layers:3-1", "hidden_state_x", "pooled", "layers:"):
        with pytest.raises(ConfigError, match="upstream.feature"):
            select_layers(bad, 4)


def test_upstream_feature_reaches_the_featurizer_and_results(tmp_path, ks_data):
    cfg = _config(ks_data, CUSTOM, {"dim": 8}, **{"runner.total_steps": 2})
    cfg["upstream"]["feature"] = "layers:1-2"
    res = Runner(cfg, tmp_path / "r", progress=False).run()
    assert res["upstream"]["feature"] == "layers:1-2" and res["upstream"]["layers"] == [1, 2]
    assert res["upstream"]["hidden_sizes"] == [8, 8, 8] and len(res["layer_weights"]) == 2
    cfg = _config(ks_data, CUSTOM, {"dim": 8}, **{"runner.total_steps": 2})
    res = Runner(cfg, tmp_path / "all", progress=False).run()
    assert res["upstream"]["feature"] == "hidden_states" and res["upstream"]["layers"] == [0, 1, 2]


def test_cli_upstream_feature(tmp_path, ks_data):
    from superb.benchmark.cli import main

    out = tmp_path / "cli"
    assert main(["run", "--upstream", CUSTOM, "--upstream-option", "dim=8", "--task", "ks", "--data", str(ks_data),
                 "--upstream-feature", "last_hidden_state", "--max-steps", "1", "--output", str(out), "--quiet"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["upstream"]["layers"] == [2] and len(res["layer_weights"]) == 1


# -- units ---------------------------------------------------------------------------------------
def test_every_metric_has_a_unit_and_results_carry_them(tmp_path, ks_data):
    for task in list_tasks():
        units = get_task(task.name).metric_units()
        assert set(units) == set(task.metrics), task.name
    assert get_task("se").metric_units()["pesq"].startswith("PESQ")
    assert get_task("ss").metric_units()["si_sdri"] == "dB"
    assert get_task("qbe").metric_units()["mtwv"] == "MTWV x 100"
    assert get_task("vc").metric_units()["mcd"] == "MCD dB"
    res = Runner(_config(ks_data, **{"runner.total_steps": 1}), tmp_path / "r", progress=False).run()
    assert res["metric_units"] == {"accuracy": "percent", "balanced_accuracy": "percent"}
