"""ASV / VC metrics (superb.downstream.metrics.verification): EER against sklearn ``roc_curve`` +
``brentq`` (the leaderboard's computation), minDCF by hand and by brute force, the EER decision
threshold against a brute force over every attainable operating point."""
import numpy as np
import pytest

from superb.downstream.metrics.verification import eer_threshold, equal_error_rate, error_curve, min_dcf


def _sklearn_eer(labels, scores):
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1)
    return 100 * brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eer_matches_sklearn_roc_curve(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 400)
    scores = np.round(rng.normal(labels * 1.2, 1.0), 1)  # rounding makes ties
    assert equal_error_rate(labels, scores) == pytest.approx(_sklearn_eer(labels, scores), abs=1e-6)
    assert equal_error_rate([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert equal_error_rate([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 100.0


def test_error_curve_against_sklearn_roc_curve():
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(labels, 1.0), 1)
    miss, fa = error_curve(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fa, fpr)
    np.testing.assert_allclose(miss, 1.0 - tpr)


def test_min_dcf_hand_computed_and_brute_force():
    labels = [1, 1, 0, 1, 0, 0]
    scores = [0.9, 0.8, 0.7, 0.6, 0.4, 0.2]
    # thresholds (accept >= t): none, 0.9, 0.8, 0.7, 0.6, 0.4, 0.2 -> (P_miss, P_fa):
    # (1,0) (2/3,0) (1/3,0) (1/3,1/3) (0,1/3) (0,2/3) (0,1)
    # p_target 0.5, costs 1: DCF = 0.5 (P_miss + P_fa), normalised by 0.5 -> min P_miss + P_fa = 1/3
    assert min_dcf(labels, scores, p_target=0.5) == pytest.approx(1 / 3)
    # p_target 0.01: 0.01 P_miss + 0.99 P_fa; best is (1/3, 0): 0.01/3 / 0.01 = 1/3
    assert min_dcf(labels, scores, p_target=0.01) == pytest.approx(1 / 3)
    # c_miss 10, p_target 0.25: cost 2.5 P_miss + 0.75 P_fa, best (0, 1/3) = 0.25, / min(2.5, 0.75)
    assert min_dcf(labels, scores, p_target=0.25, c_miss=10.0) == pytest.approx(0.25 / 0.75)
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    s = rng.normal(y, 1.0)
    thresholds = np.r_[np.inf, np.sort(s)]
    brute = min((0.01 * np.mean(s[y == 1] < t) + 0.99 * np.mean(s[y == 0] >= t)) / 0.01 for t in thresholds)
    assert min_dcf(y, s) == pytest.approx(brute)
    with pytest.raises(ValueError, match="target and non-target"):
        equal_error_rate([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="0 < p_target < 1"):
        min_dcf(labels, scores, p_target=1.0)


def _brute_eer_threshold(scores, labels):
    """Every attainable decision "accept if score > t" (t = each score, or below them all), its
    real |FRR - FAR|; the smallest gap, the lowest such t on equal gaps."""
    candidates = np.r_[scores.min() - 1e-6, np.unique(scores)]
    gaps = [abs(np.mean(scores[labels == 1] <= t) - np.mean(scores[labels == 0] > t)) for t in candidates]
    return float(candidates[int(np.argmin(gaps))]), float(min(gaps))


def test_eer_threshold_hand_cases():
    thr = eer_threshold(np.array([0.9, 0.1, 0.8, 0.2]), np.array([1.0, 0.0, 1.0, 0.0]))
    assert thr == pytest.approx(0.2)  # accept > 0.2: no false accepts, no false rejects
    scores, labels = np.array([0.1, 0.3, 0.5, 0.7, 0.4, 0.6]), np.array([0, 0, 0, 1, 1, 1])
    thr = eer_threshold(scores, labels.astype(float))
    assert thr == 0.4  # accept > 0.4: FRR 1/3 (0.4), FAR 1/3 (0.5)
    far = np.mean(scores[labels == 0] > thr)
    frr = np.mean(scores[labels == 1] <= thr)
    assert far == pytest.approx(frr) == pytest.approx(1 / 3)
    # everything accepted is the best point: the threshold lies just below the lowest score
    assert eer_threshold(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5 - 1e-6)


@pytest.mark.parametrize("ties", [False, True])
def test_eer_threshold_matches_a_brute_force(ties):
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(3, 40))
        y = rng.integers(0, 2, n)
        if y.min() == y.max():
            continue
        s = rng.normal(0.8 * y, 1.0)
        if ties:
            s = np.round(s, 1)
        want_thr, want_gap = _brute_eer_threshold(s, y)
        got = eer_threshold(s, y.astype(float))
        assert got == pytest.approx(want_thr)
        real_gap = abs(np.mean(s[y == 1] <= got) - np.mean(s[y == 0] > got))
        assert real_gap == pytest.approx(want_gap)


def test_eer_threshold_on_ties_uses_only_attainable_operating_points():
    """The O(n^2) scan that VC used before split the sorted scores at every index, also *inside* a
    group of equal scores -- an operating point no threshold reaches. Here it found a gap of 0 at
    "reject 0.2 and the first 0.5" and returned t = 0.5; the real decision "accept > 0.5" accepts
    nothing (FRR 1, FAR 0: the worst gap). The attainable points are t < 0.2 (FRR 0, FAR 1),
    t = 0.2 (FRR 0, FAR 1/2) and t = 0.5 (FRR 1, FAR 0): the best is t = 0.2, which the shared
    function returns (and the brute force agrees). Without ties both give the same threshold."""
    scores = np.array([0.2, 0.5, 0.5])
    labels = np.array([0.0, 0.0, 1.0])
    thr = eer_threshold(scores, labels)
    assert thr == 0.2
    frr, far = np.mean(scores[labels == 1] <= thr), np.mean(scores[labels == 0] > thr)
    assert (frr, far) == (0.0, 0.5)
    assert _brute_eer_threshold(scores, labels) == (0.2, 0.5)


def test_vc_asv_threshold_uses_the_shared_eer_threshold():
    import superb.downstream.tasks.vc as vc

    assert not hasattr(vc, "eer_threshold")  # defined once, in superb.downstream.metrics.verification
    task = vc.VoiceConversion.__new__(vc.VoiceConversion)  # no vocoder / WORLD set-up needed here
    task.cfg, task._asv_threshold = {}, None
    task._asv_natural = [("A", "a1"), ("A", "a2"), ("B", "b1"), ("B", "b2")]
    emb = {"a1": np.array([1.0, 0.0]), "a2": np.array([0.8, 0.6]), "b1": np.array([0.0, 1.0]),
           "b2": np.array([0.6, 0.8])}
    task._embed_path = lambda p: emb[p]
    pairs = [("a1", "a2", 1), ("a1", "b1", 0), ("a1", "b2", 0), ("a2", "b1", 0), ("a2", "b2", 0), ("b1", "b2", 1)]
    scores = np.array([vc.VoiceConversion._cosine(emb[a], emb[b]) for a, b, _ in pairs])
    labels = np.array([float(y) for _, _, y in pairs])
    # same-speaker 0.8, 0.8; different-speaker 0, 0.6, 0.6, 0.96: accept > 0.6 gives FRR 0, FAR 1/4
    assert task.asv_threshold() == eer_threshold(scores, labels) == pytest.approx(0.6)
