"""Seeded noise generators and mixing helpers for the mini corpora.

All generators take a :class:`numpy.random.Generator` and a length in samples (16 kHz unless a
``sr`` argument says otherwise) and return float32 signals with unit RMS, so callers choose the
level explicitly with :func:`set_level` (dBFS) or :func:`mix_at_snr`.

* ``white`` -- a normal draw.
* ``pink`` / ``brown`` -- a normal draw shaped in the frequency domain to a 1/f (pink) or 1/f^2
  (brown) power spectrum.
* ``running_water`` -- band-passed noise with a slowly wandering level plus many short rising
  "bubble" chirps, a stand-in for Speech Commands' ``running_tap.wav``.
* ``hum`` -- mains hum with harmonics, a periodically modulated machine whir and brown noise, a
  stand-in for ``exercise_bike.wav`` / ``doing_the_dishes.wav``-like backgrounds.
* :func:`exp_rir` / :func:`reverberate` -- a synthetic exponential-decay room response.
* :func:`babble` -- several generated talkers summed (needs the eSpeak engine; lives here so
  every split makes babble the same way).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import butter, sosfilt

from ..audio import SAMPLE_RATE

EPS = 1e-12


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / max(rms(x), EPS)).astype(np.float32)


def white(rng: np.random.Generator, n: int) -> np.ndarray:
    return _unit(rng.standard_normal(n))


def colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    m = next_fast_len(max(n, 2), real=True)  # shape a fast FFT length, then cut
    spec = np.fft.rfft(rng.standard_normal(m))
    f = np.fft.rfftfreq(m)
    f[0] = f[1]
    spec *= f ** (-exponent / 2.0)
    spec[0] = 0.0
    return _unit(np.fft.irfft(spec, m)[:n])


def pink(rng: np.random.Generator, n: int) -> np.ndarray:
    return colored(rng, n, 1.0)


def brown(rng: np.random.Generator, n: int) -> np.ndarray:
    return colored(rng, n, 2.0)


def _smooth_envelope(rng: np.random.Generator, n: int, rate_hz: float, depth: float,
                     sr: int) -> np.ndarray:
    """A slowly varying positive gain around 1 (linear interpolation of random knots)."""
    knots = max(2, int(n / sr * rate_hz) + 2)
    values = 1.0 + depth * rng.uniform(-1.0, 1.0, knots)
    return np.interp(np.arange(n), np.linspace(0, n, knots), values)


def running_water(rng: np.random.Generator, n: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    sos = butter(4, [300, 5000], btype="bandpass", fs=sr, output="sos")
    base = sosfilt(sos, rng.standard_normal(n)) * _smooth_envelope(rng, n, 4.0, 0.35, sr)
    bubbles = np.zeros(n)
    n_bub = int(n / sr * 40)
    for _ in range(n_bub):
        dur = int(rng.uniform(0.004, 0.025) * sr)
        start = int(rng.integers(0, max(1, n - dur)))
        f0 = rng.uniform(600, 2500)
        t = np.arange(dur) / sr
        freq = f0 * (1.0 + rng.uniform(0.3, 1.5) * t / max(t[-1], EPS)) if dur > 1 else np.full(dur, f0)
        phase = 2 * np.pi * np.cumsum(freq) / sr
        bubbles[start:start + dur] += rng.uniform(0.5, 2.0) * np.sin(phase) * np.exp(-t * rng.uniform(80, 300))
    return _unit(_unit(base) + 0.6 * _unit(bubbles) if n_bub else base)


def hum(rng: np.random.Generator, n: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(n) / sr
    mains = rng.choice([50.0, 60.0])
    tone = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 2 * np.pi))
               for k in range(1, 8))
    whir_rate = rng.uniform(0.8, 2.0)  # pedalling / motor modulation in Hz
    sos = butter(2, [150, 1500], btype="bandpass", fs=sr, output="sos")
    whir = sosfilt(sos, rng.standard_normal(n)) * (1.0 + 0.6 * np.sin(2 * np.pi * whir_rate * t))
    return _unit(0.5 * _unit(tone) + _unit(whir) + 0.5 * brown(rng, n))


#: name -> generator(rng, n) of unit-RMS noise (the stationary types, no speech engine needed).
NOISES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "white": white,
    "pink": pink,
    "brown": brown,
    "running_water": running_water,
    "hum": hum,
}


def make_noise(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    try:
        gen = NOISES[kind]
    except KeyError:
        raise ValueError(f"unknown noise kind {kind!r}; valid: {sorted(NOISES)}") from None
    return gen(rng, n)


def babble(synth: Callable[[int, int], np.ndarray], n_talkers: int, n: int,
           rng: np.random.Generator) -> np.ndarray:
    """Sum ``n_talkers`` streams of speech to ``n`` samples, unit RMS.

    ``synth(talker, k)`` returns the k-th float32 utterance of ``talker`` (the caller picks the
    speakers and sentences, e.g. from the shared speaker pool and grammar).  Each stream is the
    talker's utterances back to back with short random gaps, started at a random phase, and is
    normalised to unit RMS before summing, so no single voice dominates.
    """
    if n_talkers < 1:
        raise ValueError(f"babble needs at least one talker, got n_talkers={n_talkers}")
    out = np.zeros(n, dtype=np.float64)
    for talker in range(n_talkers):
        parts: list[np.ndarray] = []
        total, k = 0, 0
        lead = int(rng.integers(0, SAMPLE_RATE))
        while total < n + lead:
            gap = np.zeros(int(rng.uniform(0.05, 0.4) * SAMPLE_RATE))
            utt = synth(talker, k)
            parts += [utt, gap]
            total += len(utt) + len(gap)
            k += 1
        stream = np.concatenate(parts)[lead:lead + n]
        out += _unit(stream)
    return _unit(out)


def exp_rir(rng: np.random.Generator, rt60: float, tail_gain: float = 0.3,
            sr: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic room impulse response: direct path + exponentially decaying noise tail.

    ``rt60`` is the time (s) for the tail to decay by 60 dB; the direct path has gain 1 and the
    tail total energy ``tail_gain**2`` (0.3: direct-to-reverberant ratio ~10 dB).
    """
    if rt60 <= 0:
        raise ValueError(f"rt60 must be positive, got {rt60}")
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 60 dB
    delay = int(rng.uniform(0.002, 0.01) * sr)  # first reflections arrive a few ms later
    tail[:delay] = 0.0
    h = tail_gain * tail / max(np.sqrt(np.sum(tail ** 2)), EPS)
    h[0] = 1.0
    return h.astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``rir``, cut to the length of ``x``."""
    from scipy.signal import fftconvolve

    return fftconvolve(x, rir)[: len(x)].astype(np.float32)


def set_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale ``x`` to an RMS of ``dbfs`` dB relative to full scale (1.0)."""
    return (x * (10 ** (dbfs / 20.0) / max(rms(x), EPS))).astype(np.float32)


