import pytest
import torch

from superb.downstream.featurizer import Featurizer


def _states(seed=0, layers=4, b=2, t=5, d=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, t, d, generator=g) for _ in range(layers)]


def test_initial_weights_are_uniform_and_sum_is_mean():
    hs = _states()
    f = Featurizer([3] * 4)
    assert f.layer_weights() == pytest.approx([0.25] * 4)
    expected = (hs[0] + hs[1] + hs[2] + hs[3]) / 4
    assert torch.allclose(f(hs), expected, atol=1e-6)


def test_weighted_sum_matches_hand_computation():
    hs = _states(1, layers=3)
    f = Featurizer([3] * 3)
    with torch.no_grad():
        f.weights.copy_(torch.tensor([0.0, 1.0, 2.0]))
    import math

    e = [math.exp(0.0), math.exp(1.0), math.exp(2.0)]
    w = [x / sum(e) for x in e]
    expected = w[0] * hs[0] + w[1] * hs[1] + w[2] * hs[2]
    assert f.layer_weights() == pytest.approx(w)
    assert torch.allclose(f(hs), expected, atol=1e-6)


def test_layer_norm_option_normalises_each_layer_without_affine():
    hs = _states(2, layers=2)
    f = Featurizer([3, 3], layer_norm=True)

    def ln(x):
        m = x.mean(-1, keepdim=True)
        v = x.var(-1, unbiased=False, keepdim=True)
        return (x - m) / torch.sqrt(v + 1e-5)

    assert torch.allclose(f(hs), (ln(hs[0]) + ln(hs[1])) / 2, atol=1e-5)
    assert not any("bias" in n for n, _ in f.named_parameters())


def test_single_layer_selection_and_gradients():
    hs = _states(3)
    f = Featurizer([3] * 4, layer=-1)
    assert torch.equal(f(hs), hs[3])
    assert f.layer_weights() == [0.0, 0.0, 0.0, 1.0]
    assert not f.weights.requires_grad
    g = Featurizer([3] * 4)
    g(hs).sum().backward()
    assert g.weights.grad is not None and g.weights.grad.abs().sum() > 0


def test_featurizer_errors_name_the_value():
    with pytest.raises(ValueError, match="layer=7"):
        Featurizer([3] * 4, layer=7)
    with pytest.raises(ValueError, match=r"\[3, 4\]"):
        Featurizer([3, 4])
    f = Featurizer([3] * 4)
    with pytest.raises(ValueError, match="4 hidden states got 2"):
        f(_states(layers=2))
