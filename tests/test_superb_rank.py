"""SUPERB_r by the leaderboard site's rule, reproduced by hand from the published SUPERB rows.

Rule (superbbenchmark/website-react, frontend/src/overall_metrics.js, ``ranking`` and
``task_aggregate``; see the docstring of superb.benchmark.leaderboard): every metric column of the
view ranked apart, rank = number of upstreams with strictly fewer points in that column, a missing
value ranks 0 and the upstream is still scored, column ranks averaged within a task, task ranks
summed and divided by the number of tasks of the view.
"""
import json

import pytest

from superb.benchmark import leaderboard as lb
from superb.benchmark.cli import main

from results_fixtures import write_published_runs

BOARD = ("FBANK", "wav2vec 2.0 Base", "HuBERT Base", "wav2vec 2.0 Large")


def _board(missing=(("wav2vec 2.0 Large", "er"),)):
    rows = {name: lb.published_displayed(name) for name in BOARD}
    for name, task in missing:
        del rows[name][task]
    return rows


def test_superb_r_by_hand_from_published_rows_with_a_missing_task():
    # Published rows (superb-reference.md section 7; QbE MTWV x 100), paper view, four upstreams on
    # the board; wav2vec 2.0 Large has no ER result.
    #
    #            PR↓    SID↑   KS↑    QbE↑  IC↑    ASR↓  ASV↓  ER↑    SD↓   SF F1↑ SF CER↓
    # FBANK      82.01  20.06  41.38  0.58  9.65   23.18 9.56  48.24  10.05 69.64  52.94
    # w2v2 Base   5.74  75.18  96.23  2.33  92.35   6.43 6.02  63.43   6.08 88.30  24.77
    # HuBERT Base 5.41  81.42  96.30  7.36  98.34   6.42 5.11  64.92   5.88 88.53  25.20
    # w2v2 Large  4.75  86.14  96.66  4.89  95.28   3.75 5.65  (none)  5.62 87.11  27.31
    #
    # Column ranks = how many upstreams have strictly fewer points (worse value) in that column:
    #   PR   FBANK 0, w2v2B 1, HuB 2, w2v2L 3      (lower PER is better)
    #   SID  FBANK 0, w2v2B 1, HuB 2, w2v2L 3
    #   KS   FBANK 0, w2v2B 1, HuB 2, w2v2L 3
    #   QbE  FBANK 0, w2v2B 1, w2v2L 2, HuB 3
    #   IC   FBANK 0, w2v2B 1, w2v2L 2, HuB 3
    #   ASR  FBANK 0, w2v2B 1, HuB 2 (6.42 < 6.43), w2v2L 3
    #   ASV  FBANK 0, w2v2B 1, w2v2L 2, HuB 3
    #   ER   FBANK 0, w2v2B 1, HuB 2; w2v2L missing -> 0 (and not counted as beaten by the others)
    #   SD   FBANK 0, w2v2B 1, HuB 2, w2v2L 3
    #   SF F1  FBANK 0, w2v2L 1, w2v2B 2, HuB 3
    #   SF CER FBANK 0, w2v2L 1, HuB 2, w2v2B 3   (CER ranked apart: w2v2 Base 24.77 beats HuBERT 25.20)
    #   SF task rank = mean of F1 and CER: FBANK 0, w2v2L 1, w2v2B 2.5, HuB 2.5
    # Sum over the 10 tasks, / 10:
    #   FBANK 0                                    -> 0.00
    #   w2v2B 1+1+1+1+1+1+1+1+1+2.5 = 11.5         -> 1.15
    #   HuB   2+2+2+3+3+2+3+2+2+2.5 = 23.5         -> 2.35
    #   w2v2L 3+3+3+2+2+3+2+0+3+1   = 22           -> 2.20 (missing ER, still scored)
    detail = lb.superb_r_detail(_board(), "paper")
    r = {name: d.superb_r for name, d in detail.items()}
    assert r == pytest.approx({"FBANK": 0.0, "wav2vec 2.0 Base": 1.15, "HuBERT Base": 2.35,
                               "wav2vec 2.0 Large": 2.2})
    assert lb.superb_r(_board(), "paper") == r
    w2l, hub, w2b = detail["wav2vec 2.0 Large"], detail["HuBERT Base"], detail["wav2vec 2.0 Base"]
    assert w2l.columns[("er", "Acc")] == 0 and w2l.tasks["er"] == 0.0
    assert hub.columns[("er", "Acc")] == 2  # w2v2 Large's missing ER is nobody's win
    assert (hub.columns[("sf", "F1")], hub.columns[("sf", "CER")]) == (3, 2)
    assert (w2b.columns[("sf", "F1")], w2b.columns[("sf", "CER")]) == (2, 3)
    assert hub.tasks["sf"] == w2b.tasks["sf"] == 2.5
    assert [d.display for d in detail.values()] == [0.0, 1.15, 2.35, 2.2]
    # SUPERB_s, by contrast, drops the upstream with a missing task
    assert lb.superb_s(_board()["wav2vec 2.0 Large"], "paper").superb_s is None