def snr_gain(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> float:
    """Gain for ``noise`` so that ``speech + gain * noise`` has the given SNR (RMS based)."""
    return rms(speech) / (max(rms(noise), EPS) * 10 ** (snr_db / 20.0))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g * noise`` at ``snr_db`` dB; ``noise`` is tiled/cut to the speech length."""
    if len(noise) < len(speech):
        noise = np.tile(noise, int(np.ceil(len(speech) / max(len(noise), 1))))
    noise = noise[: len(speech)]
    return (speech + snr_gain(speech, noise, snr_db) * noise).astype(np.float32)


def to_int16(x: np.ndarray, path: object = "<signal>") -> np.ndarray:
    """Quantise float audio in [-1, 1] to int16 (round half to even); out-of-range is an error."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if not np.isfinite(peak) or peak > 1.0:
        raise ValueError(f"{path}: audio peak {peak:.3f} outside [-1, 1] (would clip)")
    return np.round(np.asarray(x, dtype=np.float64) * 32767.0).astype(np.int16)


def fade(x: np.ndarray, ms: float = 5.0) -> np.ndarray:
    """Short linear fade-in/out to avoid clicks at cut points."""
    k = min(len(x) // 2, int(SAMPLE_RATE * ms / 1000))
    if k <= 0:
        return x
    y = x.astype(np.float32).copy()
    ramp = np.linspace(0.0, 1.0, k, dtype=np.float32)
    y[:k] *= ramp
    y[-k:] *= ramp[::-1]
    return y


__all__: Sequence[str] = ["NOISES", "babble", "brown", "colored", "exp_rir", "fade", "hum",
                          "make_noise", "reverberate",
                          "mix_at_snr", "pink", "rms", "running_water", "set_level", "snr_gain",
                          "to_int16", "white"]
