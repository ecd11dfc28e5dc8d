"""Speech enhancement / separation metrics (SE, SS): SI-SDR, the best permutation of estimates,
wide-band PESQ and STOI.

Sources (facts only, no code copied):

* SI-SDR: Le Roux et al., "SDR -- half-baked or well done?" (ICASSP 2019): both signals made
  zero-mean, ``alpha = <est, ref> / ||ref||^2``, ``SI-SDR = 10 log10(||alpha ref||^2 /
  ||alpha ref - est||^2)``. SI-SDRi is SI-SDR(estimate) - SI-SDR(unprocessed input), both against
  the same reference (s3prl v0.4.18 ``separation_stft``/``enhancement_stft`` report it that way).
  Checked against torchmetrics' ``scale_invariant_signal_distortion_ratio``.
* Permutation: utterance-level permutation invariance (Kolbaek et al., "Multitalker speech
  separation with utterance-level permutation invariant training", 2017): the assignment of
  estimates to references with the best mean SI-SDR, by enumerating all permutations.
* PESQ: ITU-T P.862.2 wide-band mode at 16 kHz through the ``pesq`` package; STOI: Taal et al.,
  "An algorithm for intelligibility prediction of time-frequency weighted noisy speech" (IEEE
  TASLP 2011) through ``pystoi`` (classic, not extended), reported as a fraction in [0, 1].
"""
from __future__ import annotations

import itertools
import math
from typing import List, Sequence, Tuple

import numpy as np

from ..audio import SAMPLE_RATE
from .dependencies import require


def si_sdr(estimate: np.ndarray, reference: np.ndarray, eps: float = 1e-8) -> float:
    """Scale-invariant SDR in dB of ``estimate`` against ``reference`` (1-D, same length).

    Source: Le Roux et al. 2019 (zero-mean signals, optimal scaling of the reference)."""
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if est.shape != ref.shape or est.ndim != 1:
        raise ValueError(f"si_sdr needs two 1-D signals of equal length, got {est.shape} and {ref.shape}")
    est = est - est.mean()
    ref = ref - ref.mean()
    alpha = np.dot(est, ref) / (np.dot(ref, ref) + eps)
    target = alpha * ref
    noise = target - est
    return float(10.0 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


def best_permutation(estimates: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> Tuple[Tuple[int, ...], List[float]]:
    """The assignment of estimates to references with the highest mean SI-SDR (utterance-level
    PIT, Kolbaek et al. 2017; every permutation is tried).

    Returns ``(perm, values)`` where estimate ``perm[s]`` goes with reference ``s`` and
    ``values[s]`` is its SI-SDR."""
    n = len(references)
    if len(estimates) != n:
        raise ValueError(f"{len(estimates)} estimates for {n} references")
    table = [[si_sdr(e, r) for r in references] for e in estimates]  # [est][ref]
    best, best_vals = None, None
    for perm in itertools.permutations(range(n)):
        vals = [table[perm[s]][s] for s in range(n)]
        if best_vals is None or np.mean(vals) > np.mean(best_vals):
            best, best_vals = perm, vals
    return best, best_vals


def pesq_wb(reference: np.ndarray, degraded: np.ndarray) -> float:
    """Wide-band PESQ (ITU-T P.862.2, the ``pesq`` package) at 16 kHz; NaN when the algorithm
    fails on the utterance (for example "no utterances detected" in a silent estimate) -- callers
    count those."""
    pesq_mod = require("pesq", "PESQ (speech enhancement / separation)")
    ref = np.asarray(reference, dtype=np.float64)
    deg = np.asarray(degraded, dtype=np.float64)
    if not np.any(ref) or not np.any(deg):  # all-zero input: the package fails inside its error path
        return float("nan")
    try:
        return float(pesq_mod.pesq(SAMPLE_RATE, ref, deg, "wb"))
    except pesq_mod.PesqError:  # NoUtterancesError, BufferTooShortError, ... (one utterance)
        return float("nan")


def stoi(reference: np.ndarray, degraded: np.ndarray) -> float:
    """Short-time objective intelligibility (Taal et al. 2011, classic STOI via ``pystoi``, 16 kHz
    input), a fraction in [0, 1]."""
    pystoi = require("pystoi", "STOI (speech enhancement / separation)", extra="synthesis")
    return float(pystoi.stoi(np.asarray(reference, dtype=np.float64), np.asarray(degraded, dtype=np.float64),
                             SAMPLE_RATE, extended=False))


def mean_or_nan(values: Sequence[float]) -> float:
    """Mean of the values that are not None/NaN (failed PESQ utterances are left out); NaN if none."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


__all__ = ["SAMPLE_RATE", "si_sdr", "best_permutation", "pesq_wb", "stoi", "mean_or_nan"]
