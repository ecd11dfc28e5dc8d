"""The shared pool of generated eSpeak NG speakers.

Speaker ``i`` of the pool for corpus seed ``s`` is a pure function of ``(s, i)``: every split built
with the same seed sees the same voice for the same index, so future splits (speaker ID,
diarization, ...) can reuse the speakers of earlier ones, or take disjoint index ranges.

A speaker is an eSpeak voice variant (:class:`~.espeak.VoiceSpec`) drawn as follows:

* gender male/female (1:1); pitch base 70-120 Hz (male) or 145-215 Hz (female) and a pitch top
  25-60 (male) / 40-90 Hz (female) above it;
* a vocal-tract scaling of formants 1-5 (0.90-1.04 male, 1.02-1.17 female) with +-4 % per-formant
  perturbation, formant heights 80-120 % and widths 80-130 %;
* breath noise (30 % of speakers), roughness 0-3 (35 %), pitch flutter 0-30, consonant strength
  75-130 %, a light echo (20 %), and eSpeak's Klatt voice sources 1-4 (25 %);
* habitual rate 140-195 words/minute, eSpeak pitch 30-70 and pitch range 25-85.

:meth:`Speaker.prosody` jitters rate (+-10 %), pitch (+-6) and range (+-10) per utterance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .espeak import VoiceSpec


def derive_seed(*keys: object) -> int:
    """A 63-bit seed derived from ``keys`` (stable across runs and platforms)."""
    digest = hashlib.sha256(repr(tuple(keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def rng_for(*keys: object) -> np.random.Generator:
    """A numpy generator seeded from ``keys`` (see :func:`derive_seed`)."""
    return np.random.default_rng(derive_seed(*keys))


@dataclass(frozen=True)
class Speaker:
    index: int
    key: str  # 8 lower-case hex digits, unique within a pool (Speech Commands style hash)
    voice: VoiceSpec

    @property
    def gender(self) -> str:
        return self.voice.gender

    def prosody(self, rng: np.random.Generator) -> dict:
        """Per-utterance ``rate``/``pitch``/``pitch_range`` jittered around the speaker's habit."""
        v = self.voice
        return {
            "rate": int(round(v.rate * rng.uniform(0.9, 1.1))),
            "pitch": int(np.clip(v.pitch + rng.integers(-6, 7), 0, 99)),
            "pitch_range": int(np.clip(v.pitch_range + rng.integers(-10, 11), 0, 99)),
        }


def make_voice(rng: np.random.Generator) -> VoiceSpec:
    male = bool(rng.integers(0, 2))
    if male:
        base = int(rng.integers(70, 121))
        top = base + int(rng.integers(25, 61))
        tract = rng.uniform(0.90, 1.04)
    else:
        base = int(rng.integers(145, 216))
        top = base + int(rng.integers(40, 91))
        tract = rng.uniform(1.02, 1.17)
    formants = [(100, int(rng.integers(80, 111)), int(rng.integers(80, 151)))]
    for k in range(1, 9):
        scale = tract * rng.uniform(0.96, 1.04) if k <= 5 else 1.0
        formants.append((int(round(100 * scale)), int(rng.integers(80, 121)),
                         int(rng.integers(80, 131))))
    breath = tuple(int(b) for b in rng.integers(0, 5, 8)) if rng.random() < 0.3 else (0,) * 8
    roughness = int(rng.integers(0, 4)) if rng.random() < 0.35 else 0
    echo = (int(rng.integers(20, 141)), int(rng.integers(5, 21))) if rng.random() < 0.2 else (0, 0)
    klatt = int(rng.integers(1, 5)) if rng.random() < 0.25 else 0
    return VoiceSpec(
        gender="male" if male else "female", pitch_base=base, pitch_top=top,
        formants=tuple(formants), breath=breath, roughness=roughness,
        flutter=int(rng.integers(0, 31)), klatt=klatt, consonants=int(rng.integers(75, 131)),
        echo=echo, rate=int(rng.integers(140, 196)), pitch=int(rng.integers(30, 71)),
        pitch_range=int(rng.integers(25, 86)))


def _fmix32(x: int) -> int:
    """MurmurHash3's 32-bit finaliser: a bijection on 32-bit integers."""
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & 0xFFFFFFFF
    x ^= x >> 16
    return x


class SpeakerPool:
    """Deterministic, unbounded pool of generated speakers for one corpus seed.

    Speaker ``i`` depends only on ``(seed, i)``.  Its 8-hex ``key`` is a bijective scramble of
    ``i`` (salted by the seed), so keys are unique within a pool for ``i < 2**32``.
    """

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._salt = derive_seed("speaker-key", self.seed) & 0xFFFFFFFF
        self._cache: dict[int, Speaker] = {}

    def __getitem__(self, index: int) -> Speaker:
        if not 0 <= index < 2**32:
            raise IndexError(f"speaker index must be in [0, 2**32), got {index}")
        if index not in self._cache:
            voice = make_voice(rng_for("speaker", self.seed, index))
            key = f"{_fmix32(index ^ self._salt):08x}"
            self._cache[index] = Speaker(index=index, key=key, voice=voice)
        return self._cache[index]

    def take(self, start: int, n: int) -> list[Speaker]:
        return [self[i] for i in range(start, start + n)]
