"""ST metric (superb.downstream.metrics.translation): corpus BLEU against a hand computation
(Papineni et al. 2002), torchmetrics' SacreBLEUScore and sacrebleu itself."""
import collections
import math

import pytest

from superb.downstream.metrics import translation as M


# -- BLEU --------------------------------------------------------------------------------------
def _bleu_by_hand(hyps, refs):
    """Corpus BLEU-4 (Papineni et al.) on whitespace tokens, no smoothing."""
    match = [0] * 4
    total = [0] * 4
    hl = rl = 0
    for h, r in zip(hyps, refs):
        h, r = h.split(), r.split()
        hl, rl = hl + len(h), rl + len(r)
        for n in range(1, 5):
            hc = collections.Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
            rc = collections.Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
            match[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            total[n - 1] += max(len(h) - n + 1, 0)
    bp = 1.0 if hl > rl else math.exp(1 - rl / hl)
    return 100 * bp * math.exp(sum(math.log(m / t) for m, t in zip(match, total)) / 4)


def test_bleu_against_hand_computation_and_torchmetrics():
    refs = ["Der alte Hund ist müde", "Ich sehe die schwarze Katze im Garten", "Wir haben sieben Flaschen und zwei Tassen"]
    hyps = ["Der alte Hund ist sehr müde", "Ich sehe die Katze im Garten", "Wir haben sieben Flaschen und drei Tassen"]
    got = M.corpus_bleu(hyps, refs)
    assert got == pytest.approx(_bleu_by_hand(hyps, refs), abs=1e-6)
    assert M.corpus_bleu(refs, refs) == pytest.approx(100.0)
    # case-sensitive
    assert M.corpus_bleu([r.lower() for r in refs], refs) < 100.0
    from torchmetrics.text import SacreBLEUScore

    tm = SacreBLEUScore(tokenize="13a", lowercase=False)
    assert got == pytest.approx(100 * float(tm(hyps, [[r] for r in refs])), abs=1e-4)


def test_bleu_brevity_penalty_by_hand_and_length_check():
    refs = ["the cat sat on the mat all day long", "we went to the old market by the river"]
    hyps = ["the cat sat on the mat", "we went to the old market"]  # 12 of 18 tokens: BP = exp(1 - 18/12)
    got = M.corpus_bleu(hyps, refs)
    assert got == pytest.approx(_bleu_by_hand(hyps, refs), abs=1e-6)
    assert got == pytest.approx(100 * math.exp(1 - 18 / 12), abs=1e-6)  # every hypothesis n-gram matches
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        M.corpus_bleu(hyps, refs[:1])
