"""Edit-distance metrics (ASR, OOD-ASR, PR, SF, VC intelligibility): WER, CER, PER and the plain
Levenshtein distance, all computed by ``jiwer``.

Sources (facts only, no code copied):

* Levenshtein, "Binary codes capable of correcting deletions, insertions and reversals" (1966):
  the minimum number of substitutions, deletions and insertions (unit costs) turning one
  sequence into the other. jiwer aligns with RapidFuzz's Levenshtein ``editops``.
* WER / CER: corpus level, total edits over total reference words / characters, with jiwer's
  default transforms (``jiwer.wer``, ``jiwer.cer``): the corpus-level totals SUPERB's ASR
  scoring reports.
* PER: s3prl ``downstream/ctc/metric.py`` ``per``: WER over space-separated phone strings,
  corpus level.
"""
from __future__ import annotations

from typing import Hashable, Sequence

import jiwer


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate (fraction): jiwer's ``wer`` (total word edits / reference words)."""
    return jiwer.wer(list(references), list(hypotheses))


def cer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus character error rate (fraction, spaces count): jiwer's ``cer``."""
    return jiwer.cer(list(references), list(hypotheses))


def per(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Phone error rate (fraction): jiwer's corpus-level WER over space-separated phone strings
    (s3prl ``downstream/ctc/metric.py``).

    An empty hypothesis counts every reference phone as deleted.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"PER needs as many hypotheses as references ({len(hypotheses)} vs {len(references)})")
    if any(not r.strip() for r in references):
        raise ValueError("PER: a reference phone sequence is empty")
    out = jiwer.process_words(list(references), [h if h.strip() else "" for h in hypotheses])
    errors = out.substitutions + out.deletions + out.insertions
    return errors / sum(len(r.split()) for r in references)


def edit_distance(reference: Sequence[Hashable], hypothesis: Sequence[Hashable]) -> int:
    """Levenshtein distance (Levenshtein 1966; unit-cost substitutions, deletions and insertions)
    between two sequences of hashable items -- a string is a sequence of characters, spaces
    included. Computed by jiwer's word alignment over the items (each distinct item mapped to one
    token); the distance is symmetric."""
    ids: dict = {}
    ref = [ids.setdefault(t, f"t{len(ids)}") for t in reference]
    hyp = [ids.setdefault(t, f"t{len(ids)}") for t in hypothesis]
    if not ref or not hyp:  # jiwer < 4 refuses an empty reference
        return len(ref) + len(hyp)
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return out.substitutions + out.deletions + out.insertions


__all__ = ["cer", "edit_distance", "per", "wer"]
