"""Common Voice (Ardila et al. 2020): crowd-sourced read speech, and the table format CoVoST shares.

Layout (``root`` is a release folder holding ``<lang>/``, or the ``<lang>/`` folder itself)::

    <lang>/train.tsv  <lang>/dev.tsv  <lang>/test.tsv  <lang>/validated.tsv ...
                                     tables: tab-separated, header row, no quoting, backslash
                                     escapes; columns found by name (``path``, ``sentence``, ...)
    <lang>/clips/<path>              the clips (MP3, decoded by soundfile)

Common Voice ships 48 kHz MP3s and superb does not resample: convert the clips once to 16 kHz
(MP3, or WAV/FLAC copies with the same stems read with ``audio_ext``, which replaces each file's
extension). :func:`read_tsv` reads any Common Voice / CoVoST table; :func:`prepare_common_voice`
returns every row of the split tables as an example (id: the clip's stem, label: the raw
``sentence``; a missing clip is an error naming the row). Task protocols (OOD-ASR's transcript
normalisation and filters) are applied by the tasks, row by row, with :func:`common_voice_tables`
and :func:`clip_path`.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..audio import DEFAULT_MIN_SAMPLES, check_unique_ids, segment_for
from ..example import Example
from ..fileio import read_text

#: Common Voice's split tables
SPLITS = {"train": "train", "dev": "dev", "test": "test"}


def read_tsv(path: Path) -> List[Dict[str, str]]:
    """A CoVoST / Common Voice table (tab-separated, header, QUOTE_NONE, backslash escapes)."""
    with io.StringIO(read_text(path), newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: empty table (no header row)") from None
        rows = []
        for n, row in enumerate(reader, 2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}:{n}: {len(row)} tab-separated fields, the header has {len(header)}")
            rows.append(dict(zip(header, row)))
    return rows


def require_columns(path: Path, rows: List[Dict[str, str]], columns: Sequence[str]) -> None:
    have = set(rows[0]) if rows else set()
    missing = [c for c in columns if c not in have]
    if rows and missing:
        raise ValueError(f"{path}: missing column(s) {missing}; columns are {sorted(have)}")


def read_table(path: Path, columns: Sequence[str]) -> List[Dict[str, str]]:
    """The rows of a split table that must hold rows and ``columns`` (errors name the file)."""
    rows = read_tsv(path)
    if not rows:
        raise ValueError(f"{path}: no rows")
    require_columns(path, rows, columns)
    return rows


def find_clips_dir(root: Path, configured: Optional[str], lang: str) -> Path:
    if configured:
        d = Path(configured)
        d = d if d.is_absolute() else root / d
        if not d.is_dir():
            raise FileNotFoundError(f"task.clips_dir {d} is not a folder")
        return d
    for d in (root / lang / "clips", root / "clips"):
        if d.is_dir():
            return d
    raise FileNotFoundError(f"Common Voice clips folder not found: looked for {root / lang / 'clips'} and {root / 'clips'}")


def clip_path(clips: Path, name: str, audio_ext: Optional[str]) -> Path:
    p = clips / name
    if audio_ext:
        p = p.with_suffix(audio_ext if audio_ext.startswith(".") else "." + audio_ext)
    return p


def common_voice_tables(root: Path, language: str, splits: Mapping[str, str] = SPLITS
                        ) -> Tuple[Dict[str, Path], Path]:
    """``({name: table path}, clips folder)`` of one language; missing tables or clips are errors."""
    root = Path(root)
    lang_dir = root / language if (root / language).is_dir() else root
    tables = {k: lang_dir / f"{v}.tsv" for k, v in splits.items()}
    if not all(p.is_file() for p in tables.values()):
        missing = [str(p) for p in tables.values() if not p.is_file()]
        raise FileNotFoundError(f"Common Voice tables for language {language!r} not found: {', '.join(missing)}"
                                f" (set task.language or point --data at the release folder)")
    clips = lang_dir / "clips"
    if not clips.is_dir():
        raise FileNotFoundError(f"Common Voice clips folder not found: {clips}")
    return tables, clips


def prepare_common_voice(root: Path, language: str, splits: Mapping[str, str] = SPLITS,
                         audio_ext: Optional[str] = None, min_samples: int = DEFAULT_MIN_SAMPLES) -> Dict[str, List[Example]]:
    """``{name: examples}``: every row of each split table, labelled with its raw sentence."""
    tables, clips = common_voice_tables(root, language, splits)
    out: Dict[str, List[Example]] = {}
    for k, path in tables.items():
        rows = read_table(path, ("path", "sentence"))
        exs = []
        for n, r in enumerate(rows, 2):
            audio = clip_path(clips, r["path"], audio_ext)
            if not audio.is_file():
                raise FileNotFoundError(f"{path}:{n}: clip {audio} is missing")
            exs.append(Example(Path(r["path"]).stem, segment_for(audio, min_samples), r["sentence"]))
        check_unique_ids([e.id for e in exs], str(path))
        out[k] = exs
    return out
