"""SUPERB-SG metrics and building blocks against hand computations and independent implementations
(torchmetrics, librosa, sacrebleu's own numbers re-derived by hand)."""
import collections
import math

import numpy as np
import pytest
import torch

from superb.downstream import sg_metrics as M
from superb.downstream.tasks.enhancement import StftConfig, align_frames, mask_targets, upit_mse

SR = 16000


def _speechlike(seconds=1.2, seed=0, f0=140.0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    env = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12)) * env
    return (0.3 * x / np.max(np.abs(x)) + 0.003 * rng.standard_normal(len(t))).astype(np.float64)


# -- SI-SDR -----------------------------------------------------------------------------------
def test_si_sdr_hand_computed_orthogonal_noise():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(4000)
    ref -= ref.mean()
    noise = rng.standard_normal(4000)
    noise -= noise.mean()
    noise -= np.dot(noise, ref) / np.dot(ref, ref) * ref  # orthogonal to ref, zero mean
    noise *= 0.1 * np.linalg.norm(ref) / np.linalg.norm(noise)  # 20 dB below
    assert M.si_sdr(ref + noise, ref) == pytest.approx(20.0, abs=1e-6)
    # scale invariance and mean removal
    assert M.si_sdr(3.0 * (ref + noise) + 0.7, ref) == pytest.approx(20.0, abs=1e-6)


def test_si_sdr_matches_torchmetrics_and_improvement():
    import torchmetrics.functional.audio as tm
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((5, 3000))
    est = ref + 0.5 * rng.standard_normal((5, 3000))
    mix = ref + 1.5 * rng.standard_normal((5, 3000))
    want = tm.scale_invariant_signal_distortion_ratio(torch.from_numpy(est), torch.from_numpy(ref), zero_mean=True)
    got = [M.si_sdr(e, r) for e, r in zip(est, ref)]
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    want_in = tm.scale_invariant_signal_distortion_ratio(torch.from_numpy(mix), torch.from_numpy(ref), zero_mean=True)
    gain = np.array(got) - np.array([M.si_sdr(m, r) for m, r in zip(mix, ref)])
    np.testing.assert_allclose(gain, (want - want_in).numpy(), atol=1e-5)


def test_best_permutation_swaps_estimates():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(2000), rng.standard_normal(2000)
    perm, vals = M.best_permutation([b + 0.01 * a, a + 0.01 * b], [a, b])
    assert perm == (1, 0)
    assert vals[0] == pytest.approx(M.si_sdr(a + 0.01 * b, a))


def test_pesq_and_stoi_sanity():
    x = _speechlike()
    assert M.stoi(x, x) == pytest.approx(1.0, abs=1e-6)
    assert M.pesq_wb(x, x) > 4.4  # P.862.2 maps a perfect signal to ~4.64
    noisy = x + 0.05 * np.random.default_rng(4).standard_normal(len(x))
    assert M.pesq_wb(x, noisy) < M.pesq_wb(x, x)
    assert M.stoi(x, noisy) < 1.0
    assert math.isnan(M.pesq_wb(x, np.zeros_like(x)))  # "no utterances detected" -> counted as failed


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
    pysptk = M.require("pysptk", "test")
    sp = np.exp(np.random.default_rng(6).standard_normal((7, 513)))
    np.testing.assert_allclose(M.sp2mc(sp, 39, 0.41), pysptk.sp2mc(sp, 39, 0.41), atol=1e-12)


def test_world_mcd_identity_and_gain():
    """A gain only moves c0 (by ln g): MCD = 10/ln10 * sqrt(2) * |ln g| with c0, ~0 without."""
    x = _speechlike(1.5)
    assert M.mcd(x, x, f0_method="dio") == pytest.approx(0.0, abs=1e-9)
    g = 0.5
    want = 10.0 / math.log(10.0) * math.sqrt(2.0) * abs(math.log(g))
    assert M.mcd(g * x, x, f0_method="dio") == pytest.approx(want, rel=0.02)
    assert M.mcd(g * x, x, f0_method="dio", include_c0=False) < 0.05
    other = _speechlike(1.5, seed=9, f0=230.0)
    assert M.mcd(other, x, f0_method="dio") > 1.0


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


