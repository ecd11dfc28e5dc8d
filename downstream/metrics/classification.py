"""Utterance classification metrics (SID, ER, IC, KS): accuracy, balanced accuracy, per-class counts.

Sources (facts only, no code copied):

* accuracy: the fraction of predictions equal to their label, in percent (SUPERB's metric of
  SID, ER, IC and KS; s3prl's ``downstream`` experts report it that way).
* balanced accuracy: the mean over the classes present in the labels of each class's recall,
  the definition of scikit-learn's ``balanced_accuracy_score`` (Brodersen et al., "The balanced
  accuracy and its posterior distribution", ICPR 2010), in percent; classes that are only
  predicted do not enter the mean (tested against sklearn).
"""
from __future__ import annotations

from typing import Dict, Hashable, Sequence


def accuracy(labels: Sequence, predictions: Sequence) -> float:
    """Percentage of predictions equal to their label (SUPERB / s3prl accuracy)."""
    if len(labels) != len(predictions) or not labels:
        raise ValueError(f"accuracy needs equally many labels and predictions (got {len(labels)} and {len(predictions)})")
    return 100.0 * sum(a == b for a, b in zip(labels, predictions)) / len(labels)


def per_class_counts(labels: Sequence[Hashable], predictions: Sequence[Hashable],
                     classes: Sequence[Hashable] = ()) -> Dict[Hashable, Dict[str, int]]:
    """``{class: {"examples", "correct", "predicted"}}`` for every class among the labels or the
    predictions: the classes of ``classes`` that occur, in that order, then any other, sorted.
    The counts behind per-class recall (the confusion matrix's diagonal and margins)."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} examples")
    seen = set(labels) | set(predictions)
    order = [c for c in classes if c in seen] + sorted(seen - set(classes))
    counts = {c: {"examples": 0, "correct": 0, "predicted": 0} for c in order}
    for label, pred in zip(labels, predictions):
        counts[label]["examples"] += 1
        counts[label]["correct"] += int(label == pred)
        counts[pred]["predicted"] += 1
    return counts


def balanced_accuracy(labels: Sequence[Hashable], predictions: Sequence[Hashable],
                      classes: Sequence[Hashable] = ()) -> float:
    """Mean recall (%) over the classes present in ``labels`` (sklearn's ``balanced_accuracy_score``
    x 100): every class weighs the same however many examples it has. ``classes`` only fixes the
    order of the summation (see :func:`per_class_counts`)."""
    recalls = [c["correct"] / c["examples"] for c in per_class_counts(labels, predictions, classes).values()
               if c["examples"]]
    if not recalls:
        raise ValueError("balanced accuracy of an empty split")
    return 100.0 * sum(recalls) / len(recalls)


__all__ = ["accuracy", "balanced_accuracy", "per_class_counts"]
