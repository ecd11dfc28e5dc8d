"""SUPERB score, export and plots: the published scores are reproduced from the published rows."""
import csv
import hashlib
import io
import json

import numpy as np
import pytest

from superb.benchmark import leaderboard as lb
from superb.benchmark.cli import main
from superb.benchmark.export import ExportError, build_board, collect, render_table
from superb.benchmark.plots import layer_weight_matrix, write_plots

from results_fixtures import write_published_runs, write_run


def test_published_scores_from_the_published_rows():
    got = {name: lb.superb_s(lb.published_displayed(name), "paper") for name in lb.PUBLISHED_ROWS}
    for name, expected in lb.PUBLISHED_SCORES.items():
        assert got[name].display == expected, (name, got[name].superb_s)
        assert got[name].missing == []
    # the exact values behind the rounding (superb-reference.md section 7 rows, section 6 formula)
    assert got["HuBERT Base"].superb_s == pytest.approx(941.037, abs=1e-3)
    assert got["wav2vec 2.0 Large"].superb_s == pytest.approx(913.580, abs=1e-3)
    assert got["TERA"].superb_s == pytest.approx(149.918, abs=1e-3)
    assert got["FBANK"].superb_s == pytest.approx(0.0, abs=0.05)  # the leaderboard row rounds FBANK's KS/IC/SID
    # rows without a stated score (computed by the same formula)
    assert {n: got[n].display for n in ("APC", "VQ-APC", "modified CPC", "vq-wav2vec")} == \
        {"APC": 392, "VQ-APC": 377, "modified CPC": 278, "vq-wav2vec": 422}


def test_points_formula_signed_for_lower_is_better():
    per = lb.metric("pr", "PER")
    assert per.points(82.01) == 0 and per.points(3.53) == pytest.approx(1000)
    assert per.points(42.77) == pytest.approx(500)
    assert not per.higher_is_better and lb.metric("sid", "Acc").higher_is_better
    # SF: mean of F1 and CER points
    assert lb.task_points("sf", {"F1": 89.81, "CER": 52.94}) == pytest.approx(500)
    assert lb.task_points("se", {"PESQ": 2.64, "STOI": 93.6}) == pytest.approx(500)


def test_missing_task_means_no_score():
    row = lb.published_displayed("HuBERT Base")
    del row["sf"]
    s = lb.superb_s(row, "paper")
    assert s.superb_s is None and s.display is None and s.missing == ["sf"]
    public = lb.superb_s(lb.published_displayed("HuBERT Base"), "public")
    assert public.missing == ["st", "se", "ss"]


def test_superb_r_counts_strictly_lower_points_per_column():
    # displayed values; 100 = better than 50 on every column of the paper view (PER 10 beats PER 50)
    def row(good):
        out = {}
        for t in lb.VIEWS["paper"]:
            out[t] = {m.name: (m.sota if good else m.fbank) for m in lb.TASKS[t].metrics}
        return out
    rows = {"A": row(True), "B": row(False), "C": row(False), "D": {"pr": {"PER": 1.0}}}
    rows["B"]["pr"]["PER"] = 40.0  # PR: A 3.53 < B 40 < C 82.01 (lower is better); D 1.0 is best
    r = lb.superb_r(rows, "paper")
    # A beats B and C on every task (2 each; on PR D is above A but A still beats B and C): 20 / 10
    assert r["A"] == pytest.approx(2.0)
    assert r["B"] == pytest.approx(1 / 10)  # PR: beats C only; ties with C elsewhere count 0
    assert r["C"] == 0.0
    assert r["D"] == pytest.approx(3 / 10)  # missing 9 tasks: rank 0 there, still scored (the site's rule)


