"""Runner reliability: the output lock, config schema, resume edge cases, atomic writes."""
import errno
import json
import os
import subprocess
import sys

import pytest
import torch

from superb.benchmark.cli import main
from superb.benchmark.config import ConfigError, resolve_config
from superb.benchmark.runner import RunDirectoryError, Runner, pick_device
from superb.downstream import fileio
from superb.upstream.checkpoint_io import safe_load


class Killed(Exception):
    pass


class KilledRunner(Runner):
    kill_at = None

    def _after_step(self, step):
        if step == self.kill_at:
            raise Killed(step)


def _config(data, **sets):
    base = {"runner.total_steps": 12, "runner.eval_every": 5, "runner.save_every": 4, "runner.log_every": 2,
            "optimizer.lr": 1e-3}
    base.update(sets)
    cfg = resolve_config("ks", use_mini=False, sets=[f"{k}={v}" for k, v in base.items()])
    cfg.update({"upstream": {"name": "fbank", "ckpt": None, "random_init": False, "options": {}},
                "data": {"dir": str(data)}, "device": "cpu"})
    return cfg


# -- two runs, one folder ----------------------------------------------------------------------
def test_second_run_into_the_same_folder_is_refused_and_the_first_is_intact(tmp_path, ks_data):
    out = tmp_path / "run"
    first = Runner(_config(ks_data, **{"runner.seed": 1}), out, progress=False)
    with pytest.raises(RunDirectoryError, match=rf"in use by another superb run \(pid {os.getpid()}\)"):
        Runner(_config(ks_data, **{"runner.seed": 2}), out, progress=False)
    with pytest.raises(RunDirectoryError, match="in use"):
        Runner(_config(ks_data, **{"runner.seed": 2}), out, resume=True, progress=False)
    # another process is refused too, with one line and status 2
    proc = subprocess.run([sys.executable, "-m", "superb.benchmark.cli", "run", "--upstream", "fbank", "--task", "ks",
                           "--data", str(ks_data), "--output", str(out), "--resume", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "in use by another superb run" in proc.stderr
    results = first.run()
    assert json.loads((out / "config.json").read_text())["runner"]["seed"] == 1
    assert results["config"]["runner"]["seed"] == 1
    assert json.loads((out / "results.json").read_text())["config"]["runner"]["seed"] == 1
    # released at the end: the folder can be resumed (a no-op) by a later run
    Runner(_config(ks_data, **{"runner.seed": 1}), out, resume=True, progress=False).close()


# -- config schema -----------------------------------------------------------------------------
@pytest.mark.parametrize("key,value,needle", [
    ("runner.accumulate", 0, "runner.accumulate must be >= 1, got 0"),
    ("runner.total_steps", 0, "runner.total_steps must be >= 1, got 0"),
    ("runner.eval_every", 0, "runner.eval_every must be >= 1, got 0"),
    ("runner.eval_every", -1, "runner.eval_every must be >= 1, got -1"),
    ("runner.save_every", 2.5, "runner.save_every must be a whole number, got 2.5"),
    ("runner.log_every", "abc", "runner.log_every must be a number, got 'abc'"),
    ("runner.seed", True, "runner.seed must be a number, got True"),
    ("runner.grad_clip", -1, "runner.grad_clip must be >= 0, got -1.0"),
    ("optimizer.lr", "abc", "optimizer.lr must be a number, got 'abc'"),
    ("optimizer.lr", 0, "optimizer.lr must be > 0, got 0.0"),
    ("optimizer.name", "Adamm", "optimizer.name must name a torch.optim optimiser"),
    ("batch.max_seconds", 0, "batch.max_seconds must be > 0"),
    ("batch.eval_max_seconds", "nan", "batch.eval_max_seconds must be finite"),
    ("featurizer.layer_norm", 3, "featurizer.layer_norm must be true or false, got 3"),
])
def test_bad_numbers_name_key_and_value_and_do_not_block_the_output(tmp_path, ks_data, key, value, needle):
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        Runner(_config(ks_data, **{key: value}), out, progress=False)
    assert needle in str(err.value)
    assert not out.exists()  # nothing written: the same --output works next
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError):
        Runner(_config(ks_data, **{key: value}), tmp_path / "empty", progress=False)
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_config_error_does_not_block_its_own_output(tmp_path, ks_data, capsys):
    out = tmp_path / "run"
    argv = ["run", "--upstream", "fbank", "--task", "ks", "--data", str(ks_data), "--output", str(out), "--quiet",
            "--set", "runner.log_every=1", "--set", "runner.eval_every=2", "--set", "runner.save_every=2"]
    assert main(argv + ["--set", "runner.accumulate=0", "--max-steps", "2"]) == 2
    assert "runner.accumulate" in capsys.readouterr().err
    assert main(argv + ["--max-steps", "2"]) == 0
    assert json.loads((out / "results.json").read_text())["steps"] == 2


def test_integral_floats_are_accepted_as_integers(tmp_path, ks_data):
    runner = Runner(_config(ks_data, **{"runner.total_steps": 2.0, "runner.eval_every": "2e0"}), tmp_path / "r",
                    progress=False)
    assert runner.run()["steps"] == 2


# -- devices -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tpu", "cuda:x", "gpu", ""])
def test_unknown_device_is_one_line(name):
    with pytest.raises(ValueError, match="--device"):
        pick_device(name)


def test_cli_device_tpu(tmp_path, ks_data, capsys):
    assert main(["run", "--upstream", "fbank", "--task", "ks", "--data", str(ks_data), "--device", "tpu",
                 "--output", str(tmp_path / "r"), "--max-steps", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--device 'tpu'" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


# -- resume --------------------------------------------------------------------------------------
def _log_steps(out):
    lines = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    return [l["step"] for l in lines if "loss" in l], [l["step"] for l in lines if "dev" in l]


def test_resume_rewinds_the_log_to_the_saved_step(tmp_path, ks_data):
    full = tmp_path / "full"
    Runner(_config(ks_data), full, progress=False).run()
    out = tmp_path / "killed"
    killed = KilledRunner(_config(ks_data), out, progress=False)
    killed.kill_at = 11  # last save at step 8; steps 9-11 were logged (loss at 10, dev at 10)
    with pytest.raises(Killed):
        killed.run()
    assert 10 in _log_steps(out)[0]
    with open(out / "log.jsonl", "a") as fh:
        fh.write('{"step": 1')  # a line cut by the kill
    Runner(_config(ks_data), out, resume=True, progress=False).run()
    assert _log_steps(out) == _log_steps(full) == ([2, 4, 6, 8, 10, 12], [5, 10, 12])


def test_resume_without_last_pt_is_an_error(tmp_path, ks_data, capsys):
    out = tmp_path / "run"
    killed = KilledRunner(_config(ks_data), out, progress=False)
    killed.kill_at = 2  # before the first save (save_every 4)
    with pytest.raises(Killed):
        killed.run()
    assert not (out / "checkpoints" / "last.pt").exists()
    with pytest.raises(RunDirectoryError, match=r"last\.pt does not exist.*before its first save \(runner\.save_every=4\)"):
        Runner(_config(ks_data), out, resume=True, progress=False)


def test_truncated_last_pt_is_a_clear_error(tmp_path, ks_data):
    out = tmp_path / "run"
    killed = KilledRunner(_config(ks_data), out, progress=False)
    killed.kill_at = 5
    with pytest.raises(Killed):
        killed.run()
    last = out / "checkpoints" / "last.pt"
    raw = last.read_bytes()
    last.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"last\.pt.*truncated or corrupt") as err:
        Runner(_config(ks_data), out, resume=True, progress=False).run()
    assert "\n" not in str(err.value)
    # the lock is released after the failure
    fileio.DirectoryLock(out).acquire().release()


def test_truncated_run_config_json_is_named(tmp_path, ks_data):
    out = tmp_path / "run"
    Runner(_config(ks_data, **{"runner.total_steps": 2}), out, progress=False).run()
    cfg = out / "config.json"
    cfg.write_text(cfg.read_text()[:40])
    with pytest.raises(ValueError, match=r"config\.json: truncated or invalid JSON"):
        Runner(_config(ks_data), out, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"config\.json: truncated or invalid JSON"):
        Runner(_config(ks_data), out, progress=False)
    from superb.benchmark.runner import evaluate_run

    with pytest.raises(ValueError, match=r"config\.json: truncated or invalid JSON"):
        evaluate_run(out, progress=False)


def test_stale_temporary_files_are_removed_on_resume(tmp_path, ks_data):
    out = tmp_path / "run"
    killed = KilledRunner(_config(ks_data), out, progress=False)
    killed.kill_at = 5
    with pytest.raises(Killed):
        killed.run()
    stale = out / "checkpoints" / ".last.pt.abc123.tmp"
    stale.write_bytes(b"partial")
    Runner(_config(ks_data), out, resume=True, progress=False).run()
    assert not stale.exists()


# -- checkpoints and writes --------------------------------------------------------------------
def test_empty_and_truncated_checkpoints_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pt: the file is empty"):
        safe_load(empty)
    for zipped in (True, False):
        path = tmp_path / f"model-{zipped}.pt"
        torch.save({"w": torch.randn(64, 64)}, path, _use_new_zipfile_serialization=zipped)
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 3])
        with pytest.raises(ValueError, match=rf"{path.name}: truncated or corrupt") as err:
            safe_load(path)
        assert "\n" not in str(err.value)


