"""Speech translation metric (ST): corpus BLEU.

Source: Papineni et al., "BLEU: a method for automatic evaluation of machine translation" (ACL
2002), as computed by ``sacrebleu`` (Post, "A call for clarity in reporting BLEU scores", WMT
2018): detokenised, case-sensitive corpus BLEU with its default ``13a`` tokeniser, the setting of
SUPERB-SG ST (s3prl ``speech_translation``).
"""
from __future__ import annotations

from typing import Sequence

from .dependencies import require


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Detokenised, case-sensitive corpus BLEU (Papineni et al. 2002 via sacrebleu, ``13a``
    tokeniser, one reference per hypothesis), 0-100."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    sacrebleu = require("sacrebleu", "BLEU (speech translation)", extra="synthesis")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize="13a",
                                       lowercase=False).score)


__all__ = ["corpus_bleu"]
