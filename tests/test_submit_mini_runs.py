"""Real ``superb run`` jobs of the ten public-set tasks with upstream ``fbank`` on the tiny embedded
mini corpus, then ``superb submit`` on all ten run folders: the zip is checked against what the
leaderboard server's scorer (superbbenchmark/website-react ``backend/calculate.py``; see
docs/submission.md) reads, task by task."""
import csv
import io
import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest

from superb.benchmark.cli import main

TASKS = ("pr", "asr", "ks", "qbe", "sid", "asv", "sd", "er", "ic", "sf")
KS_LABELS = {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_", "_silence_"}
KS_ID = re.compile(r"^[^/\s]+-[^/\s]+\.wav$")          # the server's key: <label>-<file>.wav
TRIAL = r"id\d+-[^\s/]+-\d+"                           # <spk>-<video>-<utt> (VoxCeleb ids)
PAIR = re.compile(rf"^({TRIAL})_({TRIAL})$")


@pytest.fixture(scope="module")
def mini_runs(tmp_path_factory):
    """``{task: run dir}`` after 2 training steps (QbE: no training) of each task, and the seconds each took."""
    # module scope runs before conftest's function-scoped cache fixture: name the same shared cache explicitly
    cache = os.environ.setdefault("SUPERB_TEST_CACHE", str(tmp_path_factory.getbasetemp() / "superb-cache"))
    root = tmp_path_factory.mktemp("mini-runs")
    runs, seconds = {}, {}
    for task in TASKS:
        out = root / task
        args = ["run", "--upstream", "fbank", "--task", task, "--mini-profile", "tiny", "--cache-dir", cache,
                "--output", str(out), "--quiet"]
        if task != "qbe":  # QbE is DTW search over the upstream's features: nothing to train
            args += ["--max-steps", "2", "--set", "runner.eval_every=2"]
        start = time.perf_counter()
        code = main(args)
        seconds[task] = time.perf_counter() - start
        assert code == 0, f"superb run --task {task} exited {code}"
        assert (out / "results.json").is_file(), f"{task}: no results.json in {out}"
        runs[task] = out
    return runs, seconds


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def _text_lines(data: bytes):
    text = data.decode("utf-8")
    assert text.endswith("\n") and "\r" not in text
    lines = text.splitlines()
    assert all(line.strip() for line in lines), "blank line: the server would key it as '' and fail the task"
    return lines


def _ids_unique(lines, sep=" "):
    ids = [line.split(sep, 1)[0] for line in lines]
    assert len(set(ids)) == len(ids)
    return ids


def _test_count(run: Path) -> int:
    return _results(run)["data"]["num_examples"]["test"]


def test_mini_runs_of_all_tasks_make_a_leaderboard_zip(mini_runs, tmp_path, capsys):
    runs, seconds = mini_runs
    with capsys.disabled():
        print(f"\nmini runs ({sum(seconds.values()):.1f} s):", ", ".join(f"{t} {s:.1f}" for t, s in seconds.items()))
    capsys.readouterr()
    zip1, zip2 = tmp_path / "a" / "predict.zip", tmp_path / "b" / "predict.zip"
    run_dirs = [str(runs[t]) for t in TASKS]
    assert main(["submit", *run_dirs, "--out", str(zip1)]) == 2  # mini-corpus runs: refused without --allow-mini
    assert "on the embedded mini corpus (profile tiny, seed 0)" in capsys.readouterr().err and not zip1.exists()
    assert main(["submit", *run_dirs, "--out", str(zip1), "--allow-mini"]) == 0
    printed = capsys.readouterr().out
    assert main(["submit", *reversed(run_dirs), "--out", str(zip2), "--allow-mini"]) == 0
    capsys.readouterr()

    # deterministic: the same bytes, whatever the order the runs are named in
    assert zip1.read_bytes() == zip2.read_bytes()

    # the printed summary: ten tasks, every file, the three public-set tasks without a run
    assert "upstream fbank, 10 tasks" in printed
    assert "not included (no runs): st, se, ss" in printed

    with zipfile.ZipFile(zip1) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        files = {n: zf.read(n) for n in names if not n.endswith("/")}
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
    assert names == sorted(names) and all(n.startswith("predict/") for n in names)
    for name in files:
        assert f"  {name}  (" in printed

    folders = {n.split("/")[1] for n in files}
    expected_folders = {"pr_public", "asr_public", "ks_public", "qbe_public", "sid_public", "sv_public",
                        "sd_public", "ic_public", "sf_public", *(f"er_fold{k}_public" for k in range(1, 6))}
    assert folders == expected_folders  # no asr_lm_public (greedy decoding), nothing for se/ss/st

    # PR, ASR, SF: `utt hypothesis` (the hypothesis may be empty), one line per test utterance
    for task, folder in (("pr", "pr_public"), ("asr", "asr_public"), ("sf", "sf_public")):
        lines = _text_lines(files[f"predict/{folder}/predict.ark"])
        ids = _ids_unique(lines)
        assert len(lines) == _test_count(runs[task]), task
        assert all("  " not in line and line == line.strip() for line in lines), task
        own = (runs[task] / "predictions" / "test" / "predict.ark").read_text().splitlines()
        assert set(ids) == {line.split(" ", 1)[0] for line in own}, task

    # KS: `<label>-<file>.wav label`, labels among the 12 classes
    lines = _text_lines(files["predict/ks_public/predict.txt"])
    assert len(lines) == _test_count(runs["ks"])
    _ids_unique(lines)
    for line in lines:
        utt, label = line.split(" ")
        assert KS_ID.match(utt), utt
        assert label in KS_LABELS, label
        assert utt.split("-", 1)[0] in KS_LABELS  # the test set's label folder

    # SID: `utt speaker`
    lines = _text_lines(files["predict/sid_public/predict.txt"])
    assert len(lines) == _test_count(runs["sid"])
    _ids_unique(lines)
    assert all(len(line.split(" ")) == 2 for line in lines)

    # IC: `id,action,object,location`, no header
    lines = _text_lines(files["predict/ic_public/predict.csv"])
    assert len(lines) == _test_count(runs["ic"])
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    assert all(len(r) == 4 and all(c and c == c.strip() for c in r) for r in rows)
    assert [c.lower() for c in rows[0][1:]] != ["action", "object", "location"]
    assert [line.split(",") for line in lines] == rows  # the server splits on ",": no quoting
    _ids_unique(lines, ",")

    # ER: all five folds, `utt label`, each fold's own test set
    for k in range(1, 6):
        lines = _text_lines(files[f"predict/er_fold{k}_public/predict.txt"])
        ids = _ids_unique(lines)
        assert len(lines) == _test_count(runs["er"] / f"fold{k}"), k
        assert all(len(line.split(" ")) == 2 for line in lines)
        assert all(i.startswith(f"Ses0{k}") for i in ids), k  # fold k tests on Session k

    # QbE: the STD list XML
    root = ET.fromstring(files["predict/qbe_public/benchmark.stdlist.xml"])
    assert root.tag == "stdlist"
    termlists = root.findall("detected_termlist")
    assert len(termlists) == _test_count(runs["qbe"])
    assert all(t.get("termid") and t.findall("term") for t in termlists)

    # ASV: `<enroll>_<test> score`, the pairs of the run's `enroll test score` lines
    lines = _text_lines(files["predict/sv_public/predict.txt"])
    _ids_unique(lines)
    trials = (runs["asv"] / "predictions" / "test" / "scores.txt").read_text().splitlines()
    assert len(lines) == len(trials) > 0

    def trial(p):
        spk, video, utt = p.split("/")[-3:]
        return f"{spk}-{video}-{Path(utt).stem}"

    for line, raw in zip(lines, trials):
        pair, score = line.split(" ")
        assert PAIR.match(pair), pair
        assert np.isfinite(float(score))
        enroll, test, raw_score = raw.split()
        assert pair == f"{trial(enroll)}_{trial(test)}" and float(score) == float(raw_score)

    # SD: <recording>.h5 at the top of sd_public (the server's glob is sd_public/*.h5), dataset T_hat
    # [frames, speakers] in [0, 1]; frame_shift a positive integer; no posteriors/ folder
    h5py = pytest.importorskip("h5py")
    sd = {n[len("predict/sd_public/"):]: b for n, b in files.items() if n.startswith("predict/sd_public/")}
    h5s = sorted(n for n in sd if n.endswith(".h5"))
    assert all("/" not in n for n in sd) and not any(n.endswith(".npy") for n in sd)
    assert len(h5s) == _test_count(runs["sd"])
    assert {Path(n).stem for n in h5s} == {Path(p).stem for p in
                                           (runs["sd"] / "predictions" / "test" / "posteriors").glob("*.npy")}
    num_speakers = _results(runs["sd"])["config"]["task"]["num_speakers"]
    for name in h5s:
        with h5py.File(io.BytesIO(sd[name]), "r") as h5:
            t_hat = h5["T_hat"][:]
        assert t_hat.ndim == 2 and t_hat.shape[0] > 0 and t_hat.shape[1] == num_speakers, name
        assert np.issubdtype(t_hat.dtype, np.floating)
        assert np.all((t_hat >= 0) & (t_hat <= 1)), name
        assert np.array_equal(t_hat, np.load(runs["sd"] / "predictions" / "test" / "posteriors" / f"{Path(name).stem}.npy"))
    shift = sd["frame_shift"].decode().strip()
    assert shift.isdigit() and int(shift) > 0
    assert int(shift) == _results(runs["sd"])["upstream"]["downsample_rate"]

    # the server scores a file only if libmagic calls it text/plain (IC also text/csv, application/csv)
    if shutil.which("file"):
        out = tmp_path / "unzipped"
        with zipfile.ZipFile(zip1) as zf:
            zf.extractall(out)
        scored = [n for n in files if n.endswith((".ark", ".txt", ".csv")) and not n.startswith("predict/sd_public/")]
        for name in scored:
            mime = subprocess.run(["file", "-b", "--mime-type", str(out / name)], capture_output=True,
                                  text=True, check=True).stdout.strip()
            allowed = {"text/plain", "text/csv", "application/csv"} if name.endswith(".csv") else {"text/plain"}
            assert mime in allowed, f"{name}: libmagic says {mime}; the server would skip it"
