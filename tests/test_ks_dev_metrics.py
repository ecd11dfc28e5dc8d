"""KS reports balanced accuracy (mean per-class recall) beside accuracy, and writes per-class
accuracy to predictions/<split>/per_class.tsv: a constant `_unknown_` head scores a high dev
accuracy on an `_unknown_`-heavy dev split, but only 100/12 % balanced accuracy."""
import math

import pytest

from superb.downstream.tasks import get_task
from superb.downstream.tasks.base import Example
from superb.downstream.metrics.classification import balanced_accuracy
from superb.downstream.tasks.ks import CLASSES, KeywordSpotting

# (balanced accuracy and per-class counts themselves: tests/test_metrics_classification.py)
from test_metrics_classification import LABELS, PREDS, _sklearn_balanced as _sklearn


def _examples(labels):
    return [Example(f"{label}/f{i:03d}_nohash_0.wav", None, label) for i, label in enumerate(labels)]


def test_constant_unknown_head_on_an_unknown_heavy_dev_split():
    # the mini corpus's dev split: 12 of each command, 190 _unknown_, 27 _silence_ (docs/tasks/ks.md)
    labels = [c for c in CLASSES[:10] for _ in range(12)] + ["_unknown_"] * 190 + ["_silence_"] * 27
    preds = ["_unknown_"] * len(labels)
    scores = KeywordSpotting({}).score(_examples(labels), preds)
    assert scores["accuracy"] == pytest.approx(100.0 * 190 / 337)  # 56.4
    assert scores["balanced_accuracy"] == pytest.approx(100.0 / 12) == pytest.approx(_sklearn(labels, preds))
    # a balanced split (the test archive): both metrics agree
    balanced = [c for c in CLASSES for _ in range(12)]
    scores = KeywordSpotting({}).score(_examples(balanced), ["_unknown_"] * len(balanced))
    assert scores["accuracy"] == pytest.approx(100.0 / 12) == pytest.approx(scores["balanced_accuracy"])


def test_score_keys_units_and_primary():
    task = get_task("ks")
    scores = task({}).score(_examples(LABELS), PREDS)
    assert set(scores) == set(task.metrics) == {"accuracy", "balanced_accuracy"}
    assert scores["accuracy"] == pytest.approx(100.0 * 8 / 11)
    assert task.primary_metric == "accuracy"  # SUPERB's metric: still the one that picks the dev checkpoint
    assert task.metric_units() == {"accuracy": "percent", "balanced_accuracy": "percent"}
    assert all(isinstance(v, float) for v in scores.values())  # results.json metrics stay single numbers


def test_per_class_file_next_to_predictions(tmp_path):
    files = KeywordSpotting({}).write_predictions(tmp_path, "dev", _examples(LABELS), PREDS)
    # results.json lists the prediction file only; the per-class report lies beside it
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["dev/predict.txt"]
    predict = (tmp_path / "dev" / "predict.txt").read_text().splitlines()
    assert predict[0] == "_silence_-f010_nohash_0.wav _silence_"  # the leaderboard's <label>-<file>.wav ids
    rows = [line.split("\t") for line in (tmp_path / "dev" / "per_class.tsv").read_text().splitlines()]
    assert rows[0] == ["class", "examples", "correct", "accuracy", "predicted"]
    table = {r[0]: r[1:] for r in rows[1:]}
    assert table["yes"] == ["3", "2", "66.67", "3"] and table["no"] == ["2", "0", "0.00", "0"]
    assert table["go"][:2] == ["0", "0"] and math.isnan(float(table["go"][2])) and table["go"][3] == "1"
    present = [float(v[2]) for v in table.values() if v[0] != "0"]
    assert sum(present) / len(present) == pytest.approx(balanced_accuracy(LABELS, PREDS), abs=0.01)
