"""IEMOCAP (Busso et al. 2008): five sessions of dyadic acted speech with emotion labels.

Layout (``root`` is the release folder, e.g. ``IEMOCAP_full_release/``)::

    Session{1..5}/sentences/wav/<dialog>/<utterance>.wav
    Session{1..5}/dialog/EmoEvaluation/<dialog>.txt

Each EmoEvaluation file (only ``Ses*.txt`` directly in that folder; its ``Categorical/``,
``Attribute/`` and ``Self-evaluation/`` subfolders are not read) holds one line per utterance
with the consensus label, e.g.::

    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]

The other lines (the ``%`` header, per-annotator lines, blanks) are ignored. The audio of a
labelled utterance is ``Session<k>/sentences/wav/<dialog>/<utterance>.wav``; a missing file is an
error naming it. Labels are SUPERB's four classes (``hap`` and ``exc`` merged, :data:`MERGE`);
utterances with the other IEMOCAP labels are counted, not kept; a label outside the IEMOCAP set
is an error naming the file and line. The "splits" are the five sessions (``"1"`` ... ``"5"``).
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

from ..audio import DEFAULT_MIN_SAMPLES, check_unique_ids, segment_for
from ..example import Example
from ..fileio import read_lines

MERGE = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}
#: every categorical label of the IEMOCAP EmoEvaluation consensus lines
IEMOCAP_LABELS = ("neu", "hap", "exc", "ang", "sad", "fru", "sur", "fea", "dis", "oth", "xxx")
SESSIONS = ("1", "2", "3", "4", "5")
_LINE = re.compile(r"^\[\s*([0-9.]+)\s*-\s*([0-9.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[.*\]\s*$")


def iemocap_manifest(root: Path, min_samples: int = DEFAULT_MIN_SAMPLES):
    """All labelled IEMOCAP utterances: ``(examples by session, dropped label counts)``.

    Examples carry the merged 4-class label; utterances with other labels are counted, not kept.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"IEMOCAP folder not found: {root}")
    by_session: Dict[str, List[Example]] = {}
    dropped: Counter = Counter()
    for s in SESSIONS:
        sess = root / f"Session{s}"
        emo_dir = sess / "dialog" / "EmoEvaluation"
        if not emo_dir.is_dir():
            raise FileNotFoundError(f"IEMOCAP: {emo_dir} not found (all five sessions are needed)")
        files = sorted(emo_dir.glob("Ses*.txt"))
        if not files:
            raise FileNotFoundError(f"IEMOCAP: no Ses*.txt label files in {emo_dir}")
        examples: List[Example] = []
        for path in files:
            dialog = path.stem
            for n, line in enumerate(read_lines(path), 1):
                m = _LINE.match(line.strip())
                if not m:
                    continue
                utt, label = m.group(3), m.group(4)
                if label not in IEMOCAP_LABELS:
                    raise ValueError(f"{path}:{n}: unknown emotion label {label!r} for {utt} "
                                     f"(IEMOCAP labels: {', '.join(IEMOCAP_LABELS)})")
                if not utt.startswith(dialog):
                    raise ValueError(f"{path}:{n}: utterance {utt} does not belong to dialog {dialog}")
                if label not in MERGE:
                    dropped[label] += 1
                    continue
                wav = sess / "sentences" / "wav" / dialog / f"{utt}.wav"
                if not wav.is_file():
                    raise FileNotFoundError(f"{path}:{n}: audio of {utt} not found: {wav}")
                examples.append(Example(utt, segment_for(wav, min_samples), MERGE[label]))
        if not examples:
            raise ValueError(f"IEMOCAP Session{s}: no utterance with one of the labels {', '.join(MERGE)}")
        check_unique_ids((e.id for e in examples), f"IEMOCAP Session{s}")
        by_session[s] = examples
    return by_session, dict(sorted(dropped.items()))


def prepare_iemocap(root: Path, min_samples: int = DEFAULT_MIN_SAMPLES) -> Tuple[Dict[str, List[Example]], Dict[str, int]]:
    """``({session: examples}, {dropped label: count})`` (see :func:`iemocap_manifest`)."""
    return iemocap_manifest(root, min_samples)
