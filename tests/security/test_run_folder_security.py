"""A run folder is untrusted input: its checkpoints and config never run code."""
import json
import os

import pytest
import torch

from superb.benchmark.cli import main
from superb.benchmark.config import resolve_config
from superb.benchmark.runner import RunDirectoryError, Runner, evaluate_run


def _config(data, **sets):
    base = {"runner.total_steps": 2, "runner.eval_every": 1, "runner.save_every": 1, "runner.log_every": 1}
    base.update(sets)
    cfg = resolve_config("ks", use_mini=False, sets=[f"{k}={v}" for k, v in base.items()])
    cfg.update({"upstream": {"name": "fbank", "ckpt": None, "random_init": False, "options": {}},
                "data": {"dir": str(data)}, "device": "cpu"})
    return cfg


class Payload:
    """Unpickling this calls os.system, which creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def finished_run(tmp_path, ks_data):
    out = tmp_path / "run"
    Runner(_config(ks_data), out, progress=False).run()
    return out


def _plant(path, marker):
    state = torch.load(path, weights_only=True) if path.name == "best.pt" else {}
    state["evil"] = Payload(marker)
    torch.save(state, path)


def test_malicious_last_pt_is_refused_on_resume(finished_run, ks_data, tmp_path):
    marker = tmp_path / "PWNED"
    _plant(finished_run / "checkpoints" / "last.pt", marker)
    with pytest.raises(RunDirectoryError) as err:
        Runner(_config(ks_data), finished_run, resume=True, progress=False).run()
    msg = str(err.value)
    assert "last.pt" in msg and "system" in msg and "\n" not in msg
    assert not marker.exists()


def test_malicious_best_pt_is_refused_by_evaluate(finished_run, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    _plant(finished_run / "checkpoints" / "best.pt", marker)
    with pytest.raises(RunDirectoryError, match=r"best\.pt.*system"):
        evaluate_run(finished_run, "test", progress=False)
    assert main(["evaluate", str(finished_run), "--quiet"]) == 2
    assert "best.pt" in capsys.readouterr().err
    assert not marker.exists()


def test_run_checkpoints_hold_only_plain_data(finished_run):
    from superb.upstream.checkpoint_io import pickle_globals

    for name in ("last.pt", "best.pt"):
        found = pickle_globals(finished_run / "checkpoints" / name)
        assert not any(g.startswith(("numpy", "builtins.", "__main__")) for g in found), (name, found)


def test_custom_upstream_named_in_config_json_is_not_imported(finished_run, tmp_path, capsys):
    marker = tmp_path / "IMPORTED"
    evil = tmp_path / "evil.py"
    evil.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\nclass Evil:\n    pass\n")
    cfg_path = finished_run / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["upstream"]["name"] = f"{evil}:Evil"
    cfg_path.write_text(json.dumps(cfg))

    with pytest.raises(RunDirectoryError) as err:
        evaluate_run(finished_run, "test", progress=False)
    assert "evil.py:Evil" in str(err.value) and "--trust-run-dir" in str(err.value)
    assert main(["evaluate", str(finished_run), "--quiet"]) == 2
    assert "config.json" in capsys.readouterr().err
    # naming another upstream does not unlock it either
    with pytest.raises(RunDirectoryError, match="is not the upstream"):
        evaluate_run(finished_run, "test", progress=False, upstream="fbank")
    assert not marker.exists()
    # the lock was released after each refusal: the folder is usable
    cfg["upstream"]["name"] = "fbank"
    cfg_path.write_text(json.dumps(cfg))
    assert set(evaluate_run(finished_run, "test", progress=False)) == {"accuracy", "balanced_accuracy"}
