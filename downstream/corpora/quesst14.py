"""QUESST 2014 (Anguera et al. 2014): query-by-example spoken term detection.

Layout (``root`` is ``quesst14Database/``, the audio converted to 16 kHz: the release is 8 kHz
and superb never resamples behind your back)::

    quesst14Database/Audio/quesst14_<nnnnn>.wav                  # the search collection
    quesst14Database/dev_queries/quesst14_dev_<nnnn>.wav
    quesst14Database/eval_queries/quesst14_eval_<nnnn>.wav
    quesst14Database/scoring/language_key_utterances.lst         # "<dir>/Audio/<file>.wav <language>"
    quesst14Database/scoring/language_key_{dev,eval}.lst         # same for the queries
    quesst14Database/scoring/groundtruth_quesst14_{dev,eval}/
        *.tlist.xml   <termlist ...><term termid="quesst14_dev_0001">...</term>...</termlist>
        *.ecf.xml     <ecf ...><excerpt audio_filename="Audio/quesst14_00001.wav" .../>...</ecf>
        *.rttm        LEXEME <document> 1 <tbeg> <dur> <query id> ...   (one line per occurrence)

:func:`prepare_quesst14` reads the entries of the language-key lists in one language (the first
path component of an entry is dropped, the rest read relative to ``root``): ``docs`` (label
None), ``dev`` and ``test`` (= eval) queries (label: the ground-truth folder's split name), and
each split's :class:`GroundTruth`. Every query must be a term of its split's tlist and every
document an excerpt of its ECF, or it is an error.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Set, Tuple

from ..audio import DEFAULT_MIN_SAMPLES, check_unique_ids, segment_for
from ..example import Example
from ..fileio import read_lines

SPLITS = {"dev": "dev", "test": "eval"}
DOC_LIST = "language_key_utterances.lst"


@dataclass
class GroundTruth:
    queries: List[str]        # every tlist term, in file order
    docs: List[str]           # every ECF excerpt (audio file stems), in file order
    positives: Dict[str, Set[str]]  # query -> documents holding it


def read_language_key(path: Path, root: Path, language: str) -> List[Tuple[str, Path]]:
    """``(name, audio path)`` of the entries in ``language`` (the first path component is dropped)."""
    if not path.is_file():
        raise FileNotFoundError(f"QUESST language key list not found: {path}")
    out = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{path}:{n}: expected '<audio path> <language>', got {line.strip()!r}")
        rel, lang = fields
        if lang != language:
            continue
        rel = re.sub(r"^[^/]*/", "", rel)
        out.append((Path(rel).stem, root / rel))
    return out


def _xml_root(path: Path, tag: str) -> ET.Element:
    try:
        elem = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path}: not valid XML ({exc})") from None
    if elem.tag != tag:
        raise ValueError(f"{path}: expected a <{tag}> document, found <{elem.tag}>")
    return elem


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise FileNotFoundError(f"{folder}: expected exactly one {pattern} file, found {len(found)}")
    return found[0]


def read_ground_truth(folder: Path) -> GroundTruth:
    """tlist terms, ECF documents and RTTM LEXEME occurrences of one ground-truth folder."""
    if not folder.is_dir():
        raise FileNotFoundError(f"QUESST ground-truth folder not found: {folder}")
    tlist = _one(folder, "*.tlist.xml")
    queries = []
    for term in _xml_root(tlist, "termlist").iter("term"):
        if "termid" not in term.attrib:
            raise ValueError(f"{tlist}: a <term> has no termid attribute")
        queries.append(term.attrib["termid"])
    ecf = _one(folder, "*.ecf.xml")
    docs = []
    for ex in _xml_root(ecf, "ecf").iter("excerpt"):
        if "audio_filename" not in ex.attrib:
            raise ValueError(f"{ecf}: an <excerpt> has no audio_filename attribute")
        docs.append(Path(ex.attrib["audio_filename"]).stem)
    for name, items in (("term", queries), ("document", docs)):
        if not items:
            raise ValueError(f"{folder}: no {name}s found")
        if len(set(items)) != len(items):
            raise ValueError(f"{folder}: a {name} is listed twice")
    rttm = _one(folder, "*.rttm")
    positives: Dict[str, Set[str]] = {}
    qset, dset = set(queries), set(docs)
    for n, line in enumerate(read_lines(rttm), 1):
        fields = line.split()
        if not fields or fields[0] != "LEXEME":
            continue
        if len(fields) < 6:
            raise ValueError(f"{rttm}:{n}: a LEXEME line needs at least 6 fields, got {line.strip()!r}")
        doc, query = Path(fields[1]).stem, fields[5]
        if query not in qset:
            raise ValueError(f"{rttm}:{n}: query {query!r} is not a term of {tlist.name}")
        if doc not in dset:
            raise ValueError(f"{rttm}:{n}: document {doc!r} is not in {ecf.name}")
        positives.setdefault(query, set()).add(doc)
    return GroundTruth(queries, docs, positives)


def prepare_quesst14(root: Path, language: str, min_samples: int = DEFAULT_MIN_SAMPLES
                     ) -> Tuple[Dict[str, List[Example]], Dict[str, GroundTruth]]:
    """``({"docs", "dev", "test"}: examples, {"dev", "test"}: ground truth)`` of one language;
    ``root`` may also be a folder holding ``quesst14Database/``."""
    root = Path(root)
    if not (root / "scoring").is_dir() and (root / "quesst14Database" / "scoring").is_dir():
        root = root / "quesst14Database"
    lang = str(language)
    scoring = root / "scoring"
    cache: Dict[str, int] = {}
    out: Dict[str, List[Example]] = {}
    truth: Dict[str, GroundTruth] = {}
    docs = read_language_key(scoring / DOC_LIST, root, lang)
    if not docs:
        raise ValueError(f"{scoring / DOC_LIST}: no documents in language {lang!r}")
    out["docs"] = [Example(n, segment_for(p, min_samples, info_cache=cache), None) for n, p in docs]
    check_unique_ids([e.id for e in out["docs"]], str(scoring / DOC_LIST))
    for split, name in SPLITS.items():
        lst = scoring / f"language_key_{name}.lst"
        queries = read_language_key(lst, root, lang)
        if not queries:
            raise ValueError(f"{lst}: no queries in language {lang!r}")
        gt = read_ground_truth(scoring / f"groundtruth_quesst14_{name}")
        missing_q = [q for q, _ in queries if q not in set(gt.queries)]
        if missing_q:
            raise ValueError(f"{lst}: queries {missing_q[:5]} are not terms of the {name} tlist")
        missing_d = [d for d, _ in docs if d not in set(gt.docs)]
        if missing_d:
            raise ValueError(f"{scoring / DOC_LIST}: documents {missing_d[:5]} are not in the {name} ECF")
        truth[split] = gt
        out[split] = [Example(n, segment_for(p, min_samples, info_cache=cache), name) for n, p in queries]
        check_unique_ids([e.id for e in out[split]], str(lst))
    return out, truth
