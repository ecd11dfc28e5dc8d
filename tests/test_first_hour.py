"""First-hour ergonomics: numbers as users write them, task ids, threads, the start block."""
import json

import pytest

from superb.benchmark.cli import main
from superb.benchmark.runner import default_threads, set_threads


def _argv(ks_data, out, *extra):
    return ["run", "--upstream", "fbank", "--task", "ks", "--data", str(ks_data), "--output", str(out),
            "--max-steps", "2", "--set", "runner.eval_every=2", *extra]


def test_yaml_1e_minus_3_is_a_number(tmp_path, ks_data):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("optimizer:\n  lr: 1e-3\nbatch:\n  max_seconds: 8e0\n")  # PyYAML reads both as strings
    out = tmp_path / "run"
    assert main(_argv(ks_data, out, "--config", str(cfg), "--quiet")) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["optimizer"]["lr"] == 0.001 and saved["batch"]["max_seconds"] == 8.0


def test_task_ids_are_case_insensitive(tmp_path, ks_data):
    argv = _argv(ks_data, tmp_path / "run", "--quiet")
    argv[argv.index("ks")] = "KS"
    assert main(argv) == 0
    assert json.loads((tmp_path / "run" / "results.json").read_text())["task"] == "ks"


def test_threads_default_and_validation(tmp_path, ks_data, capsys):
    assert default_threads() >= 1
    with pytest.raises(ValueError, match="--threads must be a whole number >= 1, got 0"):
        set_threads(0)
    out = tmp_path / "run"
    assert main(_argv(ks_data, out, "--threads", "1")) == 0
    err = capsys.readouterr().err
    block = [l for l in err.splitlines() if l.startswith("superb: ")]
    assert [l.split()[1] for l in block[:8]] == ["run", "task", "upstream", "data", "device", "features", "training",
                                                 "config"]
    assert "1 CPU threads" in err and "train " in err and str(out) in err
    res = json.loads((out / "results.json").read_text())
    assert res["threads"] == 1 and res["precision"] == "fp32"


def test_results_record_the_data_source(tmp_path, ks_data):
    out = tmp_path / "run"
    assert main(_argv(ks_data, out, "--quiet")) == 0
    assert json.loads((out / "results.json").read_text())["data"]["source"] == "folder"
    from superb.benchmark.runner import Runner

    runner = Runner.__new__(Runner)
    runner.config = {"data": {"dir": None, "mini_profile": "tiny", "mini_seed": 3}}
    assert runner.data_source() == {"source": "mini", "mini_profile": "tiny", "mini_seed": 3}


def test_a_stopped_run_says_how_to_resume_and_resume_needs_only_the_folder(tmp_path, ks_data, capsys):
    from superb.benchmark.runner import resume_run
    from test_runner_reliability import Killed, KilledRunner, _config

    out = tmp_path / "run"
    runner = KilledRunner(_config(ks_data), out, progress=True)
    runner.kill_at = 6
    with pytest.raises(Killed):
        runner.run()
    err = capsys.readouterr().err
    assert f"superb: stopped by Killed at step 6; the last save is step 4 ({out / 'checkpoints' / 'last.pt'}); " \
           f"continue with: superb resume {out}" in err
    # not a terminal: plain progress lines instead of tqdm's carriage returns
    assert "superb: step 2/12, loss " in err and " s/step, about " in err and "\r" not in err
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(isinstance(e["wall_s"], float) for e in log) and [e["step"] for e in log if "loss" in e] == [2, 4, 6]  # rewound to 4 on resume
    resumed = resume_run(out, progress=False)
    full = KilledRunner(_config(ks_data), tmp_path / "full", progress=False).run()
    assert resumed["steps"] == 12 and resumed["metrics"] == full["metrics"]
    with pytest.raises(Exception, match="holds no run to resume"):
        resume_run(tmp_path / "nothing")


def test_superb_resume_needs_only_the_run_folder(tmp_path, ks_data, capsys):
    out = tmp_path / "run"
    argv = _argv(ks_data, out, "--quiet")
    argv[argv.index("--max-steps") + 1] = "3"
    assert main(argv) == 0
    first = json.loads((out / "results.json").read_text())
    assert main(["resume", str(out), "--max-steps", "5", "--quiet"]) == 0  # train on to step 5
    again = json.loads((out / "results.json").read_text())
    assert (first["steps"], again["steps"]) == (3, 5) and again["config"]["runner"]["total_steps"] == 5
    assert f"results: {out / 'results.json'}" in capsys.readouterr().out
    assert main(["resume", str(tmp_path / "none"), "--quiet"]) == 2
    assert "holds no run to resume" in capsys.readouterr().err


def test_training_that_ends_while_dev_improves_says_so():
    from pathlib import Path

    from superb.benchmark.runner import Runner
    from superb.downstream.tasks import get_task

    def runner(task):
        r = Runner.__new__(Runner)
        r.task, r.config, r.output_dir = get_task(task)({}), {"runner": {"total_steps": 10}}, Path("out")
        return r

    ks = runner("ks")
    rising = {"history": [{"step": 5, "accuracy": 40.0}, {"step": 10, "accuracy": 50.0}], "best_step": 10}
    msg = ks.still_improving(rising)
    assert msg.startswith("dev accuracy was still improving when training ended (40.00 at step 5 -> 50.00 at step 10")
    assert "runner.total_steps=10" in msg and "superb resume out --max-steps N" in msg
    assert ks.still_improving({**rising, "best_step": 5}) is None  # the best is earlier
    assert ks.still_improving({"history": rising["history"][:1], "best_step": 5}) is None  # one evaluation
    flat = {"history": [{"step": 5, "accuracy": 50.0}, {"step": 10, "accuracy": 50.0}], "best_step": 10}
    assert ks.still_improving(flat) is None
    asr = runner("asr")  # lower is better
    assert asr.still_improving({"history": [{"step": 5, "wer": 60.0}, {"step": 10, "wer": 50.0}], "best_step": 10})
    assert asr.still_improving({"history": [{"step": 5, "wer": 50.0}, {"step": 10, "wer": 60.0}], "best_step": 10}) is None