def test_full_disk_names_the_path_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    def full(fh, data):
        fh.write(data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "_write_all", full)
    target = tmp_path / "results.json"
    with pytest.raises(OSError, match=rf"no space left on device while writing {target}"):
        fileio.atomic_write_json(target, {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_full_disk_during_a_run_is_one_line(tmp_path, ks_data, monkeypatch, capsys):
    real = fileio._write_all
    calls = {"n": 0}

    def full_after_config(fh, data):
        calls["n"] += 1
        if calls["n"] > 1:  # config.json is written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fh, data)

    monkeypatch.setattr(fileio, "_write_all", full_after_config)
    out = tmp_path / "run"
    assert main(["run", "--upstream", "fbank", "--task", "ks", "--data", str(ks_data), "--output", str(out),
                 "--max-steps", "3", "--quiet", "--set", "runner.eval_every=1"]) == 2
    err = capsys.readouterr().err
    assert "no space left on device while writing" in err and "best.pt" in err
    assert not list(out.rglob("*.tmp"))


def test_temporary_names_are_unique(tmp_path, monkeypatch):
    seen = []
    real = fileio.tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        seen.append(name)
        return fd, name

    monkeypatch.setattr(fileio.tempfile, "mkstemp", spy)
    for _ in range(3):
        fileio.atomic_write_text(tmp_path / "log.txt", "x")
    assert len(set(seen)) == 3 and all(os.path.basename(n).startswith(".log.txt.") for n in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["log.txt"]
