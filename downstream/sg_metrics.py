"""Metrics of the SUPERB-SG generation tasks: SI-SDR, PESQ, STOI (SE/SS), MCD (VC), BLEU (ST).

Sources (facts only, no code copied):

* SI-SDR: Le Roux et al., "SDR -- half-baked or well done?" (ICASSP 2019): both signals made
  zero-mean, ``alpha = <est, ref> / ||ref||^2``, ``SI-SDR = 10 log10(||alpha ref||^2 /
  ||alpha ref - est||^2)``. SI-SDRi is SI-SDR(estimate) - SI-SDR(unprocessed input), both against
  the same reference (s3prl v0.4.18 ``separation_stft``/``enhancement_stft`` report it that way).
* PESQ: ITU-T P.862.2 wide-band mode at 16 kHz through the ``pesq`` package; STOI: Taal et al.
  2011 through ``pystoi`` (classic, not extended), reported as a fraction in [0, 1].
* MCD: the VC recipe of s3prl's ``a2o-vc-vcc2020/vc_evaluate.py`` (after ESPnet's
  ``mcd_calculate.py``): waveform scaled to int16 range, 70 Hz low-cut FIR (255 taps), WORLD
  analysis at a 5 ms frame shift (F0 by Harvest, or DIO + StoneMask for speed), CheapTrick
  spectral envelope with FFT size 1024, mel-cepstrum of order 39 (40 coefficients, c0 included)
  by SPTK ``sp2mc`` with the all-pass constant of the sampling rate (0.41 at 16 kHz, 0.466 at
  24 kHz: ``pysptk.util.mcepalpha``), frames whose normalised power is below -20 dB dropped
  (power-based VAD), DTW on the Euclidean distance of the mel-cepstra, and
  ``MCD = mean over the path of 10 / ln(10) * sqrt(2 * sum_d (c_d - c'_d)^2)`` in dB. s3prl uses
  ``fastdtw`` (an approximation); :func:`dtw_path` is exact. :func:`sp2mc` equals
  ``pysptk.sp2mc`` (tested) but warps all frames with one matrix built from ``pysptk.freqt``
  (pysptk loops over frames in Python, ~40x slower).
* BLEU: detokenised, case-sensitive corpus BLEU of ``sacrebleu`` with its default ``13a``
  tokeniser (SUPERB-SG ST, s3prl ``speech_translation``).

Optional packages (``pesq``, ``pyworld``, ``pysptk``) are imported on first use; when one is
missing, :class:`MissingDependencyError` names it and the ``superb[synthesis]`` extra.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import itertools
import math
import sys
import types
from typing import List, Optional, Sequence, Tuple

import numpy as np

SAMPLE_RATE = 16000

#: MCD constants (s3prl ``a2o-vc-vcc2020/vc_evaluate.py``; ESPnet ``mcd_calculate.py``)
MCEP_ORDER = 39             # 40 coefficients c0..c39
MCEP_SHIFT_MS = 5.0         # WORLD frame period
MCEP_FFT_SIZE = 1024        # CheapTrick FFT size
LOW_CUT_HZ = 70.0           # low-cut FIR before analysis
LOW_CUT_TAPS = 255
POWER_THRESHOLD_DB = -20.0  # frames of lower normalised power are silence
MCD_CONSTANT = 10.0 / math.log(10.0) * math.sqrt(2.0)


class MissingDependencyError(ImportError, ValueError):
    """An optional metric package is not installed; the message says how to install it (a
    ValueError too, so the CLI reports it as a one-line user error)."""


@contextlib.contextmanager
def _pkg_resources_shim():
    """pyworld 0.3.5 and pysptk 1.0.1 ``import pkg_resources`` at import time, which setuptools
    >= 81 no longer ships. If it is missing, a minimal stand-in (``get_distribution(name).version``)
    is visible *only while they are imported*, then removed again."""
    try:
        import pkg_resources  # noqa: F401

        yield
        return
    except ImportError:
        pass
    from importlib import metadata

    class _Distribution:
        def __init__(self, name):
            self.version = metadata.version(name)

    shim = types.ModuleType("pkg_resources")
    shim.get_distribution = _Distribution
    sys.modules["pkg_resources"] = shim
    try:
        yield
    finally:
        if sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]


def require(module: str, purpose: str, extra: str = "synthesis"):
    """Import an optional package or raise :class:`MissingDependencyError` naming it."""
    try:
        with _pkg_resources_shim():
            return importlib.import_module(module)
    except ImportError as exc:
        package = {"pysptk": "pysptk", "pyworld": "pyworld", "pesq": "pesq", "pystoi": "pystoi",
                   "sacrebleu": "sacrebleu", "sentencepiece": "sentencepiece"}.get(module, module)
        raise MissingDependencyError(
            f"{purpose} needs the Python package {package!r}, which is not installed ({exc}). Install it "
            f"with: pip install 'superb[{extra}]' (or pip install {package})") from exc


# --------------------------------------------------------------------------------------------
# SI-SDR, PESQ, STOI
# --------------------------------------------------------------------------------------------
def si_sdr(estimate: np.ndarray, reference: np.ndarray, eps: float = 1e-8) -> float:
    """Scale-invariant SDR in dB of ``estimate`` against ``reference`` (1-D, same length)."""
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
    """The assignment of estimates to references with the highest mean SI-SDR.

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
    """Wide-band PESQ (P.862.2) at 16 kHz; NaN when the algorithm fails on the utterance (for
    example "no utterances detected" in a silent estimate) -- callers count those."""
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
    """Short-time objective intelligibility (classic STOI, 16 kHz input), a fraction in [0, 1]."""
    pystoi = require("pystoi", "STOI (speech enhancement / separation)", extra="synthesis")
    return float(pystoi.stoi(np.asarray(reference, dtype=np.float64), np.asarray(degraded, dtype=np.float64),
                             SAMPLE_RATE, extended=False))


