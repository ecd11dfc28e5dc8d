"""Audio input: 16 kHz mono files read with soundfile.

superb **refuses** audio at any other sample rate instead of resampling it: a benchmark's numbers
must not depend on a resampler chosen behind the user's back. Convert the corpus once (for
example ``sox in.wav -r 16000 out.wav``) and point ``--data`` at the converted copy.
Multi-channel files, empty files and clips shorter than a task's minimum are refused as well,
each with an :class:`AudioError` that names the file, and so are

* **truncated WAV files**: the ``data`` chunk's size in the header (the samples the file
  promises) must match the samples present (libsndfile silently reads the shorter file);
  FLAC and other formats are checked when decoded (decoded frames must equal the header's);
* **non-finite samples**: a decoded clip holding NaN or +-Inf (possible in float WAVs) is an
  error naming the file and the first bad sample, instead of becoming a prediction.

File names are matched case-insensitively by extension (``a.WAV`` is read like ``a.wav``):
:func:`audio_files` lists the audio files of a folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional

import struct

import numpy as np
import soundfile as sf

#: the toolkit's one sample rate: every reader, upstream and metric works at 16 kHz
SAMPLE_RATE = 16000
#: 25 ms: the shortest clip every built-in upstream turns into at least one frame
DEFAULT_MIN_SAMPLES = 400


class AudioError(ValueError):
    """Unreadable, corrupt or unsuitable audio; the message names the file."""


@dataclass(frozen=True)
class AudioSegment:
    """``num_samples`` samples of ``path`` starting at sample ``start``."""

    path: str
    num_samples: int
    start: int = 0

    @property
    def seconds(self) -> float:
        return self.num_samples / SAMPLE_RATE


def audio_files(folder, pattern: str = "*", ext: str = ".wav", recursive: bool = False) -> list:
    """Sorted files of ``folder`` matching ``pattern`` whose extension is ``ext`` in any case."""
    folder = Path(folder)
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    return sorted(p for p in found if p.suffix.lower() == ext.lower() and p.is_file())


#: the data-chunk size of a WAV written by a streaming tool that could not seek back
_UNKNOWN_WAV_SIZE = (0, 0xFFFFFFFF)


def wav_header_frames(path) -> Optional[int]:
    """Frames a RIFF/RIFX WAVE file's header promises (``data`` chunk size / block align).

    ``None`` for non-WAV files, RF64/W64 files and streaming headers with an unknown size.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            endian = "<" if head[:4] == b"RIFF" else ">"
            block_align = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size)
                    if len(fmt) < 14:
                        return None
                    block_align = struct.unpack(endian + "H", fmt[12:14])[0]
                    if size % 2:
                        f.seek(1, 1)
                elif cid == b"data":
                    if block_align in (None, 0) or size in _UNKNOWN_WAV_SIZE:
                        return None
                    return size // block_align
                else:
                    f.seek(size + (size % 2), 1)
    except OSError:
        return None


def audio_info(path) -> int:
    """Validate a file's header and return its number of samples."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError on corrupt headers
        if not Path(path).exists():
            raise AudioError(f"audio file not found: {path}") from exc
        raise AudioError(f"cannot read audio file {path}: {exc}") from exc
    if info.samplerate != SAMPLE_RATE:
        raise AudioError(
            f"{path}: sample rate {info.samplerate} Hz, expected {SAMPLE_RATE} Hz. superb does not "
            "resample silently; convert the corpus to 16 kHz first (e.g. sox in.wav -r 16000 out.wav)"
        )
    if info.channels != 1:
        raise AudioError(f"{path}: {info.channels} channels, expected mono audio")
    if info.format in ("WAV", "WAVEX"):
        promised = wav_header_frames(path)
        if promised is not None and promised != info.frames:
            raise AudioError(
                f"{path}: truncated or corrupt WAV file: its header promises {promised} samples, the "
                f"file holds {info.frames}"
            )
    if info.frames <= 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    return int(info.frames)


def segment_for(path, min_samples: int = DEFAULT_MIN_SAMPLES, start: int = 0, num_samples: Optional[int] = None,
                info_cache: Optional[Dict[str, int]] = None) -> AudioSegment:
    """Build a validated :class:`AudioSegment` (whole file unless ``start``/``num_samples``)."""
    key = str(path)
    if info_cache is not None and key in info_cache:
        total = info_cache[key]
    else:
        total = audio_info(path)
        if info_cache is not None:
            info_cache[key] = total
    n = total - start if num_samples is None else num_samples
    if start < 0 or n <= 0 or start + n > total:
        raise AudioError(f"{path}: segment [{start}, {start + n}) lies outside its {total} samples")
    if n < min_samples:
        raise AudioError(
            f"{path}: clip of {n} samples ({n / SAMPLE_RATE * 1000:.1f} ms) is shorter than the "
            f"minimum {min_samples} samples ({min_samples / SAMPLE_RATE * 1000:.0f} ms)"
        )
    return AudioSegment(path=key, num_samples=n, start=start)


def load_audio(segment: AudioSegment) -> np.ndarray:
    """Read a segment as float32 in [-1, 1]."""
    try:
        wav, sr = sf.read(segment.path, start=segment.start, stop=segment.start + segment.num_samples,
                          dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"cannot decode audio file {segment.path}: {exc}") from exc
    if sr != SAMPLE_RATE:
        raise AudioError(f"{segment.path}: sample rate {sr} Hz, expected {SAMPLE_RATE} Hz")
    if wav.shape[1] != 1:
        raise AudioError(f"{segment.path}: {wav.shape[1]} channels, expected mono audio")
    if wav.shape[0] != segment.num_samples:
        raise AudioError(
            f"{segment.path}: expected {segment.num_samples} samples from {segment.start}, decoded "
            f"{wav.shape[0]} (truncated or corrupt file)"
        )
    wav = wav[:, 0]
    finite = np.isfinite(wav)
    if not finite.all():
        first = int(np.argmin(finite))
        raise AudioError(
            f"{segment.path}: {int((~finite).sum())} non-finite samples (NaN or Inf), the first at sample "
            f"{segment.start + first}; the file is corrupt"
        )
    return wav


def check_unique_ids(ids: Iterable[str], where: str) -> None:
    seen = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"{where}: utterance id {i!r} appears twice")
        seen.add(i)
