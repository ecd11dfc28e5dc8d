"""Spoken term detection metrics (QbE): maximum and actual term-weighted value.

Source (facts only, no code copied): NIST 2006 Spoken Term Detection evaluation plan, TWV as the
QUESST scoring tool computes it (``score-TWV-Cnxe.sh``, one trial per query and document):
``TWV(theta) = 1 - mean_q [P_miss(q, theta) + beta P_fa(q, theta)]`` over the queries with
``N_true(q) > 0`` occurrences, ``P_miss = 1 - hits / N_true``, ``P_fa = false alarms / (N_docs -
N_true)``, ``beta = (C_fa / C_miss) (1 - P_target) / P_target``. Written as a sum over detected
trials: a hit adds ``1 / (Q N_true(q))``, a false alarm ``-beta / (Q (N_docs - N_true(q)))``, and
detecting nothing gives 0. MTWV is the maximum over thresholds, ATWV the value at a fixed decision.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def twv_weights(targets: np.ndarray, beta: float) -> Tuple[np.ndarray, np.ndarray]:
    """Per-trial TWV contributions of a detection and the mask of scored queries (N_true > 0)
    (NIST STD 2006 TWV written per trial)."""
    n_docs = targets.shape[1]
    n_true = targets.sum(1)
    scored = n_true > 0
    q = int(scored.sum())
    if q == 0:
        raise ValueError("TWV: no query has an occurrence in the ground truth")
    with np.errstate(divide="ignore", invalid="ignore"):
        hit = 1.0 / (q * n_true)
        fa = -beta / (q * (n_docs - n_true))
    w = np.where(targets, hit[:, None], fa[:, None])
    return w[scored], scored


def maximum_twv(scores: np.ndarray, targets: np.ndarray, beta: float) -> Tuple[float, float]:
    """``(MTWV, threshold)``: the best TWV over thresholds (detect when score >= threshold;
    NIST STD 2006 / QUESST ``score-TWV-Cnxe.sh``).

    ``scores`` and ``targets`` are ``[queries, documents]``; ``TWV(theta)`` is the sum of the
    contributions of detected trials, ``1 / (Q N_true(q))`` for a hit and
    ``-beta / (Q (N_docs - N_true(q)))`` for a false alarm. Detecting nothing gives 0.
    """
    w, scored = twv_weights(targets.astype(bool), beta)
    s = scores[scored].ravel()
    w = w.ravel()
    order = np.argsort(-s, kind="stable")
    s, w = s[order], w[order]
    csum = np.cumsum(w)
    ends = np.nonzero(np.r_[s[1:] != s[:-1], True])[0]  # last index of each group of equal scores
    values = csum[ends]
    k = int(np.argmax(values))
    if values[k] <= 0:
        return 0.0, float("inf")
    return float(values[k]), float(s[ends[k]])


def actual_twv(scores: np.ndarray, targets: np.ndarray, beta: float, threshold: float) -> float:
    """TWV of the decisions ``score > threshold`` (ATWV, NIST STD 2006)."""
    w, scored = twv_weights(targets.astype(bool), beta)
    return float(w[scores[scored] > threshold].sum())


__all__ = ["actual_twv", "maximum_twv", "twv_weights"]
