"""Slot filling metrics (SF): slot-type F1 and slot-value CER.

Source (facts only, no code copied): s3prl ``downstream/ctc/metric.py`` (``slot_type_f1``,
``slot_value_cer``), the SUPERB SF metrics:

* slot-type F1 -- per utterance, the sets of slot types in reference and hypothesis give
  precision and recall (F1 = 1 when both are empty, 0 when exactly one is), averaged over
  utterances.
* slot-value CER -- for every reference slot, the hypothesis value of the same type with the
  lowest CER (the empty string when the type is absent; the first on ties) is aligned to it;
  total character edits (Levenshtein, :func:`.error_rates.edit_distance`) / total reference
  characters over all those pairs (spaces count).

Slots are read from a sequence with the pattern ``B-<type> <value> E-<type>`` (shortest value,
matching type); slot tokens nested inside a hypothesis value are removed from it.
"""
from __future__ import annotations

import re
from typing import Dict, List, Sequence, Tuple

from .error_rates import edit_distance

_SLOT_RE = re.compile(r"B-(\S+) (.+?) E-\1")
_TAG_TOKEN_RE = re.compile(r"[BE]-\S+")


def remove_slot_tokens(seq: str) -> str:
    """``seq`` without its ``B-<type>`` / ``E-<type>`` tokens (the plain transcript)."""
    return " ".join(w for w in seq.split() if not _TAG_TOKEN_RE.fullmatch(w))


def parse_slots(seq: str, clean_values: bool = False) -> Dict[str, List[str]]:
    """``{type: [values]}`` of ``B-<type> value E-<type>`` spans (in order)."""
    seq = " ".join(seq.split())
    out: Dict[str, List[str]] = {}
    for slot, value in _SLOT_RE.findall(seq):
        out.setdefault(slot, []).append(remove_slot_tokens(value) if clean_values else value)
    return out


def slot_type_f1(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Mean over utterances of the F1 of the sets of slot types (fraction; s3prl ``slot_type_f1``)."""
    scores = []
    for ref, hyp in zip(references, hypotheses):
        r, h = set(parse_slots(ref)), set(parse_slots(hyp, clean_values=True))
        if not r and not h:
            scores.append(1.0)
        elif not r or not h:
            scores.append(0.0)
        else:
            precision, recall = len(r & h) / len(h), len(r & h) / len(r)
            scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(scores) / len(scores)


def slot_value_pairs(references: Sequence[str], hypotheses: Sequence[str]) -> List[Tuple[str, str]]:
    """(reference value, best hypothesis value of the same type) for every reference slot."""
    pairs = []
    for ref, hyp in zip(references, hypotheses):
        r, h = parse_slots(ref), parse_slots(hyp, clean_values=True)
        for slot, values in r.items():
            for value in values:
                best, best_cer = "", None
                for cand in h.get(slot, []):
                    c = edit_distance(value, cand) / len(value)
                    if best_cer is None or c < best_cer:
                        best, best_cer = cand, c
                pairs.append((value, best))
    return pairs


def slot_value_cer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus CER (fraction) of the aligned slot values (s3prl ``slot_value_cer``)."""
    pairs = slot_value_pairs(references, hypotheses)
    if not pairs:
        return 0.0
    return sum(edit_distance(r, h) for r, h in pairs) / sum(len(r) for r, _ in pairs)


__all__ = ["parse_slots", "remove_slot_tokens", "slot_type_f1", "slot_value_cer", "slot_value_pairs"]
