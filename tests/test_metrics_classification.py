"""Classification metrics (superb.downstream.metrics.classification): accuracy and balanced
accuracy by hand and against scikit-learn, per-class counts against a confusion matrix."""
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

from superb.downstream.metrics.classification import accuracy, balanced_accuracy, per_class_counts

KS_CLASSES = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_", "_silence_")
# hand-made: yes 3 (2 right), no 2 (0 right), _unknown_ 5 (5 right), _silence_ 1 (1 right); "go" is
# predicted once but absent from the labels (sklearn leaves it out of the mean, as we do)
LABELS = ["yes", "yes", "yes", "no", "no", "_unknown_", "_unknown_", "_unknown_", "_unknown_", "_unknown_", "_silence_"]
PREDS = ["yes", "yes", "go", "_unknown_", "yes", "_unknown_", "_unknown_", "_unknown_", "_unknown_", "_unknown_",
         "_silence_"]


def _sklearn_balanced(labels, preds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        return 100.0 * balanced_accuracy_score(labels, preds)


def test_accuracy():
    assert accuracy(["a", "b", "c", "d"], ["a", "x", "c", "y"]) == 50.0
    assert accuracy([("a", 1), ("b", 2)], [("a", 1), ("b", 3)]) == 50.0  # IC: tuples of slots
    assert accuracy(LABELS, PREDS) == pytest.approx(100.0 * accuracy_score(LABELS, PREDS)) == pytest.approx(800 / 11)
    with pytest.raises(ValueError):
        accuracy(["a"], [])
    with pytest.raises(ValueError):
        accuracy([], [])


def test_balanced_accuracy_by_hand_and_against_sklearn():
    expected = 100.0 * (2 / 3 + 0 / 2 + 5 / 5 + 1 / 1) / 4
    assert balanced_accuracy(LABELS, PREDS, KS_CLASSES) == pytest.approx(expected)
    assert balanced_accuracy(LABELS, PREDS, KS_CLASSES) == pytest.approx(_sklearn_balanced(LABELS, PREDS))
    assert balanced_accuracy(LABELS, PREDS) == pytest.approx(expected)  # the order only changes the summation
    rng = np.random.default_rng(3)
    y = [str(v) for v in rng.integers(0, 6, 500)]
    p = [str(v) for v in rng.integers(0, 7, 500)]
    assert balanced_accuracy(y, p) == pytest.approx(_sklearn_balanced(y, p))
    with pytest.raises(ValueError, match="empty split"):
        balanced_accuracy([], [])


def test_per_class_counts_order_and_values():
    counts = per_class_counts(LABELS, PREDS, KS_CLASSES)
    assert list(counts) == ["yes", "no", "go", "_unknown_", "_silence_"]  # the given class order
    assert counts["yes"] == {"examples": 3, "correct": 2, "predicted": 3}
    assert counts["no"] == {"examples": 2, "correct": 0, "predicted": 0}
    assert counts["go"] == {"examples": 0, "correct": 0, "predicted": 1}
    assert counts["_unknown_"] == {"examples": 5, "correct": 5, "predicted": 6}
    assert list(per_class_counts(["b", "a"], ["c", "a"])) == ["a", "b", "c"]  # no order given: sorted
    assert list(per_class_counts(["b", "z"], ["z", "b"], ("z",))) == ["z", "b"]  # given ones first, then sorted
    # against the confusion matrix: row sums, diagonal, column sums
    order = list(counts)
    cm = confusion_matrix(LABELS, PREDS, labels=order)
    assert [counts[c]["examples"] for c in order] == cm.sum(1).tolist()
    assert [counts[c]["correct"] for c in order] == np.diag(cm).tolist()
    assert [counts[c]["predicted"] for c in order] == cm.sum(0).tolist()


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="2 predictions for 3 examples"):
        per_class_counts(["yes", "no", "up"], ["yes", "no"])
