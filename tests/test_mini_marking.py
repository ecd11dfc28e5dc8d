"""Runs on the embedded mini corpus cannot be mistaken for real results: ``superb export`` marks
them and keeps them out of scores against the published rows, ``superb submit`` refuses them,
``--allow-mini`` overrides both. The runs are hand-written (tests/results_fixtures.py) with the
``data`` block the runner writes (``Runner.data_source`` in benchmark/runner.py)."""
import csv
import io
import json
import zipfile

from superb.benchmark import leaderboard as lb
from superb.benchmark.cli import main
from superb.benchmark.export import build_board, collect, mini_source, render_table
from superb.benchmark.plots import write_plots

from results_fixtures import write_run


def _mark(run, source):
    """Add the runner's ``data`` block: ``{"dir", "source", ...}`` as ``Runner._results`` writes it."""
    data = json.loads((run / "results.json").read_text())
    data["data"] = {"dir": str(run / "data"), **source, "num_examples": {"train": 8, "dev": 4, "test": 4}}
    (run / "results.json").write_text(json.dumps(data, indent=2))
    return run


MINI = {"source": "mini", "mini_profile": "tiny", "mini_seed": 3}
FOLDER = {"source": "folder"}


def _paper_runs(root, upstream, scale=1.0, source=None):
    """One run per paper-view task with values from a published row (scaled)."""
    row = lb.PUBLISHED_ROWS["HuBERT Base"]
    for task, values in row.items():
        keys = {m.name: m.result_keys[0] for m in lb.TASKS[task].metrics}
        test = {keys[m]: v * scale / lb.metric(task, m).scale for m, v in values.items()}
        higher = {keys[m]: lb.metric(task, m).higher_is_better for m in values}
        folds = None
        if lb.TASKS[task].folds:
            folds = {str(k): {"metrics": {"test": test}, "predictions": {"test": []}} for k in range(1, 6)}
        run = write_run(root, f"{upstream}/{task}", task, test, upstream=upstream, folds=folds, higher=higher)
        if source is not None:
            _mark(run, source)


def _ks_run(root, name="ks", upstream="fbank", source=MINI, acc=60.0):
    run = write_run(root, name, "ks", {"accuracy": acc}, upstream=upstream,
                    files={"predict.txt": "yes-0a2b400e_nohash_0.wav yes\n"})
    return _mark(run, source) if source is not None else run


def test_mini_source_reads_the_runner_block():
    assert mini_source({"data": {"dir": "x", **MINI}}) == MINI
    assert mini_source({"data": {"dir": "/data/ks", **FOLDER}}) is None
    assert mini_source({"data": {"dir": "/data/ks"}}) is None  # no data.source: an older run, real data
    assert mini_source({}) is None


