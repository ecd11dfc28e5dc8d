"""Edit-distance metrics (superb.downstream.metrics.error_rates): the jiwer-based Levenshtein
distance, WER, CER and PER against a plain dynamic-programming implementation written here."""
import random

import pytest

from superb.downstream.metrics.error_rates import cer, edit_distance, per, wer


def _levenshtein(a, b):
    """Textbook Wagner-Fischer DP, unit costs."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def test_edit_distance_by_hand_and_against_a_dp():
    assert edit_distance("KITTEN", "SITTING") == 3
    assert edit_distance("ABC", "") == 3 and edit_distance("", "AB") == 2 and edit_distance("", "") == 0
    assert edit_distance("AB CD", "ABD") == 2  # spaces are characters
    assert edit_distance(" AB", "AB ") == 2  # ... also at the ends (jiwer's CER would strip them)
    assert edit_distance(["the", "cat"], ["the", "hat", "sat"]) == 2  # token sequences
    assert edit_distance([1, "1"], ["1", 1]) == 2  # items compare by equality, not by their text
    rng = random.Random(0)
    for _ in range(500):
        a = [rng.choice("ab c") for _ in range(rng.randint(0, 9))]
        b = [rng.choice("ab c") for _ in range(rng.randint(0, 9))]
        assert edit_distance(a, b) == edit_distance(b, a) == _levenshtein(a, b)
        assert edit_distance("".join(a), "".join(b)) == _levenshtein(a, b)


def test_wer_and_cer_against_a_dp():
    rng = random.Random(1)
    words = ["A", "B", "CAT", "DOG", "THE"]
    refs = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) for _ in range(40)]
    hyps = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 8))) for _ in range(40)]
    want_wer = sum(_levenshtein(r.split(), h.split()) for r, h in zip(refs, hyps)) / sum(len(r.split()) for r in refs)
    want_cer = sum(_levenshtein(r, h) for r, h in zip(refs, hyps)) / sum(len(r) for r in refs)
    assert wer(refs, hyps) == pytest.approx(want_wer)
    assert cer(refs, hyps) == pytest.approx(want_cer)
    assert wer(["A B C D"], ["A X C"]) == pytest.approx(2 / 4)
    assert cer(["ABCD"], ["ABD"]) == pytest.approx(1 / 4)
    import jiwer

    for ref_v, hyp_v in [("KITTEN", "SITTING"), ("ABC", ""), ("SAME", "SAME"), ("AB CD", "ABD")]:
        assert edit_distance(ref_v, hyp_v) == round(jiwer.cer(ref_v, hyp_v) * len(ref_v))


def test_per_by_hand_and_against_a_dp():
    # one substitution (c->x) and one deletion (d) over 4 reference phones, plus a perfect line
    assert per(["a b c d", "e f"], ["a b x", "e f"]) == pytest.approx(2 / 6)
    assert per(["a b"], [""]) == 1.0  # empty hypothesis: every phone deleted
    assert per(["a b"], ["   "]) == 1.0  # whitespace-only likewise
    assert per(["a"], ["a b c"]) == 2.0  # insertions can push PER above 100 %
    with pytest.raises(ValueError, match="empty"):
        per([""], ["a"])
    with pytest.raises(ValueError, match="as many hypotheses"):
        per(["a"], [])
    rng = random.Random(2)
    phones = ["AA", "B", "CH", "D", "EH", "sil"]
    refs = [" ".join(rng.choice(phones) for _ in range(rng.randint(1, 10))) for _ in range(30)]
    hyps = [" ".join(rng.choice(phones) for _ in range(rng.randint(0, 10))) for _ in range(30)]
    want = sum(_levenshtein(r.split(), h.split()) for r, h in zip(refs, hyps)) / sum(len(r.split()) for r in refs)
    assert per(refs, hyps) == pytest.approx(want)
