"""SBCSAE -- the Santa Barbara Corpus of Spoken American English, SUPERB-SG's spontaneous OOD-ASR split.

About the corpus
----------------
Du Bois, Chafe, Meyer, Thompson, Englebretson, Martey (2000-2005), *Santa Barbara Corpus of
Spoken American English, Parts 1-4*, LDC. 60 recordings of spontaneous conversation
(``SBC001`` ... ``SBC060``), transcribed in the Du Bois discourse transcription conventions
(intonation units with start/end times, ``[overlap]`` brackets, ``<X uncertain X>`` hearings,
``(laughter)``-style vocal noises, ``=`` lengthening, ``X`` for unintelligible syllables).
Audio: https://media.talkbank.org/ca/SBCSAE/ (``01.mp3`` ... ``60.mp3``); transcripts:
``SBC001.trn`` ... ``SBC060.trn`` from the UCSB linguistics site.

SUPERB-SG (arXiv 2203.06849) uses it through s3prl v0.4.18 (``s3prl/downstream/ctc/README.md``,
``ctc/sbcsae.yaml``), which reads the output of github.com/vectominist/SBCSAE-preprocess
(``download.sh``, ``preprocess.py``). Every rule below is a fact read from that ``preprocess.py``
and re-implemented here (no code copied).

Layouts accepted (``--data`` points at ``<root>``)
-------------------------------------------------
1. *Segmented* -- what s3prl's ``sbcsae.yaml`` expects (``corpus.path: .../SBCSAE/wav``,
   ``train/dev/test: .../sbcsae/{train,dev,test}.tsv``)::

       <root>/{train,dev,test}.tsv   header "path<TAB>sentence", one clip per row
       <root>/wav/SBC009_000000-001316.wav   16 kHz clips, SBC<nnn>_<start x 100>-<end x 100>.wav

2. *Raw* -- the download layout of SBCSAE-preprocess's ``download.sh``, segmented here on the fly
   with the same rules (no clip files are written)::

       <root>/trn/SBC001.trn ... SBC060.trn
       <root>/mp3/01.mp3 ... 60.mp3   (superb reads 16 kHz mono only: convert once, keeping the
                                        names, or set task.audio_ext to read e.g. 01.wav there)

Rules (SBCSAE-preprocess ``preprocess.py``)
------------------------------------------
* Splits by recording: SBC001-046 train, SBC047-053 dev, SBC054-060 test.
* A ``.trn`` line (read as UTF-8, undecodable bytes ignored; tabs stripped at both ends, then split
  on tabs) is one of: ``"<t1> <t2>[ <speaker>]" TAB sentence`` (2 fields), ``"<t1> <t2>" TAB
  speaker TAB sentence`` (3 fields), ``t1 TAB t2 TAB speaker TAB sentence`` (4 fields; when the
  first field is not a number, the times are its first two space-separated words). Other lines
  are skipped.
* Segments shorter than 0.1 s or longer than 15 s are skipped (before normalisation).
* Sentence normalisation: drop the line if it holds ``[ ] < >`` (overlap / uncertain hearing);
  remove ``( ... )`` groups, drop the line if a parenthesis is left; delete ``=``; replace
  ``. , - % ? ! @ + ~ _ * # & "`` by spaces and ``’`` by ``'``; collapse spaces; upper-case; drop
  the line if it holds ``XX`` or a word ``X`` (unintelligible), or any character outside
  ``A-Z ' space``; drop results of at most one character.
* Overlap removal per recording: segments sorted by end time (stable); a segment starting before
  the end of the last kept one removes that one (and, walking back, every kept segment it still
  overlaps) and is itself not kept.
* Clip of a segment: samples ``int(t1 * 16000)`` to ``int(t2 * 16000)`` inclusive (cut at the end
  of the recording); its id ``SBC<nnn>_<int(t1*100):06d>-<int(t2*100):06d>`` (``int`` truncates
  the float product, as the preprocessing does, so ids match the segmented layout's file names).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..audio import DEFAULT_MIN_SAMPLES, SAMPLE_RATE, audio_info, check_unique_ids, segment_for
from ..example import Example
from .common_voice import clip_path, read_table

MIN_SEC, MAX_SEC = 0.1, 15.0
SPLIT_RECORDINGS = {"train": range(1, 47), "dev": range(47, 54), "test": range(54, 61)}
_PUNCT_TO_SPACE = str.maketrans({**{c: " " for c in '.,-%?!@+~_*#&"'}, "\u2019": "'"})
_ALLOWED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ")


@dataclass(frozen=True)
class Segment:
    recording: str   # "SBC009"
    start: float     # seconds
    end: float
    text: str

    @property
    def id(self) -> str:
        return f"{self.recording}_{int(self.start * 100):06d}-{int(self.end * 100):06d}"

    def sample_range(self, total: Optional[int] = None) -> Tuple[int, int]:
        """``[first, stop)`` sample indices of the clip, cut at ``total`` samples when given."""
        first, stop = int(self.start * SAMPLE_RATE), int(self.end * SAMPLE_RATE) + 1
        return first, stop if total is None else min(stop, total)


def normalize_sentence(sent: str) -> str:
    """An intonation unit's text as an ASR transcript, or ``""`` when the unit is unusable."""
    if any(c in sent for c in "[]<>"):
        return ""
    sent = re.sub(r"\([^)]*\)", "", sent)
    if "(" in sent or ")" in sent:
        return ""
    sent = sent.replace("=", "").translate(_PUNCT_TO_SPACE)
    sent = re.sub(" +", " ", sent).strip().upper()
    padded = sent + " "
    if "XX" in padded or " X " in padded:  # unintelligible syllables (a leading "X " passes, as there)
        return ""
    if any(c not in _ALLOWED for c in sent):
        return ""
    return sent


