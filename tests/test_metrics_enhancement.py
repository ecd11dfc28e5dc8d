"""SE/SS metrics (superb.downstream.metrics.enhancement): SI-SDR against a hand computation and
torchmetrics, the best permutation, PESQ / STOI sanity, the optional-package error."""
import math

import numpy as np
import pytest
import torch

from superb.downstream.metrics import dependencies as D
from superb.downstream.metrics import enhancement as M

from conftest import speechlike


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
    x = speechlike()
    assert M.stoi(x, x) == pytest.approx(1.0, abs=1e-6)
    assert M.pesq_wb(x, x) > 4.4  # P.862.2 maps a perfect signal to ~4.64
    noisy = x + 0.05 * np.random.default_rng(4).standard_normal(len(x))
    assert M.pesq_wb(x, noisy) < M.pesq_wb(x, x)
    assert M.stoi(x, noisy) < 1.0
    assert math.isnan(M.pesq_wb(x, np.zeros_like(x)))  # "no utterances detected" -> counted as failed


def test_mean_or_nan_leaves_failed_utterances_out():
    assert M.mean_or_nan([1.0, float("nan"), 3.0, None]) == 2.0
    assert math.isnan(M.mean_or_nan([float("nan")]))
    assert math.isnan(M.mean_or_nan([]))


def test_missing_metric_package_is_a_clear_user_error(monkeypatch):
    import sys

    from superb.benchmark.config import resolve_config
    from superb.downstream.tasks import get_task

    monkeypatch.setitem(sys.modules, "pesq", None)  # "not installed"
    with pytest.raises(D.MissingDependencyError, match=r"pip install 'superb\[synthesis\]'"):
        D.require("pesq", "PESQ")
    with pytest.raises(ValueError, match="PESQ .* needs the Python package 'pesq'"):
        get_task("se")(resolve_config("se", use_mini=False)["task"])


