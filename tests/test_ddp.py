"""Data parallel inside one run: 2 gloo processes on the CPU train as one process on the same
global batches (loss per logged step within 1e-5, same dev and test metrics), also when killed
and resumed under DDP; rank 0 alone writes; the batch split is a pure rule."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from superb.benchmark import distributed
from superb.benchmark.config import ConfigError
from superb.benchmark.runner import Runner, resume_run

from conftest import write_speech_commands
from test_runner import Killed, KilledRunner, _config

# 7 one-second clips per batch: parts of 4 and 3 utterances (unequal shares); 2 batches per step
SETS = {"runner.total_steps": 8, "runner.eval_every": 4, "runner.save_every": 3, "runner.log_every": 1,
        "runner.accumulate": 2, "batch.max_seconds": 7.0, "optimizer.lr": 3e-3}


def _cfg(data):
    cfg = _config("ks", data, **SETS)
    cfg["workers"] = 0
    return cfg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The KS corpus and one single-process run of it (the numbers DDP must reproduce)."""
    root = tmp_path_factory.mktemp("ddp")
    data = write_speech_commands(root / "sc")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SUPERB_CACHE_DIR", str(root / "cache"))
        Runner(_cfg(data), root / "single", progress=False).run()
    return data, root / "single"


def _lines(run_dir):
    lines = [json.loads(l) for l in (run_dir / "log.jsonl").read_text().splitlines()]
    return [l for l in lines if "loss" in l], [l for l in lines if "dev" in l]


def _assert_same_as_one_process(run_dir, single_dir, uninterrupted=True):
    train, dev = _lines(run_dir)
    train1, dev1 = _lines(single_dir)
    assert [l["step"] for l in train] == [l["step"] for l in train1] == list(range(1, 9))
    for a, b in zip(train, train1):
        assert abs(a["loss"] - b["loss"]) <= 1e-5, (a, b)
        assert a["lr"] == b["lr"]
    assert [l["step"] for l in dev] == [l["step"] for l in dev1] == [4, 8]
    assert [l["dev"] for l in dev] == [l["dev"] for l in dev1]
    r = json.loads((run_dir / "results.json").read_text())
    r1 = json.loads((single_dir / "results.json").read_text())
    assert r["metrics"] == r1["metrics"] and r["best_step"] == r1["best_step"]
    assert r["layer_weights"] == pytest.approx(r1["layer_weights"], abs=1e-6)
    assert r["data_parallel"] == {"processes": 2, "backend": "gloo", "evaluation": "sharded, gathered on rank 0"}
    assert "data_parallel" not in r1
    if uninterrupted:  # every utterance of a batch was looked up once, by one process (counts summed)
        fc, fc1 = r["feature_cache"], r1["feature_cache"]
        assert fc["hits"] + fc["misses"] == fc1["hits"] + fc1["misses"] > 0
    return r


def _worker(rank, world, port, data, out, cache):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), SUPERB_CACHE_DIR=cache)
    torch.set_num_threads(1)
    killed = KilledRunner(_cfg(data), out, progress=False)
    killed.kill_at = 5  # saved at step 3: steps 4-5 are trained again after the resume
    try:
        killed.run()
    except Killed:
        pass
    else:
        raise AssertionError("the run was not killed")
    del killed  # as a killed process would: nothing of the first run outlives it
    if rank == 0:
        saved = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
        assert saved["state"]["step"] == 3 and len(saved["ranks"]) == world
    resume_run(out, progress=False)
    distributed.shutdown()


def test_two_processes_killed_and_resumed_train_as_one(reference, tmp_path):
    data, single = reference
    out = tmp_path / "ddp"
    mp.spawn(_worker, args=(2, _free_port(), data, out, str(tmp_path / "cache")), nprocs=2, join=True)
    _assert_same_as_one_process(out, single, uninterrupted=False)
    saved = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert saved["state"]["step"] == 8 and len(saved["ranks"]) == 2


def test_superb_run_nproc_relaunches_through_torchrun(reference, tmp_path):
    data, single = reference
    out = tmp_path / "cli"
    sets = [a for k, v in SETS.items() if k != "runner.total_steps" for a in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "superb.benchmark.cli", "run", "--nproc", "2", "--upstream", "fbank", "--task", "ks",
           "--data", str(data), "--output", str(out), "--max-steps", "8", "--device", "cpu", "--workers", "0",
           "--quiet", *sets]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "SUPERB_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("results: ") == 1  # printed by rank 0 only
    _assert_same_as_one_process(out, single)
    assert len(list((out / "tensorboard").iterdir())) == 1  # one writer: rank 0's


def test_the_batch_split_is_a_pure_rule():
    lengths = {10: 300, 11: 100, 12: 200, 13: 100, 14: 500, 15: 400, 16: 250}
    batch = (14, 11, 12, 15, 13, 10, 16)  # sorted by length, ties by place: 11 13 12 16 10 15 14
    parts = [distributed.shard(batch, lengths, r, 2) for r in range(2)]
    assert parts == [(11, 12, 10, 14), (13, 16, 15)]
    assert [distributed.shard(batch, lengths, r, 3) for r in range(3)] == [(11, 16, 14), (13, 10), (12, 15)]
    assert distributed.shard((11,), lengths, 1, 2) == ()  # fewer utterances than processes: an empty part
    assert distributed.strip_nproc(["run", "--nproc", "2", "--task", "ks", "--nproc=3"]) == ["run", "--task", "ks"]


def test_data_parallel_refusals_name_the_value(tmp_path, monkeypatch):
    ctx = distributed.Context(rank=0, world=2, local_rank=0, local_world=2, backend="gloo")
    assert distributed.process_device("cpu", ctx) == "cpu"
    with pytest.raises(ValueError, match=r"--device cuda:1: a data-parallel run gives process r the GPU cuda:LOCAL_RANK"):
        distributed.process_device("cuda:1", ctx)
    with pytest.raises(ValueError, match=r"--nproc must be a whole number >= 1, got 0"):
        distributed.relaunch(["run"], 0)

    class TwoProcesses(distributed.Context):  # rank 0 of 2, without a process group
        def broadcast(self, obj):
            return obj

    monkeypatch.setattr(distributed, "context", lambda device="auto": TwoProcesses(0, 2, 0, 2, "gloo"))
    cfg = _config("sd", tmp_path / "nothing")
    with pytest.raises(ConfigError, match=r"task sd: a data-parallel run .* sd declares None: run it in one process"):
        Runner(cfg, tmp_path / "sd", progress=False)
    assert not (tmp_path / "sd").exists()