# --------------------------------------------------------------------------------------------
# MCD
# --------------------------------------------------------------------------------------------
def dtw_path(cost: np.ndarray) -> Tuple[np.ndarray, np.ndarray, float]:
    """Exact dynamic time warping over a ``[N, M]`` local cost matrix.

    Steps (1, 0), (0, 1) and (1, 1), all of weight 1; the path runs from (0, 0) to (N-1, M-1).
    Returns the row indices, column indices and total cost of the optimal path (ties prefer the
    diagonal step, then the vertical one). The forward pass is vectorised over anti-diagonals."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or cost.shape[0] == 0 or cost.shape[1] == 0:
        raise ValueError(f"DTW needs a non-empty 2-D cost matrix, got shape {cost.shape}")
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for k in range(2, n + m + 1):  # cells (i, j) of the padded matrix with i + j == k
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        prev = np.minimum(np.minimum(acc[i - 1, j - 1], acc[i - 1, j]), acc[i, j - 1])
        acc[i, j] = cost[i - 1, j - 1] + prev
    i, j = n, m
    rows, cols = [n - 1], [m - 1]
    while (i, j) != (1, 1):
        options = ((acc[i - 1, j - 1], i - 1, j - 1), (acc[i - 1, j], i - 1, j), (acc[i, j - 1], i, j - 1))
        _, i, j = min(options, key=lambda o: o[0])  # min keeps the first of equal values
        rows.append(i - 1)
        cols.append(j - 1)
    return np.array(rows[::-1]), np.array(cols[::-1]), float(acc[n, m])


def mcd_aligned(mcep_a: np.ndarray, mcep_b: np.ndarray, include_c0: bool = True) -> float:
    """MCD (dB) of two equally long, already aligned mel-cepstrum sequences ``[T, D]``."""
    a, b = np.asarray(mcep_a, dtype=np.float64), np.asarray(mcep_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"aligned mel-cepstra differ in shape: {a.shape} vs {b.shape}")
    if not include_c0:
        a, b = a[:, 1:], b[:, 1:]
    return float(np.mean(MCD_CONSTANT * np.sqrt(np.sum((a - b) ** 2, axis=1))))


def mcd_dtw(mcep_a: np.ndarray, mcep_b: np.ndarray, include_c0: bool = True) -> float:
    """MCD (dB) after aligning the two sequences by DTW on the Euclidean distance."""
    a, b = np.asarray(mcep_a, dtype=np.float64), np.asarray(mcep_b, dtype=np.float64)
    da = a if include_c0 else a[:, 1:]
    db = b if include_c0 else b[:, 1:]
    cost = np.sqrt(np.maximum(np.sum(da ** 2, 1)[:, None] + np.sum(db ** 2, 1)[None, :] - 2 * da @ db.T, 0.0))
    rows, cols, _ = dtw_path(cost)
    return mcd_aligned(a[rows], b[cols], include_c0)


def _normalised_power_db(sp: np.ndarray) -> np.ndarray:
    """Per-frame power of a WORLD power spectral envelope (``[T, fft/2 + 1]``, one-sided) in dB
    relative to the utterance mean (the -20 dB VAD of the VC recipe)."""
    fft_half = sp.shape[1] - 1
    power = (sp[:, 0] + sp[:, fft_half] + 2.0 * sp[:, 1:fft_half].sum(axis=1)) / (2 * fft_half)
    return 10.0 * np.log10(power / np.mean(power))


@functools.lru_cache(maxsize=8)
def _freqt_matrix(n_in: int, order: int, alpha: float) -> np.ndarray:
    """SPTK's frequency warping ``freqt`` is linear in the cepstrum: its ``[order + 1, n_in]``
    matrix, built by running ``pysptk.freqt`` on the unit vectors once."""
    pysptk = require("pysptk", "MCD (voice conversion)")
    return np.stack([pysptk.freqt(np.eye(n_in)[k], order, alpha) for k in range(n_in)], axis=1)


def sp2mc(powerspec: np.ndarray, order: int, alpha: float) -> np.ndarray:
    """``pysptk.sp2mc`` for a ``[frames, fft/2 + 1]`` power spectrogram, all frames at once:
    cepstrum of the log power spectrum (``c0`` halved), warped by SPTK's ``freqt`` (as a matrix)."""
    c = np.fft.irfft(np.log(powerspec), axis=-1)
    c[:, 0] /= 2.0
    return c @ _freqt_matrix(c.shape[1], int(order), float(alpha)).T


