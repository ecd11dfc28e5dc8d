"""Speaker verification metrics (ASV; the VC speaker-similarity threshold): equal error rate, its
decision threshold, and the normalised minimum detection cost.

Sources (facts only, no code copied):

* The error curve: miss and false-alarm rates at every distinct score threshold, the detection
  error trade-off of Martin et al., "The DET curve in assessment of detection task performance"
  (Eurospeech 1997); a trial is accepted when its score is at or above the threshold.
* EER: the point where miss and false-alarm rates are equal, linearly interpolated between the
  two neighbouring operating points. This equals the SUPERB leaderboard's / s3prl
  ``sv_voxceleb1`` computation (sklearn ``roc_curve`` + ``brentq`` on ``1 - x - tpr(x)``; tested).
* minDCF: NIST SRE 2008 evaluation plan, ``DCF = C_miss P_miss P_target + C_fa P_fa (1 -
  P_target)``, minimised over thresholds and normalised by ``min(C_miss P_target, C_fa (1 -
  P_target))`` (the VoxCeleb / SRE convention).
* EER threshold (VC, s3prl ``a2o-vc-vcc2020`` ASV evaluation): the threshold ``t`` of the
  decision "accept when score > t" among the attainable operating points where ``|P_miss -
  P_fa|`` is smallest.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def _error_counts(labels, scores) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Operating points of "accept if score >= t" at every distinct score ``t`` (descending),
    preceded by "accept nothing": ``(distinct scores, hits, false alarms, N_target, N_nontarget)``
    where ``hits[0] = false_alarms[0] = 0`` and the last point accepts everything."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape or len(y) == 0:
        raise ValueError(f"need equally long, non-empty 1-d labels and scores (got {y.shape} and {s.shape})")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"trial labels must be 0 or 1, got {sorted(set(y.tolist()) - {0, 1})[:5]}")
    if not np.isfinite(s).all():
        raise ValueError("trial scores must be finite")
    y = y.astype(np.int64)
    n_target = int(y.sum())
    n_nontarget = len(y) - n_target
    if n_target == 0 or n_nontarget == 0:
        raise ValueError(f"EER/minDCF need target and non-target trials (got {n_target} and {n_nontarget})")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each group of equal scores
    hits = np.r_[0, np.cumsum(y)[last]]
    false_alarms = np.r_[0, np.cumsum(1 - y)[last]]
    return s[last], hits, false_alarms, n_target, n_nontarget


def error_curve(labels, scores) -> Tuple[np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every distinct threshold ("accept if score >= t"), starting
    from "accept nothing" (miss 1, false alarm 0) and ending at "accept everything" (0, 1).

    Source: the DET curve, Martin et al. 1997."""
    _, hits, false_alarms, n_target, n_nontarget = _error_counts(labels, scores)
    miss = np.r_[1.0, 1.0 - hits[1:] / n_target]
    fa = np.r_[0.0, false_alarms[1:] / n_nontarget]
    return miss, fa


def equal_error_rate(labels, scores) -> float:
    """EER in percent: where miss and false-alarm rates are equal on the ROC curve (linear
    interpolation between neighbouring operating points; equals sklearn ``roc_curve`` + ``brentq``,
    the SUPERB / s3prl ``sv_voxceleb1`` computation)."""
    miss, fa = error_curve(labels, scores)
    d = miss - fa  # starts at 1, ends at -1, non-increasing
    i = int(np.argmax(d <= 0))
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(100.0 * (fa[i - 1] + t * (fa[i] - fa[i - 1])))


def eer_threshold(scores, labels) -> float:
    """The score threshold where false acceptance and false rejection rates meet, for the decision
    "accept when score > threshold" (s3prl ``a2o-vc-vcc2020`` ASV evaluation).

    Among the attainable operating points (one per distinct score, plus "accept everything"),
    the one with the smallest ``|FRR - FAR|``; on equal gaps the lowest threshold (the most
    accepting point). The threshold is the highest score that is rejected, or ``min(score) -
    1e-6`` when everything is accepted. Note the argument order (scores first)."""
    distinct, hits, false_alarms, n_target, n_nontarget = _error_counts(labels, scores)
    frr = (n_target - hits) / n_target     # targets rejected
    far = false_alarms / n_nontarget       # non-targets accepted
    gap = np.abs(frr - far)
    # point k accepts the k highest distinct scores; its "> t" threshold is the next lower one
    thresholds = np.r_[distinct, distinct[-1] - 1e-6]
    k = len(gap) - 1 - int(np.argmin(gap[::-1]))  # the last minimum: the most accepting point
    return float(thresholds[k])


def min_dcf(labels, scores, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised minimum detection cost (NIST SRE 2008): ``min_t (c_miss P_miss p_target + c_fa
    P_fa (1 - p_target)) / min(c_miss p_target, c_fa (1 - p_target))``."""
    if not 0.0 < p_target < 1.0 or c_miss <= 0 or c_fa <= 0:
        raise ValueError(f"minDCF needs 0 < p_target < 1 and positive costs (got {p_target}, {c_miss}, {c_fa})")
    miss, fa = error_curve(labels, scores)
    cost = c_miss * miss * p_target + c_fa * fa * (1.0 - p_target)
    return float(cost.min() / min(c_miss * p_target, c_fa * (1.0 - p_target)))


__all__ = ["error_curve", "equal_error_rate", "eer_threshold", "min_dcf"]
