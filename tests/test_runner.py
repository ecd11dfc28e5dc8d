"""Runner: results file, best-checkpoint testing, exact kill-and-resume, evaluate."""
import json

import pytest
import torch

from superb.benchmark.config import resolve_config
from superb.benchmark.runner import Runner, RunDirectoryError, evaluate_run


class Killed(Exception):
    pass


class KilledRunner(Runner):
    kill_at = None

    def _after_step(self, step):
        if step == self.kill_at:
            raise Killed(step)


def _config(task, data, upstream="fbank", **sets):
    base = {"runner.total_steps": 12, "runner.eval_every": 5, "runner.save_every": 4, "runner.log_every": 2,
            "optimizer.lr": 1e-3}
    base.update(sets)
    cfg = resolve_config(task, use_mini=False, sets=[f"{k}={v}" for k, v in base.items()])
    cfg.update({"upstream": {"name": upstream, "ckpt": None, "random_init": False, "options": {}},
                "data": {"dir": str(data)}, "device": "cpu"})
    return cfg


ASR_SMALL = {"task.projector_dim": 16, "task.rnn_dim": 16, "batch.max_seconds": 3.0}


@pytest.mark.parametrize("task", ["ks", "asr"])
def test_kill_and_resume_ends_with_the_same_numbers(task, tmp_path, ks_data, libri_data):
    data = ks_data if task == "ks" else libri_data
    sets = {} if task == "ks" else ASR_SMALL
    full = Runner(_config(task, data, **sets), tmp_path / "full", progress=False).run()

    killed = KilledRunner(_config(task, data, **sets), tmp_path / "killed", progress=False)
    killed.kill_at = 10  # last save at step 8: steps 9-10 are lost and redone
    with pytest.raises(Killed):
        killed.run()
    assert not (tmp_path / "killed" / "results.json").exists()
    saved = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=False)
    assert saved["state"]["step"] == 8
    resumed = Runner(_config(task, data, **sets), tmp_path / "killed", resume=True, progress=False).run()

    assert resumed["metrics"] == full["metrics"]
    assert resumed["dev_history"] == full["dev_history"]
    assert resumed["layer_weights"] == full["layer_weights"]
    assert resumed["best_step"] == full["best_step"] and resumed["steps"] == 12
    a = torch.load(tmp_path / "full" / "checkpoints" / "best.pt")
    b = torch.load(tmp_path / "killed" / "checkpoints" / "best.pt")
    for key in a["head"]:
        assert torch.equal(a["head"][key], b["head"][key]), key


def test_results_file_and_evaluate(tmp_path, ks_data):
    cfg = _config("ks", ks_data, **{"runner.total_steps": 40, "runner.eval_every": 20})
    results = Runner(cfg, tmp_path / "run", progress=False).run()
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    for key in ("task", "upstream", "metrics", "layer_weights", "config", "steps", "wall_time_s", "device", "versions"):
        assert key in on_disk
    assert on_disk["upstream"]["name"] == "fbank" and on_disk["upstream"]["weights"].startswith("none")
    assert set(on_disk["metrics"]) == {"dev", "test"}
    assert torch.__version__.startswith(on_disk["versions"]["torch"])
    assert on_disk["steps"] == 40 and [h["step"] for h in on_disk["dev_history"]] == [20, 40]
    # tones of distinct pitch per word: learnable far above chance (1/12)
    assert on_disk["metrics"]["test"]["accuracy"] > 50
    pred = (tmp_path / "run" / "predictions" / "test" / "predict.txt").read_text().splitlines()
    assert len(pred) == on_disk["data"]["num_examples"]["test"]
    again = evaluate_run(tmp_path / "run", "test", progress=False)
    assert again == pytest.approx(on_disk["metrics"]["test"])


def test_output_directory_holding_another_run_is_refused(tmp_path, ks_data):
    Runner(_config("ks", ks_data, **{"runner.total_steps": 2}), tmp_path / "run", progress=False).run()
    with pytest.raises(RunDirectoryError, match="holds another run .*task ks, upstream fbank"):
        Runner(_config("ks", ks_data), tmp_path / "run", progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(RunDirectoryError, match="not empty"):
        Runner(_config("ks", ks_data), tmp_path / "other", progress=False)
    with pytest.raises(RunDirectoryError, match="differing keys: optimizer.lr"):
        Runner(_config("ks", ks_data, **{"optimizer.lr": 0.5}), tmp_path / "run", resume=True, progress=False)
