"""Audio SNIPS (Lai et al. 2021): synthesised SNIPS queries with slot tags, as s3prl prepares them.

Layout (``root`` is the ``SNIPS`` folder that s3prl's ``snips_prepare_data.sh`` produces, audio
converted to 16 kHz wav)::

    SNIPS/all.iob.snips.txt                       # one line per utterance (all splits)
    SNIPS/{train,valid,test}/<Speaker>-snips-<split>-<n>.wav

``all.iob.snips.txt`` lines (s3prl ``snips.py`` / torchaudio ``Snips`` parse the same)::

    <Speaker>-snips-<split>-<n> BOS w1 w2 ... wn EOS<TAB>O t1 t2 ... tn <intent>

``ti`` is word ``wi``'s slot type, or ``O`` outside slots; consecutive words with the same type
form one slot. The first tag belongs to ``BOS``, the last field is the intent. A line whose tag
count does not match its words is an error naming the file and line.

Text normalisation (facts from s3prl ``problem/asr/superb_sf.py``): ``&`` becomes ``AND`` (the
new words keep the tag), accented letters are mapped to plain ones, words that are only
punctuation are dropped with their tags, the text is upper-cased; any other character outside
A-Z and apostrophe is an error naming the line.

Splits: ``<split>/`` audio of the given speakers per split; files of other speakers are not used.
A wav file without a transcript line, or a listed speaker without any file, is an error. Labels
are tagged sequences (``PLAY B-artist JOHN LEGEND E-artist``, :func:`tagged_sequence`).
"""
from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from ..audio import DEFAULT_MIN_SAMPLES, audio_files, check_unique_ids, segment_for
from ..example import Example
from ..fileio import read_lines

SPLIT_DIRS = {"train": "train", "dev": "valid", "test": "test"}
LABEL_FILE = "all.iob.snips.txt"
PUNCTUATION_WORDS = set("?!.,;-–…")
_ALLOWED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")


def _fold_accents(word: str) -> str:
    out = []
    for ch in word:
        if ch in _ALLOWED or ch.isascii():
            out.append(ch)
            continue
        base = unicodedata.normalize("NFKD", ch)
        out.append("".join(c for c in base if not unicodedata.combining(c)))
    return "".join(out)


def parse_iob_line(line: str, where: str) -> Tuple[str, List[str], List[str], str]:
    """``(utt_id, words, tags, intent)`` of one ``all.iob.snips.txt`` line, normalised."""
    text, tab, tag_part = line.partition("\t")
    if not tab:
        raise ValueError(f"{where}: expected '<id> BOS words EOS<TAB>O tags intent', found no tab")
    fields = text.split()
    tags = tag_part.split()
    if len(fields) < 3 or fields[1] != "BOS" or fields[-1] != "EOS":
        raise ValueError(f"{where}: the transcript must read '<id> BOS ... EOS', got {text.strip()!r}")
    utt_id, words = fields[0], fields[2:-1]
    if len(tags) != len(words) + 2:
        raise ValueError(f"{where}: {len(words)} words but {len(tags)} tag fields (expected words + 2: "
                         f"the BOS tag, one tag per word, the intent)")
    intent, tags = tags[-1], tags[1:-1]
    out_words, out_tags = [], []
    for word, tag in zip(words, tags):
        if word in PUNCTUATION_WORDS:
            continue
        for piece in word.replace("&", " AND ").split():
            piece = _fold_accents(piece).upper()
            bad = sorted(set(piece) - _ALLOWED)
            if bad:
                raise ValueError(f"{where}: word {word!r} has characters outside A-Z and apostrophe: {bad}")
            out_words.append(piece)
            out_tags.append(tag)
    if not out_words:
        raise ValueError(f"{where}: no words left after normalisation")
    return utt_id, out_words, out_tags, intent


def tagged_sequence(words: Sequence[str], tags: Sequence[str]) -> str:
    """``PLAY B-artist JOHN LEGEND E-artist`` from words and per-word slot types."""
    out: List[str] = []
    for i, (w, t) in enumerate(zip(words, tags)):
        if t != "O" and (i == 0 or tags[i - 1] != t):
            out.append(f"B-{t}")
        out.append(w)
        if t != "O" and (i == len(words) - 1 or tags[i + 1] != t):
            out.append(f"E-{t}")
    return " ".join(out)


def snips_manifest(root: Path, speakers: Dict[str, Sequence[str]], min_samples: int = DEFAULT_MIN_SAMPLES
                   ) -> Tuple[Dict[str, List[Example]], List[str]]:
    """Examples per split (labels: tagged sequences) and the sorted slot types of the corpus."""
    root = Path(root)
    label_path = root / LABEL_FILE
    if not label_path.is_file():
        raise FileNotFoundError(f"SNIPS label file not found: {label_path}")
    labels: Dict[str, str] = {}
    slot_types = set()
    for n, line in enumerate(read_lines(label_path), 1):
        if not line.strip():
            continue
        utt_id, words, tags, _ = parse_iob_line(line, f"{label_path}:{n}")
        if utt_id in labels:
            raise ValueError(f"{label_path}:{n}: utterance id {utt_id!r} appears twice")
        labels[utt_id] = tagged_sequence(words, tags)
        slot_types.update(t for t in tags if t != "O")
    splits: Dict[str, List[Example]] = {}
    for split, folder in SPLIT_DIRS.items():
        wanted = list(speakers[split])
        split_dir = root / folder
        if not split_dir.is_dir():
            raise FileNotFoundError(f"SNIPS split folder not found: {split_dir}")
        examples, seen = [], set()
        for wav in audio_files(split_dir, recursive=True):
            uid = wav.stem
            if uid not in labels:
                raise ValueError(f"{wav}: no line for {uid!r} in {label_path}")
            speaker = uid.split("-")[0]
            if speaker not in wanted:
                continue  # other speakers' audio is not part of this split in the protocol
            seen.add(speaker)
            examples.append(Example(uid, segment_for(wav, min_samples), labels[uid]))
        missing = [s for s in wanted if s not in seen]
        if missing:
            raise ValueError(f"{split_dir}: no audio for the {split} speakers {missing} "
                             f"(expected files named <Speaker>-snips-{folder}-<n>.wav)")
        check_unique_ids([e.id for e in examples], str(split_dir))
        splits[split] = examples
    return splits, sorted(slot_types)


def prepare_audio_snips(root: Path, speakers: Dict[str, Sequence[str]], min_samples: int = DEFAULT_MIN_SAMPLES
                        ) -> Tuple[Dict[str, List[Example]], List[str]]:
    """``({"train", "dev", "test"}: examples, sorted slot types)``; ``root`` may also be a folder
    holding ``SNIPS/``."""
    root = Path(root)
    if not (root / LABEL_FILE).is_file() and (root / "SNIPS").is_dir():
        root = root / "SNIPS"
    return snips_manifest(root, speakers, min_samples)
