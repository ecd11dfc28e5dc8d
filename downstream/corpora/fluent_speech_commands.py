"""Fluent Speech Commands (Lugosch et al. 2019): spoken commands with action/object/location slots.

Layout (``root`` is the ``fluent_speech_commands_dataset`` folder)::

    data/train_data.csv        # header ",path,speakerId,transcription,action,object,location"
    data/valid_data.csv
    data/test_data.csv
    wavs/speakers/<speakerId>/<name>.wav

Each CSV row names a wav (``path``, relative to ``root``) and its three slots. Example ids are the
wav file names without extension; they must be unique within a split. Labels are
``(action, object, location)`` tuples. A missing column, file or empty slot is an error naming
the CSV line.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Dict, List

from ..audio import DEFAULT_MIN_SAMPLES, check_unique_ids, segment_for
from ..example import Example
from ..fileio import read_text

SLOTS = ("action", "object", "location")
SPLIT_FILES = {"train": "train_data.csv", "dev": "valid_data.csv", "test": "test_data.csv"}
COLUMNS = ("path", "speakerId", "transcription") + SLOTS


def read_fsc_csv(root: Path, csv_path: Path, min_samples: int = DEFAULT_MIN_SAMPLES) -> List[Example]:
    """Examples of one FSC CSV; labels are ``(action, object, location)`` tuples."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"Fluent Speech Commands CSV not found: {csv_path}")
    examples: List[Example] = []
    with io.StringIO(read_text(csv_path), newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {', '.join(missing)} (header {reader.fieldnames})")
        for row in reader:
            line = reader.line_num
            rel = (row["path"] or "").strip()
            slots = tuple((row[s] or "").strip() for s in SLOTS)
            if not rel or not all(slots):
                raise ValueError(f"{csv_path}:{line}: empty path or slot value in {row}")
            wav = root / rel
            if not wav.is_file():
                raise FileNotFoundError(f"{csv_path}:{line}: audio file {rel} not found under {root}")
            examples.append(Example(Path(rel).stem, segment_for(wav, min_samples), slots))
    if not examples:
        raise ValueError(f"{csv_path}: no rows")
    check_unique_ids((e.id for e in examples), str(csv_path))
    return examples


def fluent_commands_manifest(root: Path, min_samples: int = DEFAULT_MIN_SAMPLES) -> Dict[str, List[Example]]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Fluent Speech Commands folder not found: {root}")
    return {split: read_fsc_csv(root, root / "data" / name, min_samples) for split, name in SPLIT_FILES.items()}


def prepare_fluent_speech_commands(root: Path, min_samples: int = DEFAULT_MIN_SAMPLES) -> Dict[str, List[Example]]:
    """``{"train", "dev", "test"}`` examples of the three CSVs (see :func:`fluent_commands_manifest`)."""
    return fluent_commands_manifest(root, min_samples)
