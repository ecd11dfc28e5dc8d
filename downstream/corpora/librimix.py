"""LibriMix (Cosentino et al. 2020): Libri2Mix mixtures for separation, and its diarization dirs.

Separation layout (``root`` is ``Libri2Mix/``, its parent, or its ``wav16k/min`` folder)::

    Libri2Mix/wav16k/min/<split>/mix_clean/<id>.wav
    Libri2Mix/wav16k/min/<split>/s1/<id>.wav
    Libri2Mix/wav16k/min/<split>/s2/<id>.wav

``<id>`` is ``<utt1>_<utt2>`` (the LibriSpeech utterances mixed). Every mixture needs an ``s1``
and an ``s2`` file of the same length; an example's label is the tuple of its source paths
(:func:`prepare_librimix`).

Diarization layout (one kaldi-style directory per split, made by LibriMix's
``prepare_diarization.py``, s3prl's ``downstream/diarization/data/{train,dev,test}``)::

    <split>/wav.scp     <recording-id> <path to a 16 kHz mono wav>   (relative paths: to <split>/)
    <split>/segments    <utterance-id> <recording-id> <start s> <end s>
    <split>/utt2spk     <utterance-id> <speaker-id>
    <split>/reco2dur    <recording-id> <duration s>        (optional; else read from the audio)
    <split>/rttm        SPEAKER <recording-id> 1 <start s> <dur s> <NA> <NA> <speaker-id> <NA> <NA>

Every recording of ``wav.scp`` must have segments; every segment's recording and utterance must
be known; at most ``num_speakers`` speakers per recording. Bad lines are errors naming the file
and line. Piped ``wav.scp`` entries (``cmd |``) are refused (:func:`read_kaldi_dir`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..audio import DEFAULT_MIN_SAMPLES, SAMPLE_RATE, audio_files, audio_info, check_unique_ids, segment_for
from ..example import Example
from ..fileio import read_lines

Interval = Tuple[float, float]

SOURCES = ("s1", "s2")


def find_librimix_root(data_dir: Path, rate_dir: str, mode: str) -> Path:
    """The ``wav16k/min`` folder below ``data_dir`` (or ``data_dir`` itself)."""
    data_dir = Path(data_dir)
    candidates = [data_dir / "Libri2Mix" / rate_dir / mode, data_dir / rate_dir / mode, data_dir]
    for c in candidates:
        if c.is_dir() and any((c / s).is_dir() for s in ("train-100", "train-360", "dev", "test")):
            return c
    raise FileNotFoundError(f"Libri2Mix folder not found: looked for {candidates[0]}, {candidates[1]} and split "
                            f"folders (train-100/, dev/, test/) in {data_dir}")


def librimix_split(root: Path, split: str, mixture: str = "mix_clean", min_samples: int = DEFAULT_MIN_SAMPLES) -> List[Example]:
    d = Path(root) / split
    mix_dir = d / mixture
    if not mix_dir.is_dir():
        raise FileNotFoundError(f"Libri2Mix mixture folder not found: {mix_dir}")
    mixes = audio_files(mix_dir)
    if not mixes:
        raise ValueError(f"{mix_dir} holds no .wav files")
    out = []
    for mix in mixes:
        seg = segment_for(mix, min_samples)
        refs = []
        for s in SOURCES:
            ref = d / s / mix.name
            if not ref.is_file():
                raise FileNotFoundError(f"{ref}: source file missing for mixture {mix}")
            n = audio_info(ref)
            if n != seg.num_samples:
                raise ValueError(f"{ref} holds {n} samples but its mixture {mix} holds {seg.num_samples}")
            refs.append(str(ref))
        out.append(Example(mix.stem, seg, tuple(refs)))
    return out


def prepare_librimix(root: Path, splits: Mapping[str, str], rate_dir: str = "wav16k", mode: str = "min",
                     mixture: str = "mix_clean", min_samples: int = DEFAULT_MIN_SAMPLES) -> Dict[str, List[Example]]:
    """``{name: examples}`` for every ``name -> LibriMix split folder`` of ``splits``; ids must be
    unique within a split."""
    base = find_librimix_root(Path(root), rate_dir, mode)
    out = {name: librimix_split(base, str(folder), mixture, min_samples) for name, folder in splits.items()}
    for name, examples in out.items():
        check_unique_ids([e.id for e in examples], f"Libri2Mix {name} split")
    return out


# -- diarization (kaldi-style directories) --------------------------------------------------------
def _read_table(path: Path, min_fields: int, max_fields: Optional[int] = None) -> List[Tuple[int, List[str]]]:
    if not path.is_file():
        raise FileNotFoundError(f"diarization data file not found: {path}")
    rows = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) < min_fields or (max_fields is not None and len(fields) > max_fields):
            expect = f"{min_fields}" if max_fields == min_fields else f"at least {min_fields}"
            raise ValueError(f"{path}:{n}: expected {expect} fields, got {len(fields)}: {line.strip()!r}")
        rows.append((n, fields))
    return rows


def _float(value: str, where: str, what: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise ValueError(f"{where}: {what} {value!r} is not a number") from None
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{where}: {what} {value!r} must be a non-negative number")
    return v


def read_rttm(path: Path) -> Dict[str, Dict[str, List[Interval]]]:
    """``{recording: {speaker: [(start, end)]}}`` from the SPEAKER lines of an RTTM file."""
    out: Dict[str, Dict[str, List[Interval]]] = {}
    for n, fields in _read_table(path, 8):
        if fields[0] != "SPEAKER":
            continue
        where = f"{path}:{n}"
        start, dur = _float(fields[3], where, "start"), _float(fields[4], where, "duration")
        out.setdefault(fields[1], {}).setdefault(fields[7], []).append((start, start + dur))
    return out


def read_kaldi_dir(split_dir: Path, num_speakers: int, need_rttm: bool):
    """Recordings of one split: ``{rec: (wav path, duration s, speakers, per-speaker segments)}``
    and the reference RTTM (or None)."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"diarization split folder not found: {split_dir}")
    wavs: Dict[str, Path] = {}
    for n, fields in _read_table(split_dir / "wav.scp", 2):
        rec, rest = fields[0], " ".join(fields[1:])
        if rest.endswith("|") or rest == "-":
            raise ValueError(f"{split_dir / 'wav.scp'}:{n}: piped or stdin audio ({rest!r}) is not supported; "
                             "write the audio to wav files")
        p = Path(rest)
        wavs[rec] = p if p.is_absolute() else split_dir / p
    utt2spk = {f[0]: f[1] for _, f in _read_table(split_dir / "utt2spk", 2, 2)}
    segs: Dict[str, List[Tuple[str, float, float]]] = {}
    for n, f in _read_table(split_dir / "segments", 4, 4):
        where = f"{split_dir / 'segments'}:{n}"
        utt, rec = f[0], f[1]
        st, et = _float(f[2], where, "start"), _float(f[3], where, "end")
        if et < st:
            raise ValueError(f"{where}: segment {utt} ends ({et}) before it starts ({st})")
        if rec not in wavs:
            raise ValueError(f"{where}: recording {rec!r} is not in wav.scp")
        if utt not in utt2spk:
            raise ValueError(f"{where}: utterance {utt!r} is not in utt2spk")
        segs.setdefault(rec, []).append((utt2spk[utt], st, et))
    durations: Dict[str, float] = {}
    if (split_dir / "reco2dur").is_file():
        for n, f in _read_table(split_dir / "reco2dur", 2, 2):
            durations[f[0]] = _float(f[1], f"{split_dir / 'reco2dur'}:{n}", "duration")
    recordings = {}
    for rec in sorted(wavs):
        if rec not in segs:
            raise ValueError(f"{split_dir}: recording {rec!r} has no lines in segments")
        samples = audio_info(wavs[rec])
        dur = durations.get(rec, samples / SAMPLE_RATE)
        speakers = tuple(sorted({s for s, _, _ in segs[rec]}))
        if len(speakers) > num_speakers:
            raise ValueError(f"{split_dir}: recording {rec!r} has {len(speakers)} speakers {list(speakers)}, "
                             f"more than task.num_speakers={num_speakers}")
        per_spk = tuple(tuple((st, et) for s, st, et in sorted(segs[rec]) if s == spk) for spk in speakers)
        recordings[rec] = (wavs[rec], dur, samples, speakers, per_spk)
    rttm = None
    if need_rttm:
        rttm = read_rttm(split_dir / "rttm")
        unknown = sorted(set(rttm) - set(recordings))
        if unknown:
            raise ValueError(f"{split_dir / 'rttm'}: recordings {unknown[:5]} are not in wav.scp")
        for rec in recordings:
            rttm.setdefault(rec, {})
    return recordings, rttm


def prepare_librimix_diarization(root: Path, splits: Mapping[str, str], num_speakers: int = 2,
                                 need_rttm: Optional[Mapping[str, bool]] = None) -> Dict[str, tuple]:
    """``{name: (recordings, reference rttm or None)}`` (see :func:`read_kaldi_dir`) for every
    ``name -> split directory`` of ``splits``; the reference is read for every split but
    ``train`` unless ``need_rttm`` says otherwise."""
    need = dict(need_rttm or {})
    return {name: read_kaldi_dir(Path(root) / folder, num_speakers, need.get(name, name != "train"))
            for name, folder in splits.items()}
