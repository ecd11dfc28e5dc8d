"""QbE metrics (superb.downstream.metrics.detection): MTWV / ATWV by hand and against the NIST STD
2006 formula ``1 - mean_q [P_miss(q) + beta P_fa(q)]`` evaluated at every threshold."""
import numpy as np
import pytest

from superb.downstream.metrics.detection import actual_twv, maximum_twv, twv_weights


def test_twv_by_hand():
    # 2 scored queries (a third has no occurrence and is left out), 5 documents, beta = 2
    scores = np.array([[3.0, 1.0, 2.0, 0.0, -1.0],
                       [0.5, 2.5, 1.5, 1.5, 0.0],
                       [9.0, 9.0, 9.0, 9.0, 9.0]])
    targets = np.array([[1, 0, 1, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=bool)
    # theta = 2.5: q1 detects doc0 (hit 1/2), q2 detects doc1 (hit 1/1): TWV = (0.5 + 1) / 2 = 0.75
    # theta = 2.0: q1 also doc2 (hit): (1 + 1) / 2 = 1.0; theta = 1.5: q2 FAs docs 2,3 (2 x 2/4 / 2 = 0.5) -> 0.5
    mtwv, theta = maximum_twv(scores, targets, beta=2.0)
    assert mtwv == pytest.approx(1.0) and theta == 2.0
    assert actual_twv(scores, targets, 2.0, threshold=2.0) == pytest.approx(0.75)  # score > 2.0 only
    assert actual_twv(scores, targets, 2.0, threshold=0.9) == pytest.approx((1.0 - 2 * 1 / 3 + 1.0 - 2 * 2 / 4) / 2)
    # a useless system never goes below 0: detecting nothing is allowed
    assert maximum_twv(-scores, targets, beta=50.0) == (0.0, float("inf"))
    w, scored = twv_weights(targets, 2.0)
    assert scored.tolist() == [True, True, False]
    np.testing.assert_allclose(w, [[1 / 4, -1 / 3, 1 / 4, -1 / 3, -1 / 3], [-1 / 4, 1 / 2, -1 / 4, -1 / 4, -1 / 4]])
    with pytest.raises(ValueError, match="no query has an occurrence"):
        maximum_twv(scores, np.zeros_like(targets), 2.0)


def _twv_formula(scores, targets, beta, detect):
    """NIST STD 2006: 1 - mean over queries with occurrences of P_miss + beta P_fa."""
    terms = []
    for s, t, d in zip(scores, targets, detect):
        n_true = t.sum()
        if n_true == 0:
            continue
        p_miss = 1.0 - (d & t).sum() / n_true
        p_fa = (d & ~t).sum() / (len(t) - n_true)
        terms.append(p_miss + beta * p_fa)
    return 1.0 - float(np.mean(terms))


def test_mtwv_and_atwv_match_the_formula_at_every_threshold():
    rng = np.random.default_rng(4)
    for beta in (2.0, 12.49):
        targets = rng.random((6, 30)) < 0.15
        targets[0] = False  # a query without occurrences is left out
        targets[1, 0] = True
        scores = np.round(rng.normal(1.5 * targets, 1.0), 1)  # ties
        values = [0.0] + [_twv_formula(scores, targets, beta, scores >= t) for t in np.unique(scores)]
        mtwv, theta = maximum_twv(scores, targets, beta)
        assert mtwv == pytest.approx(max(values))
        if mtwv > 0:
            assert _twv_formula(scores, targets, beta, scores >= theta) == pytest.approx(mtwv)
        for t in (-0.5, 0.3, 1.0, 2.0):
            assert actual_twv(scores, targets, beta, t) == pytest.approx(_twv_formula(scores, targets, beta, scores > t))
