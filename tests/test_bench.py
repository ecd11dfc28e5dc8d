"""``superb bench``: every task in one command, killed and restarted, and the submitit code path.

The whole benchmark runs once on the tiny mini corpus with FBANK (a few steps per task, two local
workers); the bench process is killed with SIGKILL after some tasks have finished and started
again with the same command, which must finish only what was missing. Its table, SUPERB score,
plots and submission zip are then checked, and a second bench of three of its tasks through
submitit's local executor (and one through the debug executor) must give the same numbers.
"""
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from superb.benchmark import leaderboard as lb
from superb.benchmark.bench import BenchError, parse_data, parse_sets, select_tasks
from superb.benchmark.cli import main

STEPS = "8"
TASK_COUNT = 15


def _bench_cmd(out: Path, *extra: str):
    return [sys.executable, "-m", "superb.benchmark.cli", "bench", "--upstream", "fbank", "--mini-profile", "tiny",
            "--max-steps", STEPS, "--output", str(out), "--no-tensorboard", *extra]


def _results(out: Path):
    return {p.parent.name: p for p in (out / "runs").glob("*/results.json")}


def _started(out: Path):
    return [d.name for d in (out / "runs").glob("*") if not (d / "results.json").is_file()
            and ((d / "config.json").is_file() or any(d.glob("fold*/config.json")))]


@pytest.fixture(scope="module")
def killed_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "fbank"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = _bench_cmd(out, "--tasks", "all", "--jobs", "2")
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 900
    # kill once 3 tasks have finished and another is mid-run (its config.json written)
    while (len(_results(out)) < 3 or not _started(out)) and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, "the bench ended before it could be killed:\n" + first.stdout.read()
    first.send_signal(signal.SIGKILL)  # the bench process only: its workers must die with it
    first.wait()
    first.stdout.close()
    time.sleep(1.0)
    before = {t: p.read_bytes() for t, p in _results(out).items()}
    assert 3 <= len(before) < TASK_COUNT and _started(out)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    return out, before, second


def test_task_selection_and_arguments(tmp_path):
    assert select_tasks("superb") == list(lb.VIEWS["paper"])
    assert select_tasks("sg") == ["st", "ood_asr", "vc", "se", "ss"]
    assert select_tasks("KS,asr,ks") == ["ks", "asr"]
    assert len(select_tasks("all")) == TASK_COUNT
    with pytest.raises(BenchError, match="kss.*Did you mean.*ks.*or a set: all, superb"):
        select_tasks("kss")
    with pytest.raises(BenchError, match="selects no task"):
        select_tasks(" , ")
    assert parse_data([], ["ks", "pr"]) == {"ks": None, "pr": None}
    with pytest.raises(BenchError, match="does not mix"):
        parse_data([f"ks={tmp_path}"], ["ks", "pr"])
    with pytest.raises(BenchError, match="not a folder"):
        parse_data([f"ks={tmp_path / 'nope'}"], ["ks"])
    with pytest.raises(BenchError, match="TASK=DIR"):
        parse_data(["ks"], ["ks"])
    assert parse_sets(["runner.seed=3", "ks:optimizer.lr=0.5"], ["ks", "pr"]) == {
        "ks": ["runner.seed=3", "optimizer.lr=0.5"], "pr": ["runner.seed=3"]}
    with pytest.raises(BenchError, match="not selected"):
        parse_sets(["asr:optimizer.lr=1"], ["ks"])


def test_bad_key_fails_before_any_job(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["bench", "--upstream", "fbank", "--tasks", "ks,pr", "--output", str(out),
                 "--set", "pr:runner.total_step=3"]) == 2
    err = capsys.readouterr().err
    assert "task pr" in err and "total_step" in err
    assert not (out / "runs").exists()


def test_killed_bench_finishes_only_what_was_missing(killed_bench):
    out, before, second = killed_bench
    assert second.returncode == 0, second.stdout + second.stderr
    for task, data in before.items():  # finished runs were skipped, not rerun
        assert (out / "runs" / task / "results.json").read_bytes() == data
        assert f"{task}: already finished" in second.stdout
    index = json.loads((out / "bench.json").read_text())
    states = {j["task"]: j["state"] for j in index["jobs"]}
    assert len(states) == TASK_COUNT and set(states.values()) <= {"done", "skipped"}
    assert sorted(t for t, s in states.items() if s == "skipped") == sorted(before)
    assert any(j["resumed"] for j in index["jobs"]), "no job was caught mid-run by the kill"
    # the SUPERB score of the finished board, in both views, and the plots
    for view in ("paper", "public"):
        row = index["boards"][view]["upstreams"][0]
        assert row["mini"] and not row["missing"] and isinstance(row["superb_s"], float)
    assert f"SUPERB_s (paper view) fbank: {index['boards']['paper']['upstreams'][0]['superb_s']:.1f}" \
        in second.stdout
    assert (out / "plots" / "scores.png").stat().st_size > 1000
    assert "| ks |" in (out / "summary.md").read_text() and "KS Acc" in (out / "table.md").read_text()
    # the zip is what `superb submit` builds from the same runs (its validation passes)
    sub = index["submission"]
    assert sub["zip"] == "predict.zip" and sub["mini"] and not sub["missing"]
    again = out / "again.zip"
    assert main(["submit", str(out / "runs"), "--out", str(again), "--allow-mini"]) == 0
    with zipfile.ZipFile(out / "predict.zip") as a, zipfile.ZipFile(again) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        assert all(a.read(n) == b.read(n) for n in a.namelist())


@pytest.mark.parametrize("executor,tasks", [("submitit-local", "ks,er,qbe"), ("submitit-debug", "sid")])
def test_submitit_executors_give_the_same_numbers(killed_bench, tmp_path, executor, tasks):
    out, _, _ = killed_bench
    other = tmp_path / executor
    done = subprocess.run(_bench_cmd(other, "--tasks", tasks, "--executor", executor, "--jobs", "2"),
                          env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    for task in tasks.split(","):
        a = json.loads((out / "runs" / task / "results.json").read_text())["metrics"]
        b = json.loads((other / "runs" / task / "results.json").read_text())["metrics"]
        assert a == b, task
    assert (other / "submitit").is_dir()


def test_failed_task_is_reported_and_the_rest_finish(tmp_path):
    out = tmp_path / "b"
    # a dev split larger than VC's tiny training set: the task's own error, at run time
    done = subprocess.run(_bench_cmd(out, "--tasks", "ks,vc", "--jobs", "1", "--set", "vc:task.dev_utterances=50"),
                          env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=900)
    assert done.returncode == 1
    index = json.loads((out / "bench.json").read_text())
    jobs = {j["task"]: j for j in index["jobs"]}
    assert jobs["ks"]["state"] == "done" and jobs["vc"]["state"] == "failed"
    assert "dev_utterances=50" in jobs["vc"]["error"] and jobs["vc"]["log"].endswith("vc.log")
    assert "vc (" in done.stderr and "FAILED" in done.stdout
    assert index["boards"]["paper"]["upstreams"][0]["tasks"]["ks"]["values"]