def test_export_marks_mini_rows_in_table_csv_and_json(tmp_path, capsys):
    _paper_runs(tmp_path / "runs", "fbank", scale=1.0, source=MINI)
    _paper_runs(tmp_path / "runs", "hubert_base", source=FOLDER)
    assert main(["export", str(tmp_path / "runs")]) == 0
    table = capsys.readouterr().out
    assert "fbank [mini]" in table
    assert "hubert_base [mini]" not in table and "hubert_base" in table
    assert "[mini] = trained and tested on the embedded mini corpus" in table
    assert "fbank [mini] (profile tiny, seed 3)" in table

    assert main(["export", str(tmp_path / "runs"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ups = {u["label"]: u for u in data["upstreams"]}
    assert ups["fbank"]["mini"] is True and ups["fbank"]["data_source"] == MINI
    assert ups["fbank"]["display_label"] == "fbank [mini]"
    assert ups["fbank"]["tasks"]["ks"]["data_source"] == MINI
    assert ups["hubert_base"]["mini"] is False and ups["hubert_base"]["data_source"] is None
    assert ups["hubert_base"]["tasks"]["ks"]["data_source"] == FOLDER
    # without --published: the mini row keeps its SUPERB_s (the mini benchmark), ranked apart
    assert ups["fbank"]["superb_s_display"] == ups["hubert_base"]["superb_s_display"] == 941
    assert ups["fbank"]["unscored"] is None

    assert main(["export", str(tmp_path / "runs"), "--format", "csv"]) == 0
    rows = {r["upstream"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert rows["fbank [mini]"]["mini"] == "true" and rows["hubert_base"]["mini"] == "false"

    assert main(["export", str(tmp_path / "runs"), "--format", "markdown"]) == 0
    assert "| fbank [mini] |" in capsys.readouterr().out


def test_mini_and_real_runs_of_one_upstream_are_separate_rows(tmp_path):
    # the mini run has the better dev accuracy: it must not be chosen as the real run's "best dev"
    _ks_run(tmp_path, "ks_real", source=FOLDER, acc=41.0)
    _ks_run(tmp_path, "ks_old", source=None, acc=42.0)  # no data.source: counts as real data
    _ks_run(tmp_path, "ks_mini", acc=99.0)
    col = collect([tmp_path])
    assert sorted(col.upstreams) == ["fbank", "fbank [mini]"]
    real, mini = col.upstreams["fbank"], col.upstreams["fbank [mini]"]
    assert not real.mini and real.tasks["ks"].metrics["accuracy"] == 42.0
    assert mini.mini and mini.display == "fbank [mini]" and mini.tasks["ks"].metrics["accuracy"] == 99.0
    text = render_table(build_board(col))
    assert "fbank [mini] [mini]" not in text
    assert "ranks them only among mini rows" in text


def test_published_without_allow_mini_leaves_mini_rows_unscored(tmp_path, capsys):
    _paper_runs(tmp_path / "runs", "fbank", source=MINI)        # HuBERT Base's values, on the mini corpus
    _paper_runs(tmp_path / "runs", "hubert_base", source=FOLDER)
    assert main(["export", str(tmp_path / "runs"), "--published"]) == 0
    table = capsys.readouterr().out
    line = next(ln for ln in table.splitlines() if ln.startswith("fbank [mini]"))
    assert line.split()[-2:] == ["mini", "mini"]           # SUPERB_s and SUPERB_r cells say why
    assert "5.41" in line                                     # the metric values are still shown
    notes = [ln for ln in table.splitlines() if "fbank [mini] (profile tiny, seed 3)" in ln]
    assert len(notes) == 1 and "no SUPERB_s/SUPERB_r next to the published rows" in notes[0]
    assert "--allow-mini" in notes[0]

    assert main(["export", str(tmp_path / "runs"), "--published", "--format", "json"]) == 0
    ups = {u["label"]: u for u in json.loads(capsys.readouterr().out)["upstreams"]}
    assert ups["fbank"]["superb_s"] is None and ups["fbank"]["superb_r"] is None
    assert ups["fbank"]["unscored"] == "mini" and ups["fbank"]["missing"] == []
    # the published rows' ranking ignores the mini row: the same as without it
    alone = tmp_path / "alone"
    _paper_runs(alone, "hubert_base", source=FOLDER)
    assert main(["export", str(alone), "--published", "--format", "json"]) == 0
    ref = {u["label"]: u for u in json.loads(capsys.readouterr().out)["upstreams"]}
    for label, u in ref.items():
        assert ups[label]["superb_r"] == u["superb_r"], label
        assert ups[label]["superb_s"] == u["superb_s"], label


def test_published_with_allow_mini_scores_mini_rows(tmp_path, capsys):
    _paper_runs(tmp_path / "runs", "fbank", source=MINI)
    assert main(["export", str(tmp_path / "runs"), "--published", "--allow-mini", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ups = {u["label"]: u for u in data["upstreams"]}
    assert ups["fbank"]["mini"] is True and ups["fbank"]["unscored"] is None
    assert ups["fbank"]["superb_s_display"] == 941 and ups["fbank"]["superb_r"] is not None
    # ranked with the published rows: it ties HuBERT Base (same values)
    assert ups["fbank"]["superb_r"] == ups["HuBERT Base (paper)"]["superb_r"]
    assert main(["export", str(tmp_path / "runs"), "--published", "--allow-mini"]) == 0
    table = capsys.readouterr().out
    line = next(ln for ln in table.splitlines() if ln.startswith("fbank [mini]"))
    assert line.split()[-2] == "941"
    assert "scored and ranked with the real-data rows (--allow-mini)" in table


def test_plots_mark_mini_rows(tmp_path):
    _paper_runs(tmp_path / "runs", "fbank", source=MINI)
    _paper_runs(tmp_path / "runs", "hubert_base", source=FOLDER)
    col = collect([tmp_path / "runs"])
    board = build_board(col)
    written = sorted(p.name for p in write_plots(col, board, tmp_path / "plots"))
    assert "layer_weights_fbank_mini.png" in written and "layer_weights_hubert_base.png" in written
    assert "scores.png" in written


def test_submit_refuses_mini_runs_unless_allowed(tmp_path, capsys):
    run = _ks_run(tmp_path, "ks")
    out = tmp_path / "predict.zip"
    assert main(["submit", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"superb: error: {run} was trained/tested on the embedded mini corpus (profile tiny, seed 3); "
                   "the leaderboard scores the real test sets; pass --allow-mini to pack it anyway")
    assert not out.exists()

    assert main(["submit", str(run), "--out", str(out), "--allow-mini"]) == 0
    printed = capsys.readouterr().out
    assert "upstream fbank, 1 tasks" in printed and "warning: --allow-mini" in printed
    with zipfile.ZipFile(out) as zf:
        assert zf.read("predict/ks_public/predict.txt") == b"yes-0a2b400e_nohash_0.wav yes\n"


def test_submit_names_every_mini_run_folder(tmp_path, capsys):
    a = _ks_run(tmp_path, "ks")
    b = write_run(tmp_path, "sid", "sid", {"accuracy": 50.0}, upstream="fbank",
                  files={"predict.txt": "id10270-5r0dWxy17C8-00001 id10270\n"})
    _mark(b, MINI)
    assert main(["submit", str(tmp_path), "--out", str(tmp_path / "p.zip"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{a}, {b} were trained/tested" in err or f"{b}, {a} were trained/tested" in err
    assert "pass --allow-mini to pack them anyway" in err and len(err.strip().splitlines()) == 1


def test_submit_accepts_real_and_unlabelled_runs(tmp_path, capsys):
    real = _ks_run(tmp_path, "real", source=FOLDER)
    old = _ks_run(tmp_path / "old", "ks", source=None)  # no data.source (older runs): treated as real data
    for run in (real, old):
        assert main(["submit", str(run), "--out", str(run / "p.zip")]) == 0, capsys.readouterr().err
        assert "warning" not in capsys.readouterr().out


def test_plan_submission_refuses_only_when_asked(tmp_path):
    from superb.benchmark.submit import SubmitError, plan_submission

    col = collect([_ks_run(tmp_path, "ks")])
    plan = plan_submission(col)  # the library packs; `superb submit` passes allow_mini=False
    assert plan.mini == "profile tiny, seed 3" and plan.included == ["ks"]
    try:
        plan_submission(col, allow_mini=False)
    except SubmitError as exc:
        assert "pass --allow-mini to pack it anyway" in str(exc)
    else:
        raise AssertionError("mini run not refused")


def test_two_mini_corpora_of_one_upstream_are_named(tmp_path):
    _ks_run(tmp_path, "tiny", acc=50.0)
    _ks_run(tmp_path, "default", source={"source": "mini", "mini_profile": "default", "mini_seed": 0}, acc=70.0)
    col = collect([tmp_path])
    assert sorted(u.display for u in col.upstreams.values()) == ["fbank [mini default, seed 0]",
                                                                  "fbank [mini tiny, seed 3]"]
