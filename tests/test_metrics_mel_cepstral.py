"""VC metric (superb.downstream.metrics.mel_cepstral): exact DTW against a brute force and librosa,
MCD by hand, sp2mc against pysptk, WORLD MCD identities."""
import math

import numpy as np
import pytest

from superb.downstream.metrics import mel_cepstral as M
from superb.downstream.metrics.dependencies import require

from conftest import speechlike


# -- DTW and MCD -------------------------------------------------------------------------------
def _dtw_brute(cost):
    n, m = cost.shape
    acc = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            best = 0.0 if i == j == 0 else min(acc[i - 1, j - 1] if i and j else np.inf,
                                                acc[i - 1, j] if i else np.inf, acc[i, j - 1] if j else np.inf)
            acc[i, j] = cost[i, j] + best
    return acc[-1, -1]


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (6, 1), (7, 9), (12, 5)])
def test_dtw_matches_brute_force_and_librosa(shape):
    cost = np.random.default_rng(sum(shape)).random(shape)
    rows, cols, total = M.dtw_path(cost)
    assert total == pytest.approx(_dtw_brute(cost))
    assert cost[rows, cols].sum() == pytest.approx(total)
    assert (rows[0], cols[0]) == (0, 0) and (rows[-1], cols[-1]) == (shape[0] - 1, shape[1] - 1)
    steps = set(zip(np.diff(rows), np.diff(cols)))
    assert steps <= {(0, 1), (1, 0), (1, 1)}
    import librosa
    acc, _ = librosa.sequence.dtw(C=cost)
    assert acc[-1, -1] == pytest.approx(total)


def test_mcd_hand_computed():
    a = np.zeros((2, 3))
    b = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    k = 10.0 / math.log(10.0)
    assert M.mcd_aligned(a, b) == pytest.approx((k * math.sqrt(2 * 1) + k * math.sqrt(2 * 4)) / 2)
    assert M.mcd_aligned(a, b, include_c0=False) == pytest.approx((0 + k * math.sqrt(2 * 4)) / 2)
    # a time-stretched copy aligns perfectly under DTW
    c = np.random.default_rng(5).standard_normal((6, 4))
    assert M.mcd_dtw(np.repeat(c, 2, axis=0), c) == pytest.approx(0.0)


def test_sp2mc_matches_pysptk():
    pysptk = require("pysptk", "test")
    sp = np.exp(np.random.default_rng(6).standard_normal((7, 513)))
    np.testing.assert_allclose(M.sp2mc(sp, 39, 0.41), pysptk.sp2mc(sp, 39, 0.41), atol=1e-12)


def test_world_mcd_identity_and_gain():
    """A gain only moves c0 (by ln g): MCD = 10/ln10 * sqrt(2) * |ln g| with c0, ~0 without."""
    x = speechlike(1.5)
    assert M.mcd(x, x, f0_method="dio") == pytest.approx(0.0, abs=1e-9)
    g = 0.5
    want = 10.0 / math.log(10.0) * math.sqrt(2.0) * abs(math.log(g))
    assert M.mcd(g * x, x, f0_method="dio") == pytest.approx(want, rel=0.02)
    assert M.mcd(g * x, x, f0_method="dio", include_c0=False) < 0.05
    other = speechlike(1.5, seed=9, f0=230.0)
    assert M.mcd(other, x, f0_method="dio") > 1.0