def world_mcep(wav: np.ndarray, fs: int = SAMPLE_RATE, f0_floor: float = 40.0, f0_ceil: float = 700.0,
               f0_method: str = "harvest", order: int = MCEP_ORDER, alpha: Optional[float] = None) -> np.ndarray:
    """Mel-cepstra ``[T, order + 1]`` of the voiced-or-loud frames of ``wav`` (float in [-1, 1])."""
    from scipy.signal import firwin, lfilter

    pw = require("pyworld", "MCD (voice conversion)")
    pysptk = require("pysptk", "MCD (voice conversion)")
    x = np.asarray(wav, dtype=np.float64) * np.iinfo(np.int16).max
    if len(x) < fs * MCEP_SHIFT_MS / 1000 * 4:
        raise ValueError(f"signal of {len(x)} samples is too short for WORLD analysis")
    x = lfilter(firwin(LOW_CUT_TAPS, LOW_CUT_HZ / (fs // 2), pass_zero=False), 1, x)
    if f0_method == "harvest":
        f0, t = pw.harvest(x, fs, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=MCEP_SHIFT_MS)
    elif f0_method == "dio":
        f0, t = pw.dio(x, fs, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=MCEP_SHIFT_MS)
        f0 = pw.stonemask(x, f0, t, fs)
    else:
        raise ValueError(f"unknown F0 method {f0_method!r}; use 'harvest' or 'dio'")
    sp = pw.cheaptrick(x, f0, t, fs, fft_size=MCEP_FFT_SIZE)
    a = float(pysptk.util.mcepalpha(fs)) if alpha is None else float(alpha)
    mcep = sp2mc(sp, order, a)
    keep = _normalised_power_db(sp) > POWER_THRESHOLD_DB
    if not keep.any():
        raise ValueError("no frame above the -20 dB power threshold (silent signal?)")
    return mcep[keep]


def mcd(converted: np.ndarray, reference: np.ndarray, fs: int = SAMPLE_RATE, f0_floor: float = 40.0,
        f0_ceil: float = 700.0, f0_method: str = "harvest", include_c0: bool = True,
        reference_mcep: Optional[np.ndarray] = None) -> float:
    """MCD (dB) between a converted waveform and the natural reference of the same sentence."""
    ref = reference_mcep if reference_mcep is not None else world_mcep(reference, fs, f0_floor, f0_ceil, f0_method)
    return mcd_dtw(world_mcep(converted, fs, f0_floor, f0_ceil, f0_method), ref, include_c0)


# --------------------------------------------------------------------------------------------
# BLEU
# --------------------------------------------------------------------------------------------
def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Detokenised, case-sensitive corpus BLEU (sacrebleu, ``13a`` tokeniser), 0-100."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    sacrebleu = require("sacrebleu", "BLEU (speech translation)", extra="synthesis")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize="13a",
                                       lowercase=False).score)


def mean_or_nan(values: Sequence[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


__all__ = ["MissingDependencyError", "require", "si_sdr", "best_permutation", "pesq_wb", "stoi", "dtw_path",
           "mcd_aligned", "mcd_dtw", "sp2mc", "world_mcep", "mcd", "corpus_bleu", "mean_or_nan", "MCEP_ORDER",
           "MCEP_SHIFT_MS", "MCEP_FFT_SIZE", "LOW_CUT_HZ", "POWER_THRESHOLD_DB", "MCD_CONSTANT"]