def _times(field: str, where: str) -> Tuple[float, float]:
    words = field.split(" ")
    try:
        return float(words[0]), float(words[1])
    except (ValueError, IndexError):
        raise ValueError(f"{where}: cannot read the start/end times from {field!r}") from None


def parse_trn_line(line: str, where: str) -> Optional[Tuple[float, float, str]]:
    """``(start, end, raw sentence)`` of one ``.trn`` line (with its ``\\n``), ``None`` for another shape."""
    fields = line.strip("\t").strip("\n").split("\t")
    if len(fields) == 2 and len(fields[0].split(" ")) >= 2:
        t1, t2 = _times(fields[0], where)
        return t1, t2, fields[1]
    if len(fields) == 3 and len(fields[0].split(" ")) == 2:
        t1, t2 = _times(fields[0], where)
        return t1, t2, fields[2]
    if len(fields) == 4:
        try:
            t1, t2 = float(fields[0]), float(fields[1])
        except ValueError:
            t1, t2 = _times(fields[0], where)
        return t1, t2, fields[3]
    return None


def remove_overlaps(segments: List[Segment]) -> List[Segment]:
    kept: List[Segment] = []
    for i, seg in enumerate(sorted(segments, key=lambda s: s.end)):
        if i == 0:
            kept.append(seg)
            continue
        overlapped = False
        while kept and seg.start < kept[-1].end:
            kept.pop()
            overlapped = True
        if not overlapped:
            kept.append(seg)
    return kept


def read_trn(path: Path, recording: Optional[str] = None) -> List[Segment]:
    """The usable, non-overlapping segments of one ``SBC<nnn>.trn`` file."""
    path = Path(path)
    recording = recording or path.stem
    text = path.read_bytes().decode("utf-8", errors="ignore").replace("\r\n", "\n").replace("\r", "\n")
    segments = []
    parts = text.split("\n")  # lines as a text file iterates them: each keeps its "\n", tabs strip first
    lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    for n, line in enumerate(lines, 1):
        parsed = parse_trn_line(line, f"{path}:{n}")
        if parsed is None:
            continue
        t1, t2, raw = parsed
        if t2 - t1 > MAX_SEC or t2 - t1 < MIN_SEC:
            continue
        sent = normalize_sentence(raw)
        if len(sent) <= 1:
            continue
        segments.append(Segment(recording, t1, t2, sent))
    return remove_overlaps(segments)


def recording_name(index: int) -> str:
    return f"SBC{index:03d}"


