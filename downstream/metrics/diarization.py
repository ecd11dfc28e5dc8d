"""Speaker diarization metric (SD): diarization error rate and its components.

Source (facts only, no code copied): NIST Rich Transcription evaluation (``md-eval.pl``, RT-04S
onwards): ``DER = (missed speech + false alarm + speaker confusion) / total reference speech``,
where at every instant ``miss = max(N_ref - N_hyp, 0)``, ``false alarm = max(N_hyp - N_ref, 0)``
and ``confusion = min(N_ref, N_hyp) - N_correct`` under the optimal one-to-one mapping of
hypothesis to reference speakers (the Hungarian algorithm on the co-occurrence durations). As
SUPERB / s3prl ``diarization`` score it: no collar, overlapped speech scored. Checked against
``pyannote.metrics``' ``DiarizationErrorRate(collar=0, skip_overlap=False)``.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

Interval = Tuple[float, float]  # (start, end) in seconds


def union_intervals(intervals: Sequence[Interval]) -> List[Interval]:
    """The sorted union of ``intervals`` (empty ones dropped; touching ones merged): one speaker's
    own overlapping segments count once, as in md-eval."""
    out: List[List[float]] = []
    for st, et in sorted(i for i in intervals if i[1] > i[0]):
        if out and st <= out[-1][1]:
            out[-1][1] = max(out[-1][1], et)
        else:
            out.append([st, et])
    return [(a, b) for a, b in out]


def der_components(ref: Dict[str, Sequence[Interval]], hyp: Dict[str, Sequence[Interval]]) -> Dict[str, float]:
    """Scored speech, miss, false alarm and confusion (seconds) of one recording; no collar,
    overlap scored, optimal one-to-one speaker mapping (NIST md-eval definitions)."""
    ref_spk, hyp_spk = sorted(ref), sorted(hyp)
    ref_iv = [union_intervals(ref[s]) for s in ref_spk]
    hyp_iv = [union_intervals(hyp[s]) for s in hyp_spk]
    bounds = sorted({t for ivs in ref_iv + hyp_iv for iv in ivs for t in iv})
    if len(bounds) < 2:
        return {"total": 0.0, "miss": 0.0, "false_alarm": 0.0, "confusion": 0.0}
    bounds = np.asarray(bounds)
    mids = (bounds[:-1] + bounds[1:]) / 2
    durs = np.diff(bounds)

    def activity(ivs):
        act = np.zeros(len(mids), dtype=bool)
        for st, et in ivs:
            act |= (mids > st) & (mids < et)
        return act

    r = np.stack([activity(v) for v in ref_iv]) if ref_iv else np.zeros((0, len(mids)), bool)
    h = np.stack([activity(v) for v in hyp_iv]) if hyp_iv else np.zeros((0, len(mids)), bool)
    n_ref, n_hyp = r.sum(0), h.sum(0)
    correct = np.zeros(len(mids))
    if len(ref_iv) and len(hyp_iv):
        cooc = (r[:, None, :] & h[None, :, :]).astype(np.float64) @ durs
        rows, cols = linear_sum_assignment(cooc, maximize=True)
        for i, j in zip(rows, cols):
            correct += (r[i] & h[j])
    return {
        "total": float((n_ref * durs).sum()),
        "miss": float((np.maximum(n_ref - n_hyp, 0) * durs).sum()),
        "false_alarm": float((np.maximum(n_hyp - n_ref, 0) * durs).sum()),
        "confusion": float(((np.minimum(n_ref, n_hyp) - correct) * durs).sum()),
    }


def diarization_error_rate(refs: Dict[str, Dict[str, Sequence[Interval]]],
                           hyps: Dict[str, Dict[str, Sequence[Interval]]]) -> Dict[str, float]:
    """DER and its components (%) summed over recordings (every reference recording is scored;
    NIST RT md-eval definition, no collar, overlap scored)."""
    tot = {"total": 0.0, "miss": 0.0, "false_alarm": 0.0, "confusion": 0.0}
    for rec in refs:
        comp = der_components(refs[rec], hyps.get(rec, {}))
        for k in tot:
            tot[k] += comp[k]
    if tot["total"] <= 0:
        raise ValueError("DER: the reference holds no speech")
    pct = {k: 100.0 * tot[k] / tot["total"] for k in ("miss", "false_alarm", "confusion")}
    return {"der": pct["miss"] + pct["false_alarm"] + pct["confusion"], **pct}


__all__ = ["Interval", "der_components", "diarization_error_rate", "union_intervals"]