def test_columns_are_ranked_apart_not_the_task_points():
    # On task points SF would go to w2v2 Base (914.3 vs HuBERT Base's 913.1 points), a full rank
    # apart; the site ranks F1 and CER separately, so the two split SF 2.5 / 2.5.
    f1, cer = lb.metric("sf", "F1"), lb.metric("sf", "CER")
    hub, w2b = lb.published_displayed("HuBERT Base")["sf"], lb.published_displayed("wav2vec 2.0 Base")["sf"]
    assert lb.task_points("sf", w2b) > lb.task_points("sf", hub)
    assert f1.points(hub["F1"]) > f1.points(w2b["F1"]) and cer.points(w2b["CER"]) > cer.points(hub["CER"])
    two = lb.superb_r_detail({"HuBERT Base": {"sf": hub}, "wav2vec 2.0 Base": {"sf": w2b}}, "paper")
    assert two["HuBERT Base"].tasks["sf"] == two["wav2vec 2.0 Base"].tasks["sf"] == 0.5
    # SE in the public view: PESQ and STOI ranked apart too
    se = lb.superb_r_detail({"X": {"se": {"PESQ": 2.60, "STOI": 93.7}}, "Y": {"se": {"PESQ": 2.58, "STOI": 94.0}}},
                            "public")
    assert se["X"].columns[("se", "PESQ")] == 1 and se["X"].columns[("se", "STOI")] == 0
    assert se["X"].tasks["se"] == se["Y"].tasks["se"] == 0.5
    assert se["X"].superb_r == se["Y"].superb_r == pytest.approx(0.05)  # 0.5 over the public view's 10 tasks


def test_ties_share_the_lower_rank_and_bad_values_count_as_missing():
    rows = _board(missing=())
    rows["HuBERT Base (rerun)"] = lb.published_displayed("HuBERT Base")
    r = lb.superb_r_detail(rows, "paper")
    # equal points: neither beats the other; both beat FBANK and w2v2 Base on PR, w2v2 Large beats 4
    assert r["HuBERT Base"].columns[("pr", "PER")] == r["HuBERT Base (rerun)"].columns[("pr", "PER")] == 2
    assert r["wav2vec 2.0 Large"].columns[("pr", "PER")] == 4
    assert r["HuBERT Base"].superb_r == r["HuBERT Base (rerun)"].superb_r
    # a NaN or non-number value is a missing value (the site's is_number_and_not_nan)
    rows["HuBERT Base (rerun)"]["pr"] = {"PER": float("nan")}
    r = lb.superb_r_detail(rows, "paper")
    assert r["HuBERT Base (rerun)"].columns[("pr", "PER")] == 0
    assert r["wav2vec 2.0 Large"].columns[("pr", "PER")] == 3
    with pytest.raises(lb.LeaderboardError, match="unknown view"):
        lb.superb_r(rows, "hidden")


def test_rank_display_rounds_half_up_like_the_site():
    assert lb.rank_display(1.15) == 1.15
    assert lb.rank_display(2.125) == 2.13  # Math.round(212.5) / 100; Python's format would give 2.12
    assert lb.rank_display(0.004) == 0.0


def test_export_ranks_published_runs_with_a_missing_task(tmp_path, capsys):
    write_published_runs(tmp_path / "runs", names=list(BOARD), skip={("wav2vec 2.0 Large", "er")})
    assert main(["export", str(tmp_path / "runs"), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    by = {u["label"]: u for u in out["upstreams"]}
    assert {k: v["superb_r"] for k, v in by.items()} == pytest.approx(
        {"fbank": 0.0, "wav2vec_20_base": 1.15, "hubert_base": 2.35, "wav2vec_20_large": 2.2})
    large = by["wav2vec_20_large"]
    assert large["superb_s"] is None and large["missing"] == ["er"]
    assert large["task_ranks"]["er"] == 0 and large["column_ranks"]["sf"] == {"F1": 1, "CER": 1}
    assert by["hubert_base"]["column_ranks"]["sf"] == {"F1": 3, "CER": 2}
    assert "overall_metrics.js" in out["rank_source"]
    assert main(["export", str(tmp_path / "runs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(x for x in lines if x.startswith("wav2vec_20_large "))
    assert line.split()[-2:] == ["-", "2.20"]
    assert next(x for x in lines if x.startswith("hubert_base ")).split()[-1] == "2.35"
