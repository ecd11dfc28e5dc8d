"""``superb pretrain`` data-parallel: 2 gloo processes on the CPU share every batch (process 0
writes the log, the checkpoints and the export; each process draws its own crops), and a run
stopped and resumed in 2 processes gives the same losses and weights as one never stopped."""
import json
import socket

import torch
import torch.multiprocessing as mp

from conftest import pretrain_log
from superb.benchmark import distributed
from superb.upstream.pretrain.loop import pretrain

SETS = ["model.hidden_size=16"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, data, runs):
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    for folder, steps, resume in runs:
        summary = pretrain("apc", folder, data=data, max_steps=steps, save_every=2, seed=3, progress=False,
                           sets=SETS, resume=resume)
        assert summary["processes"] == world
    distributed.shutdown()


def test_two_processes_share_batches_and_resume_exactly(mini_data, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    runs = [(str(straight), 4, False), (str(resumed), 2, False), (str(resumed), 4, True)]
    mp.spawn(_worker, args=(2, _free_port(), mini_data, runs), nprocs=2, join=True)

    def lines(folder):
        return [{k: v for k, v in l.items() if k != "wall_s"} for l in pretrain_log(folder)]

    assert [l["step"] for l in lines(straight)] == [1, 2, 3, 4]  # one line per step: rank 0 alone writes
    assert lines(resumed) == lines(straight)
    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)
    assert a["processes"] == 2 and len(a["ranks"]) == 2
    assert not torch.equal(a["ranks"][0]["loop"], a["ranks"][1]["loop"])  # each process its own draws
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    summary = json.loads((straight / "pretrain.json").read_text())
    assert summary["processes"] == 2 and (straight / "apc.ckpt").is_file()


def test_cli_nproc_relaunches_through_torchrun(mini_data, tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "superb.benchmark.cli", "pretrain", "--objective", "apc", "--nproc", "2",
           "--data", str(mini_data), "--output", str(out), "--max-steps", "2", "--set", "model.hidden_size=16",
           "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("pretrain: apc (tiny), 2 steps") == 1  # reported by rank 0 only
    assert [l["step"] for l in pretrain_log(out)] == [1, 2]
    assert json.loads((out / "pretrain.json").read_text())["processes"] == 2