# -- STFT masks ---------------------------------------------------------------------------------
def test_align_frames_repeat_interpolate_and_clamp():
    feats = torch.arange(5, dtype=torch.float32).view(1, 5, 1).repeat(2, 1, 1)
    lengths = torch.tensor([5, 3])
    up = align_frames(feats, lengths, rate=320, hop=160, num_frames=8, mode="repeat")[..., 0]
    # position j*160/320 = j/2, nearest (half up); past the last valid frame: the last one
    assert up[0].tolist() == [0, 1, 1, 2, 2, 3, 3, 4]
    assert up[1].tolist() == [0, 1, 1, 2, 2, 2, 2, 2]
    lin = align_frames(feats, lengths, rate=320, hop=160, num_frames=8, mode="interpolate")[..., 0]
    assert lin[0].tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]
    down = align_frames(feats, lengths, rate=160, hop=320, num_frames=3, mode="repeat")[..., 0]
    assert down[0].tolist() == [0, 2, 4]
    same = align_frames(feats, lengths, rate=160, hop=160, num_frames=7, mode="repeat")[..., 0]
    assert same[0].tolist() == [0, 1, 2, 3, 4, 4, 4]  # s3prl: pad by repetition at the end


def test_stft_round_trip_and_targets():
    cfg = StftConfig(512, 512, 160)
    x = torch.from_numpy(_speechlike(0.5)).float()
    spec = cfg.stft(x)
    assert spec.shape == (257, cfg.frames(len(x)))
    assert torch.allclose(cfg.istft(spec, len(x)), x, atol=1e-5)
    npsm = mask_targets(spec, [spec, -spec], "NPSM")
    assert torch.allclose(npsm[0], spec.abs(), atol=1e-4) and float(npsm[1].abs().max()) == 0.0
    assert torch.allclose(mask_targets(spec, [-spec], "PSM")[0], -spec.abs(), atol=1e-4)
    assert torch.allclose(mask_targets(spec, [-spec], "AM")[0], spec.abs())


def test_upit_mse_is_permutation_invariant_and_masks_padding():
    est = torch.zeros(1, 2, 4, 3)
    est[0, 0] = 1.0
    tgt = torch.zeros(1, 2, 4, 3)
    tgt[0, 1] = 1.0
    tgt[0, 0, :, 0] = 2.0
    frames = torch.tensor([3])
    # best assignment: est0 -> tgt1 (error 0), est1 -> tgt0 (error 4 per frame) over 3 valid frames
    assert float(upit_mse(est, tgt, frames)) == pytest.approx(12.0)
    assert float(upit_mse(est, tgt.flip(1), frames)) == pytest.approx(12.0)


def test_missing_metric_package_is_a_clear_user_error(monkeypatch):
    import sys

    from superb.benchmark.config import resolve_config
    from superb.downstream.tasks import get_task

    monkeypatch.setitem(sys.modules, "pesq", None)  # "not installed"
    with pytest.raises(M.MissingDependencyError, match=r"pip install 'superb\[synthesis\]'"):
        M.require("pesq", "PESQ")
    with pytest.raises(ValueError, match="PESQ .* needs the Python package 'pesq'"):
        get_task("se")(resolve_config("se", use_mini=False)["task"])


def test_vc_helpers_eer_threshold_and_sentence_normalisation():
    from superb.downstream.tasks.vc import eer_threshold, normalize_sentence

    thr = eer_threshold(np.array([0.9, 0.1, 0.8, 0.2]), np.array([1.0, 0.0, 1.0, 0.0]))
    assert thr == pytest.approx(0.2)  # accept > 0.2: no false accepts, no false rejects
    scores, labels = np.array([0.1, 0.3, 0.5, 0.7, 0.4, 0.6]), np.array([0, 0, 0, 1, 1, 1])
    thr = eer_threshold(scores, labels.astype(float))
    far = np.mean(scores[labels == 0] > thr)
    frr = np.mean(scores[labels == 1] <= thr)
    assert far == pytest.approx(frr)
    assert normalize_sentence("  Hello, world!  It's me. ") == "HELLO WORLD ITS ME"
