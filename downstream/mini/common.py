"""Shared plumbing of the mini-corpus split generators.

A split generator is a function ``build(out_dir: Path, ctx: BuildContext) -> None`` that writes
one split into the (empty, temporary) directory ``out_dir``; :mod:`.build` registers it in
``SPLITS``, handles the cache, the ``COMPLETE`` marker and the atomic rename.  The context hands
every generator the same shared pieces:

* ``ctx.engine`` -- the eSpeak NG engine (:mod:`.espeak`),
* ``ctx.pool`` -- the seeded speaker pool (:mod:`.speakers`),
* ``ctx.rng(*keys)`` -- a numpy generator derived from the corpus seed and ``keys`` (derive
  one per utterance so that each file depends only on its own keys),
* ``ctx.espeak_seed(*keys)`` -- the matching 31-bit seed for eSpeak/libc,
* ``ctx.progress_bar(total, desc)`` -- a tqdm bar (silent when ``progress=False``),
* ``ctx.word_phonemes(word)`` -- cached lexicon phonemes of a word (IPA, no stress marks),
* :class:`LabelWriter` / :func:`write_wav` / :func:`write_flac` -- writers with the shared
  conventions (16 kHz mono 16-bit PCM, deterministic bytes, ``labels.jsonl`` records sorted by
  path).
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from ..fileio import read_text
from ..audio import SAMPLE_RATE
from .espeak import Engine
from .noise import to_int16
from .speakers import SpeakerPool, derive_seed, rng_for

LABELS_FILE = "labels.jsonl"
# words to phonemize in a carrier phrase (first word taken) because alone they are spelled out
_CARRIERS = {"a": "a book"}


@dataclass
class BuildContext:
    profile: str
    seed: int
    engine: Engine
    progress: bool = True
    pool: SpeakerPool = field(init=False)
    stats: dict[str, float] = field(default_factory=lambda: {"files": 0, "audio_seconds": 0.0})

    def __post_init__(self) -> None:
        self.pool = SpeakerPool(self.seed)

    def rng(self, *keys: object) -> np.random.Generator:
        return rng_for("mini", self.seed, *keys)

    def espeak_seed(self, *keys: object) -> int:
        return derive_seed("mini-espeak", self.seed, *keys) & 0x7FFFFFFF

    def progress_bar(self, total: int, desc: str):
        """A tqdm bar on a terminal; in a log file (CI, SLURM, nohup) one plain line instead of
        tqdm's carriage-return updates (the builder prints a summary line when it is done)."""
        interactive = self.progress and sys.stderr.isatty()
        if self.progress and not interactive:
            print(f"{desc}: building {total} files ...", file=sys.stderr, flush=True)
        return tqdm(total=total, desc=desc, unit="file", disable=not interactive, leave=False)

    def word_phonemes(self, word: str) -> str:
        """Space-separated IPA phonemes of one word, stress marks removed (lexicon convention).

        Words that eSpeak splits into several phonetic words (rare) are joined into one
        phoneme sequence.  Words whose citation form is a letter name (``a`` -> ``eɪ``) are
        phonemized in a carrier phrase instead (``a`` -> ``ɐ`` as in "a book").
        """
        cache = self.__dict__.setdefault("_phoneme_cache", {})
        if word not in cache:
            if word in _CARRIERS:
                parts = self.engine.phonemize(_CARRIERS[word], stress=False)[:1]
            else:
                parts = self.engine.phonemize(word, stress=False)
            if not parts:
                raise ValueError(f"eSpeak gave no phonemes for the word {word!r}")
            cache[word] = " ".join(parts)
        return cache[word]

    def count(self, samples: int) -> None:
        self.stats["files"] += 1
        self.stats["audio_seconds"] += samples / SAMPLE_RATE


def write_wav(path: Path, audio: np.ndarray, ctx: BuildContext | None = None) -> None:
    """16 kHz mono 16-bit PCM WAV (RIFF); ``audio`` float in [-1, 1]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), to_int16(audio, path), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    if ctx is not None:
        ctx.count(len(audio))


def write_flac(path: Path, audio: np.ndarray, ctx: BuildContext | None = None) -> None:
    """16 kHz mono 16-bit FLAC; ``audio`` float in [-1, 1]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), to_int16(audio, path), SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    if ctx is not None:
        ctx.count(len(audio))


class LabelWriter:
    """Collects one JSON record per audio file; :meth:`write` saves them sorted by ``path``.

    Every record has ``path`` (relative to the split directory, ``/``-separated), ``speaker``,
    ``text``, ``words`` (``[{"word", "start", "end"}]`` in seconds of the file) and
    ``phonemes``; generators add their own fields.
    """

    REQUIRED = ("path", "speaker", "text", "words", "phonemes")

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def add(self, record: dict[str, Any]) -> None:
        missing = [k for k in self.REQUIRED if k not in record]
        if missing:
            raise ValueError(f"label record for {record.get('path')!r} lacks {missing}")
        if record["path"] in self.records:
            raise ValueError(f"duplicate label record for {record['path']!r}")
        self.records[record["path"]] = record

    def write(self, out_dir: Path) -> Path:
        path = out_dir / LABELS_FILE
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for key in sorted(self.records):
                f.write(json.dumps(self.records[key], ensure_ascii=False, sort_keys=True) + "\n")
        return path


def read_labels(split_dir: Path) -> list[dict[str, Any]]:
    """The records of ``<split_dir>/labels.jsonl``."""
    path = Path(split_dir) / LABELS_FILE
    out = []
    with io.StringIO(read_text(path), newline=None) as f:  # a non-UTF-8 file is an error naming it
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not valid JSON ({exc})") from None
    return out


def place_level(rng: np.random.Generator, audio: np.ndarray, low: float, high: float) -> np.ndarray:
    """Scale ``audio`` to a random peak in ``[low, high]`` (keeps headroom, no clipping)."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak <= 0:
        raise ValueError("cannot level silent audio")
    return (audio * (rng.uniform(low, high) / peak)).astype(np.float32)


Builder = Callable[[Path, BuildContext], None]