def test_task_modules_report_the_leaderboard_metrics():
    """Keeps the metric-name table honest as task modules arrive."""
    from superb.downstream.tasks import TASKS, get_task

    checked = 0
    for task in TASKS:
        if task not in lb.TASKS:
            continue
        cls = get_task(task)
        for m in lb.TASKS[task].metrics:
            key = next((k for k in m.result_keys if k in cls.metrics), None)
            assert key is not None, f"{task}: none of {m.result_keys} in {cls.metrics}"
            assert cls.metrics[key].higher_is_better == m.higher_is_better, (task, key)
            assert not cls.metrics[key].internal, (task, key)
        checked += 1
    assert checked == 13  # every SUPERB / SUPERB-SG leaderboard task declares its columns
    assert lb.TASK_ORDER == ("pr", "ks", "ic", "sid", "er", "asr", "asv", "sd", "qbe", "sf", "st", "se", "ss")
    assert lb.TASKS["er"].folds == 5 and lb.TASKS["qbe"].splits == ("test", "eval")


def test_export_reproduces_the_published_scores_from_results_files(tmp_path, capsys):
    write_published_runs(tmp_path / "runs")
    assert main(["export", str(tmp_path / "runs"), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    by_name = {u["upstream"]["name"]: u for u in out["upstreams"]}
    slug = lambda n: n.lower().replace(" ", "_").replace(".", "")  # noqa: E731
    for name, score in lb.PUBLISHED_SCORES.items():
        assert by_name[slug(name)]["superb_s_display"] == score, name
    # 12 upstreams: SUPERB_r present, HuBERT Large (best on 5 of 10 tasks) above FBANK
    assert by_name["hubert_large"]["superb_r"] > by_name["fbank"]["superb_r"]
    assert out["upstreams"][0]["label"] == "hubert_base"  # sorted by score
    assert main(["export", str(tmp_path / "runs")]) == 0
    table = capsys.readouterr().out
    line = next(line for line in table.splitlines() if line.startswith("hubert_base "))
    assert line.split()[-2:] == ["941", f"{by_name['hubert_base']['superb_r']:.2f}"]
    assert "64.92" in line and "0.74" not in line.split()[8:9]  # ER and QbE (MTWV x 100 = 7.36)
    assert "7.36" in line


def test_export_names_missing_tasks_and_folds(tmp_path, capsys):
    write_published_runs(tmp_path / "runs", names=["HuBERT Base", "TERA"], skip={("TERA", "sf"), ("TERA", "er")})
    fold_metrics = {"accuracy": 56.27}
    for k in (1, 2, 3):  # only three single-fold ER runs for TERA
        write_run(tmp_path / "runs", f"tera/er_fold{k}", "er", fold_metrics, upstream="tera", fold=str(k),
                  sha=hashlib.sha256(b"TERA").hexdigest())
    col = collect([tmp_path / "runs"])
    assert sorted(col.upstreams) == ["hubert_base", "tera"]
    assert col.upstreams["tera"].tasks["er"].problem == "ER needs all 5 folds; have 1, 2, 3, missing 4, 5"
    assert main(["export", str(tmp_path / "runs")]) == 0
    text = capsys.readouterr().out
    assert "tera: missing ER (ER needs all 5 folds; have 1, 2, 3, missing 4, 5), SF -> no SUPERB_s" in text
    line = next(line for line in text.splitlines() if line.startswith("tera "))
    assert line.split()[-2:] == ["-", "0.00"]  # no SUPERB_s; SUPERB_r still given (missing tasks rank 0)
    # a partial upstream still counts in the per-task ranks: HuBERT Base beats TERA on its 8 tasks
    assert next(line for line in text.splitlines() if line.startswith("hubert_base ")).split()[-2:] == ["941", "0.80"]


def test_er_single_fold_runs_are_averaged_and_lr_search_uses_dev(tmp_path):
    for k in range(1, 6):
        write_run(tmp_path, f"er{k}", "er", {"accuracy": 60.0 + k}, fold=str(k), dev={"accuracy": 50.0},
                  layer_weights=[0.5, 0.5] if k % 2 else [1.0, 0.0])
    # an LR search on KS: the best dev wins even though its test is lower
    write_run(tmp_path, "ks_lr1", "ks", {"accuracy": 95.0}, dev={"accuracy": 90.0})
    write_run(tmp_path, "ks_lr2", "ks", {"accuracy": 93.0}, dev={"accuracy": 92.0})
    col = collect([tmp_path])
    up = col.upstreams["hubert_base"]
    er = up.tasks["er"]
    assert er.problem is None and er.metrics["accuracy"] == pytest.approx(63.0)
    assert sorted(er.fold_predictions) == [1, 2, 3, 4, 5]
    assert er.layer_weights == pytest.approx([0.7, 0.3])
    assert up.tasks["ks"].metrics["accuracy"] == 93.0 and up.tasks["ks"].candidates == 2
    assert any("2 runs, using best dev" in n for n in col.notes)


def test_units_are_checked_and_bad_files_named(tmp_path, capsys):
    run = write_run(tmp_path, "qbe", "qbe", {"mtwv": 736.0})  # x100 twice
    with pytest.raises(ExportError, match=r"qbe.*mtwv=736.*outside"):
        collect([run])
    assert main(["export", str(run)]) == 2
    assert "results.json" in capsys.readouterr().err
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "results.json").write_text('{"task": "ks", "upstream": {}}')
    with pytest.raises(ExportError, match=r"broken/results.json: missing key 'upstream.name'"):
        collect([bad])
    with pytest.raises(ExportError, match="run directory not found"):
        collect([tmp_path / "nope"])
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.json").write_text("{}")
    with pytest.raises(ExportError, match="has not finished"):
        collect([tmp_path / "unfinished"])


def test_unknown_and_unscored_tasks_are_reported_not_crashed(tmp_path):
    write_run(tmp_path, "vc", "vc", {"mcd": 8.1}, higher={"mcd": False})
    write_run(tmp_path, "zz", "zz_future", {"score": 1.0})
    write_run(tmp_path, "ks", "ks", {"accuracy": 96.3})
    board = build_board(collect([tmp_path]), "paper")
    text = render_table(board)
    assert board.unscored == ["vc", "zz_future"]
    assert "hubert_base vc: mcd 8.10" in text and "zz_future" in text
    assert "not scored" in text and "96.30" in text


def test_formats_csv_markdown_public_view_and_published(tmp_path, capsys):
    write_published_runs(tmp_path / "runs", names=["wav2vec 2.0 Base"])
    assert main(["export", str(tmp_path / "runs"), "--format", "csv", "--published"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    mine = next(r for r in rows if r["upstream"] == "wav2vec_20_base")
    paper = next(r for r in rows if r["upstream"] == "wav2vec 2.0 Base (paper)")
    assert mine["superb_s_display"] == paper["superb_s_display"] == "818"
    assert float(mine["superb_r"]) == float(paper["superb_r"])  # equal points: neither ranks above the other
    assert mine["pr.PER"] == "5.74" and mine["qbe.MTWV"] == "2.33"
    assert main(["export", str(tmp_path / "runs"), "--format", "markdown", "--view", "public", "--points"]) == 0
    md = capsys.readouterr().out
    assert md.splitlines()[2].startswith("| upstream | PR pts | SID pts | QbE pts |")
    assert "missing ST, SE, SS -> no SUPERB_s" in md and "KS* pts" in md
    out = tmp_path / "board.json"
    assert main(["export", "--published", "--format", "json", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["reference_points"]["qbe"]["MTWV"] == {"fbank": 0.58, "sota": 7.36, "unit": "x100", "scale": 1.0}
    assert len(data["upstreams"]) == 12


def test_plots_scores_and_layer_weight_heatmap(tmp_path):
    root = tmp_path / "runs"
    for i, task in enumerate(["pr", "sid", "asr"]):
        w = np.zeros(13)
        w[[3, 6, 11][i]] = 1.0
        write_run(root, task, task, {lb.TASKS[task].metrics[0].result_keys[0]: [5.4, 81.4, 6.4][i]},
                  layer_weights=w.tolist())
    write_run(root, "w2v2_pr", "pr", {"per": 5.7}, upstream="wav2vec2")
    col = collect([root])
    tasks, mat = layer_weight_matrix(col.upstreams["hubert_base"])
    assert tasks == ["pr", "sid", "asr"] and mat.shape == (3, 13)
    assert mat.argmax(1).tolist() == [3, 6, 11]
    written = write_plots(col, build_board(col), tmp_path / "plots")
    names = sorted(p.name for p in written)
    assert names == ["layer_weights_hubert_base.png", "layer_weights_wav2vec2.png", "scores.png"]
    for p in written:
        head = p.read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        assert width > 300 and height > 200
