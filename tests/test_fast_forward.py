"""The fast forward paths change no number: length-grouped batches, fused attention, cached
derived weights, the slice-statistics group norm and duration-batched ``superb extract``.

Small random-init models with every parameter randomised; each fast path is compared with the
plain computation (the whole padded batch, the explicit matmul + softmax, the weight recomputed,
one file at a time). The golden tests (tests/test_wav2vec2_family.py, test_checkpoints_*.py,
test_upstream_*.py, test_padding_invariance.py) compare the same code against the peers.
"""
import math

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from golden_utils import golden_batch, randomize_
from superb.benchmark.extract import duration_batches, extract_features
from superb.upstream import build_upstream
from superb.upstream.masking import derived, forward_in_groups, length_groups, masked_group_norm
from superb.upstream.wav2vec2.components import SelfAttention

ATOL = 1e-5
_W2V2 = dict(conv_layers=((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2,
             hidden_size=32, num_layers=2, num_heads=4, ffn_dim=64, pos_conv_kernel=16, pos_conv_groups=4)
CASES = {
    "hubert": _W2V2,
    "wav2vec2_large": _W2V2,
    "data2vec": dict(_W2V2, pos_conv_kernel=3),
    "tera": dict(hidden_size=24, num_heads=2, intermediate_size=32),
    "best_rq": dict(n_mels=40, cnn_channels=(8, 4), d_model=32, num_layers=2, nhead=4, d_ffn=40,
                    conv_kernel=7, codebook_size=32),
}
#: two pairs of close lengths (grouped at 10 % padding) and one far from the rest
LENGTHS = (12011, 11500, 5003, 4900, 9137)


def _build(name, **extra):
    torch.manual_seed(0)
    model = build_upstream(name, random_init=True, **dict(CASES[name], **extra))
    return randomize_(model, seed=1, scale=0.1).eval()


def test_length_groups_rule():
    assert length_groups([100, 100, 100], 0.0) == [[0, 1, 2]]
    assert length_groups([100, 50, 100, 99], 0.0) == [[0, 2], [3], [1]]
    assert length_groups([100, 50, 100, 99], 0.1) == [[0, 2, 3], [1]]
    assert length_groups([100, 50, 100, 99], 10.0) == [[0, 2, 3, 1]]
    # padding of every group within the bound; every index exactly once
    lens = [16000 + 997 * ((7 * i) % 23) for i in range(23)]
    groups = length_groups(lens, 0.1)
    assert sorted(i for g in groups for i in g) == list(range(23))
    for g in groups:
        assert len(g) * max(lens[i] for i in g) <= 1.1 * sum(lens[i] for i in g)


@pytest.mark.parametrize("name", list(CASES))
def test_grouped_forward_equals_whole_batch(name):
    model = _build(name)
    assert model.group_padding == 0.1
    wavs, lens, _ = golden_batch(LENGTHS)
    with torch.no_grad():
        grouped = model(wavs, lens)
        model.group_padding = None
        whole = model(wavs, lens)
    assert grouped.lengths.tolist() == whole.lengths.tolist()
    assert len(grouped.hidden_states) == len(whole.hidden_states)
    for a, b in zip(grouped.hidden_states, whole.hidden_states):
        assert a.shape == b.shape
        for i, t in enumerate(whole.lengths.tolist()):
            assert float((a[i, :t] - b[i, :t]).abs().max()) <= ATOL


def test_groups_of_one_and_ties():
    model = _build("hubert")
    wavs, lens, _ = golden_batch((8000, 8000, 3000))
    with torch.no_grad():
        out = forward_in_groups(model._forward, wavs, lens, 0.0)
        for i, n in enumerate(lens.tolist()):
            alone = model(wavs[i:i + 1, :n], lens[i:i + 1])
            t = int(alone.lengths[0])
            assert int(out.lengths[i]) == t
            for a, b in zip(out.hidden_states, alone.hidden_states):
                assert float((a[i, :t] - b[0]).abs().max()) <= ATOL


@pytest.mark.parametrize("options", [dict(padding="peer"), dict(padding_mask="fairseq_hubert")])
def test_batch_dependent_settings_are_not_grouped(options):
    """The peers' padded behaviour depends on the batch: it is computed as given, bit for bit."""
    model = _build("hubert", **options)
    assert not model.batch_invariant
    wavs, lens, _ = golden_batch(LENGTHS)
    with torch.no_grad():
        a = model(wavs, lens)
        model.group_padding = None
        b = model(wavs, lens)
    assert all(torch.equal(x, y) for x, y in zip(a.hidden_states, b.hidden_states))


def test_sdpa_attention_equals_matmul_softmax():
    torch.manual_seed(3)
    attn = randomize_(SelfAttention(32, 4), seed=2).eval()
    x = torch.randn(3, 11, 32)
    pad = torch.arange(11)[None, :] >= torch.tensor([11, 7, 4])[:, None]
    with torch.no_grad():
        out = attn(x, pad)
        split = lambda y: y.view(3, 11, 4, 8).transpose(1, 2)  # noqa: E731
        q, k, v = split(attn.q_proj(x)), split(attn.k_proj(x)), split(attn.v_proj(x))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(8)
        scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        ref = attn.out_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(3, 11, 32))
    assert float((out - ref).abs().max()) <= ATOL


def test_derived_weights_follow_the_parameters():
    model = _build("hubert")
    keys = set(model.state_dict())
    assert {"model.encoder.pos_conv.weight_g", "model.encoder.pos_conv.weight_v",
            "model.encoder.layers.0.attention.q_proj.weight"} <= keys
    pos = model.model.encoder.pos_conv
    with torch.no_grad():
        w1 = pos._conv_weight()
        assert pos._conv_weight() is w1  # cached while frozen
        assert torch.allclose(w1.squeeze(2), pos.weight())
        pos.weight_g.mul_(2.0)  # in place: the version counter moves
        w2 = pos._conv_weight()
        assert w2 is not w1 and torch.allclose(w2.squeeze(2), pos.weight())
        other = _build("hubert")
        randomize_(other, seed=9)
        model.load_state_dict(other.state_dict())
        assert torch.allclose(pos._conv_weight().squeeze(2), other.model.encoder.pos_conv.weight())
        wavs, lens, _ = golden_batch((4000, 3000))
        a, b = model(wavs, lens), other(wavs, lens)
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert torch.allclose(x, y, atol=ATOL)
    assert set(model.state_dict()) == keys


def test_derived_is_bypassed_when_autograd_needs_the_graph():
    p = torch.nn.Parameter(torch.ones(3))
    owner = torch.nn.Module()
    y = derived(owner, "double", (p,), lambda: p * 2)
    assert y.requires_grad
    y.sum().backward()
    assert p.grad.tolist() == [2.0, 2.0, 2.0]


def test_masked_group_norm_equals_each_utterance_alone():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, 50, generator=g) * 3 + 1
    lens = torch.tensor([50, 31, 7])
    w, b = torch.randn(6, generator=g), torch.randn(6, generator=g)
    for groups in (6, 3, 1):
        out = masked_group_norm(x, lens, groups, w, b, 1e-5)
        for i, n in enumerate(lens.tolist()):
            ref = F.group_norm(x[i:i + 1, :, :n], groups, w, b, 1e-5)
            assert float((out[i:i + 1, :, :n] - ref).abs().max()) <= ATOL