def raw_split(root: Path, split: str) -> Dict[str, List[Segment]]:
    """``{recording: segments}`` of a split in the raw layout (``<root>/trn/SBC<nnn>.trn``)."""
    out = {}
    for i in SPLIT_RECORDINGS[split]:
        name = recording_name(i)
        trn = Path(root) / "trn" / f"{name}.trn"
        if not trn.is_file():
            raise FileNotFoundError(f"SBCSAE transcript {trn} is missing (the {split} split needs "
                                    f"SBC{SPLIT_RECORDINGS[split][0]:03d}-SBC{SPLIT_RECORDINGS[split][-1]:03d})")
        out[name] = read_trn(trn, name)
    return out


def recording_audio(root: Path, index: int, audio_ext: Optional[str] = None) -> Path:
    """``<root>/mp3/<nn>.mp3`` (or ``<nn><audio_ext>``), the recording of ``SBC<nnn>``."""
    ext = audio_ext if audio_ext else ".mp3"
    ext = ext if ext.startswith(".") else "." + ext
    return Path(root) / "mp3" / f"{index:02d}{ext}"


def raw_examples(root: Path, audio_ext: Optional[str] = None, min_samples: int = DEFAULT_MIN_SAMPLES) -> Dict[str, List[Example]]:
    """``{"train", "dev", "test"}`` examples of the raw layout, segmented on the fly."""
    splits = {}
    for k in ("train", "dev", "test"):
        exs = []
        for name, segments in raw_split(root, k).items():
            if not segments:
                continue
            audio = recording_audio(root, int(name[3:]), audio_ext)
            if not audio.is_file():
                raise FileNotFoundError(f"SBCSAE recording {audio} is missing (transcript {name}.trn)")
            total = audio_info(audio)
            cache = {str(audio): total}
            for seg in segments:
                first, stop = seg.sample_range(total)
                if stop - first < min_samples:
                    raise ValueError(f"{audio}: segment {seg.id} ({seg.start}-{seg.end} s) lies outside or at "
                                     f"the end of its {total} samples")
                exs.append(Example(seg.id, segment_for(audio, min_samples, first, stop - first, cache), seg.text))
        if not exs:
            raise ValueError(f"SBCSAE {k} split under {root}: no usable segment")
        check_unique_ids([e.id for e in exs], f"SBCSAE {k}")
        splits[k] = exs
    return splits


def prepare_sbcsae(root: Path, splits: Optional[Dict[str, str]] = None, wav_dir: Optional[str] = None,
                   audio_ext: Optional[str] = None, min_samples: int = DEFAULT_MIN_SAMPLES) -> Dict[str, List[Example]]:
    """``{"train", "dev", "test"}`` examples of either layout (raw when ``<root>/trn/`` exists);
    ``splits`` names the segmented layout's tables (default ``train``/``dev``/``test``), ``wav_dir``
    its clip folder (default ``wav``)."""
    root = Path(root)
    if (root / "trn").is_dir():
        return raw_examples(root, audio_ext, min_samples)
    splits = splits or {"train": "train", "dev": "dev", "test": "test"}
    tables = {k: root / f"{v}.tsv" for k, v in splits.items()}
    wav_dir = root / str(wav_dir or "wav")
    if not all(p.is_file() for p in tables.values()) or not wav_dir.is_dir():
        raise FileNotFoundError(f"SBCSAE not found under {root}: expected trn/ + mp3/ (the download) or "
                                f"{{train,dev,test}}.tsv + {wav_dir.name}/ (SBCSAE-preprocess output)")
    out = {}
    for k in ("train", "dev", "test"):
        path = tables[k]
        rows = read_table(path, ("path", "sentence"))
        exs = []
        for n, r in enumerate(rows, 2):
            text = " ".join(r["sentence"].split())
            if not text:
                raise ValueError(f"{path}:{n}: empty sentence for clip {r['path']!r}")
            audio = clip_path(wav_dir, r["path"], audio_ext)
            if not audio.is_file():
                raise FileNotFoundError(f"{path}:{n}: clip {audio} is missing")
            exs.append(Example(Path(r["path"]).stem, segment_for(audio, min_samples), text))
        check_unique_ids([e.id for e in exs], str(path))
        out[k] = exs
    return out
