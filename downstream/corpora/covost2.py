"""CoVoST 2 (Wang et al. 2020): speech translation tables over Common Voice clips.

Layout (``root`` holds the CoVoST 2 table and the Common Voice clips)::

    covost_v2.<src>_<tgt>.tsv            CoVoST 2's release table: path, translation, split
                                         (split: train / train_covost / dev / test; other values unused)
      or covost_v2.<src>_<tgt>.{train,dev,test}.tsv   the output of CoVoST's get_covost_splits.py
                                         (path, sentence, translation, client_id)
    <src>/validated.tsv                  Common Voice's table (path, sentence, ...): the source
                                         sentences of the release table's rows
    <src>/clips/<path>                   Common Voice clips (or clips/<path>)

Tables are read as CoVoST writes them (:func:`~.common_voice.read_tsv`). Release-table rows
whose ``split`` is none of the CoVoST 2 values are counted in the notes. The split files carry a
``sentence`` column; for the release table the source sentences come from ``validated.tsv``
(:func:`source_sentences`, the join ``get_covost_splits.py`` makes). Example ids are clip stems,
labels the translations; a missing clip is an error naming it (:func:`covost2_examples`).
Task protocols (ST's cleaning filters and target normalisation) go between
:func:`read_covost2_tables` and :func:`covost2_examples`; :func:`prepare_covost2` chains them
with optional ``keep`` / ``label`` hooks.
"""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..audio import DEFAULT_MIN_SAMPLES, check_unique_ids, segment_for
from ..example import Example
from .common_voice import clip_path, find_clips_dir, read_tsv, require_columns

Row = Dict[str, str]

SPLIT_VALUES = {"train": ("train", "train_covost"), "dev": ("dev",), "test": ("test",)}


def source_sentences(root: Path, clips: Path, configured: Optional[str], tables: Dict[str, List[Dict[str, str]]]):
    """``({clip path: English sentence}, where from)``, or None when no source sentences are available.

    Split files from CoVoST's ``get_covost_splits.py`` carry a ``sentence`` column; the release
    table does not, and (like ``get_covost_splits.py``) its sentences come from Common Voice's
    ``validated.tsv`` (``task.cv_tsv``; default: next to the clips folder, then ``<data>/<src>/``)."""
    rows = [r for t in tables.values() for r in t]
    if rows and all("sentence" in r for r in rows):
        return {r["path"]: r["sentence"] for r in rows}, "the tables' sentence column"
    if configured:
        cv = Path(configured)
        cv = cv if cv.is_absolute() else root / cv
        if not cv.is_file():
            raise FileNotFoundError(f"task.cv_tsv {cv} is not a file")
        candidates = [cv]
    else:
        candidates = [clips.parent / "validated.tsv", root / "validated.tsv"]
    for cv in candidates:
        if cv.is_file():
            table = read_tsv(cv)
            require_columns(cv, table, ("path", "sentence"))
            return {r["path"]: r["sentence"] for r in table}, str(cv)
    return None


def read_covost2_tables(root: Path, src_lang: str = "en", tgt_lang: str = "de", tsv: Optional[str] = None
                        ) -> Tuple[Dict[str, List[Row]], Dict[str, object]]:
    """``({"train", "dev", "test"}: rows, notes)`` from the split files when all three exist, else
    from the release table (``tsv``, default ``covost_v2.<src>_<tgt>.tsv``)."""
    root = Path(root)
    stem = root / (tsv or f"covost_v2.{src_lang}_{tgt_lang}.tsv")
    tables: Dict[str, List[Row]] = {}
    split_files = {k: stem.with_name(stem.name[:-4] + f".{k}.tsv") for k in SPLIT_VALUES}
    notes: Dict[str, object] = {}
    if all(p.is_file() for p in split_files.values()):
        for k, p in split_files.items():
            rows = read_tsv(p)
            require_columns(p, rows, ("path", "translation"))
            tables[k] = rows
        notes["tables"] = [str(p) for p in split_files.values()]
    elif stem.is_file():
        rows = read_tsv(stem)
        require_columns(stem, rows, ("path", "translation", "split"))
        unused = collections.Counter(r["split"] for r in rows
                                     if not any(r["split"] in v for v in SPLIT_VALUES.values()))
        for k, values in SPLIT_VALUES.items():
            tables[k] = [r for r in rows if r["split"] in values]
        notes["tables"] = [str(stem)]
        if unused:
            notes["rows_with_unused_split_values"] = dict(sorted(unused.items()))
    else:
        raise FileNotFoundError(f"CoVoST 2 table not found: {stem} (or {split_files['train'].name} / .dev / .test)")
    return tables, notes


def covost2_examples(rows: Sequence[Row], clips: Path, split: str, audio_ext: Optional[str] = None,
                     min_samples: int = DEFAULT_MIN_SAMPLES, label: Callable[[Row], object] = lambda r: r["translation"]
                     ) -> List[Example]:
    """Examples of table rows (id: the clip's stem); a missing clip is an error naming it."""
    exs = []
    for r in rows:
        path = clip_path(clips, r["path"], audio_ext)
        if not path.is_file():
            raise FileNotFoundError(f"clip {path} listed in the CoVoST table (row {r['path']}) is missing")
        exs.append(Example(Path(r["path"]).stem, segment_for(path, min_samples), label(r)))
    check_unique_ids([e.id for e in exs], f"CoVoST 2 {split} split")
    return exs


def prepare_covost2(root: Path, src_lang: str = "en", tgt_lang: str = "de", tsv: Optional[str] = None,
                    clips_dir: Optional[str] = None, audio_ext: Optional[str] = None, min_samples: int = DEFAULT_MIN_SAMPLES,
                    keep: Optional[Callable[[str, List[Row]], List[Row]]] = None,
                    label: Callable[[Row], object] = lambda r: r["translation"]) -> Dict[str, List[Example]]:
    """``{"train", "dev", "test"}`` examples; ``keep(split, rows)`` may filter a split's rows first."""
    clips = find_clips_dir(Path(root), clips_dir, src_lang)
    tables, _ = read_covost2_tables(root, src_lang, tgt_lang, tsv)
    out = {}
    for k, rows in tables.items():
        if not rows:
            raise ValueError(f"CoVoST 2 {k} split is empty")
        out[k] = covost2_examples(keep(k, rows) if keep else rows, clips, k, audio_ext, min_samples, label)
    return out