def test_duration_batches_within_budget():
    lens = [16000 * s for s in (3, 1, 8, 2, 2, 5)]
    batches = duration_batches(lens, 8.0)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(len(b) * max(lens[i] for i in b) <= 8 * 16000 for b in batches)
    assert duration_batches(lens, 0) == [[i] for i in range(6)]
    assert duration_batches([16000 * 20], 8.0) == [[0]]  # a file over the budget is alone


@pytest.mark.parametrize("name", ["hubert", "tera"])
def test_extract_batched_equals_one_file_at_a_time(name, tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, n in enumerate((9000, 16000, 8800, 4100, 16000, 12345)):
        p = tmp_path / f"u{i}.wav"
        sf.write(p, (0.1 * rng.standard_normal(n)).astype(np.float32), 16000, subtype="FLOAT")
        paths.append(p)
    model = _build(name)
    one = extract_features(model, paths, tmp_path / "one.pt", max_seconds=0)
    batched = extract_features(model, paths, tmp_path / "batched.pt", max_seconds=4.0)
    saved = torch.load(tmp_path / "batched.pt", weights_only=True)
    assert [f["path"] for f in saved["files"]] == [str(p) for p in paths]
    for a, b in zip(one["files"], batched["files"]):
        assert a["path"] == b["path"] and a["num_frames"] == b["num_frames"] and a["num_samples"] == b["num_samples"]
        for x, y in zip(a["hidden_states"], b["hidden_states"]):
            assert x.shape == y.shape and float((x - y).abs().max()) <= ATOL
