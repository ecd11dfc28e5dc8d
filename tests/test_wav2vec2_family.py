"""wav2vec 2.0 / HuBERT / data2vec architecture (random init). Needs only torch.

Equivalence with the reference implementations (fairseq via s3prl, transformers, torchaudio) is
tested in tests/test_checkpoints_*.py.
"""
import pytest
import torch
import torch.nn.functional as F

from superb.upstream import build_upstream, conv_output_lengths, get_spec
from superb.upstream.wav2vec2 import PRESETS, Wav2Vec2Config, normalize_waveforms

SMALL = dict(
    conv_layers=((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2,
    hidden_size=32, num_layers=2, num_heads=4, ffn_dim=64, pos_conv_kernel=16, pos_conv_groups=4,
)
CONV = [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2
LENS = [4000, 3201, 2345, 400]


def small(name, **extra):
    opts = dict(SMALL)
    if PRESETS[name].pos_conv_depth > 1:
        opts["pos_conv_kernel"] = 3  # 5 layers of kernel 3
    opts.update(extra)
    return build_upstream(name, random_init=True, **opts)


def batch(lens, seed=0):
    g = torch.Generator().manual_seed(seed)
    wavs = torch.zeros(len(lens), max(lens))
    for i, n in enumerate(lens):
        wavs[i, :n] = torch.randn(n, generator=g)
    return wavs, torch.tensor(lens)


def test_hubert_random_init_default_architecture():
    torch.manual_seed(0)
    model = build_upstream("hubert", random_init=True)
    lens = [16000, 12345, 8000]
    wavs, wav_lens = batch(lens)
    with torch.no_grad():
        out = model(wavs, wav_lens)
    assert model.num_layers == 13 and model.hidden_sizes == [768] * 13
    assert model.downsample_rate == 320
    assert len(out.hidden_states) == 13
    expected = conv_output_lengths(wav_lens, CONV)
    assert out.lengths.tolist() == expected.tolist() == [49, 38, 24]
    for h in out.hidden_states:
        assert h.shape == (3, 49, 768)
        assert torch.isfinite(h).all()
    # random init follows torch's global RNG
    torch.manual_seed(0)
    again = build_upstream("hubert", random_init=True)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_registered(name):
    spec = get_spec(name)
    assert spec.downsample_rate == 320 and spec.layers == "L+1" and spec.needs_weights
    assert spec.formats
    cfg = PRESETS[name]
    assert cfg.downsample_rate == 320


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_small_configs_shapes_and_lengths(name):
    torch.manual_seed(1)
    model = small(name)
    wavs, wav_lens = batch(LENS)
    with torch.no_grad():
        out = model(wavs, wav_lens)
    assert len(out.hidden_states) == 3 == model.num_layers
    assert out.lengths.tolist() == conv_output_lengths(wav_lens, CONV).tolist() == [12, 9, 7, 1]
    assert all(h.shape == (4, 12, 32) for h in out.hidden_states)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_batch_invariance(name):
    """Default padding="exact": valid frames do not depend on the batch (masked group-norm
    statistics, padding re-zeroed between convolutions, attention masks)."""
    torch.manual_seed(2)
    model = small(name)
    wavs, wav_lens = batch(LENS)
    with torch.no_grad():
        out = model(wavs, wav_lens)
        for i, n in enumerate(LENS):
            single = model(wavs[i:i + 1, :n], wav_lens[i:i + 1])
            t = int(out.lengths[i])
            assert int(single.lengths[0]) == t
            for hb, hs in zip(out.hidden_states, single.hidden_states):
                assert (hb[i, :t] - hs[0, :t]).abs().max() <= 1e-4


@pytest.mark.parametrize("name", ["hubert", "wav2vec2", "data2vec"])
def test_peer_padding_reproduces_batch_dependence(name):
    """padding="peer": the group-norm CNN (Base) normalises over padded time and data2vec's
    stacked positional convs are not re-masked between layers, as in the reference
    implementations; padding then changes the short utterances' frames, while the longest
    (unpadded) one is unaffected."""
    torch.manual_seed(3)
    model = small(name, padding="peer")
    wavs, wav_lens = batch(LENS)
    with torch.no_grad():
        out = model(wavs, wav_lens)
        first = model(wavs[:1], wav_lens[:1])
        short = model(wavs[2:3, :LENS[2]], wav_lens[2:3])
    for hb, hs in zip(out.hidden_states, first.hidden_states):
        assert (hb[0] - hs[0]).abs().max() <= 1e-4
    t = int(out.lengths[2])
    assert (out.hidden_states[-1][2, :t] - short.hidden_states[-1][0, :t]).abs().max() > 1e-4


def test_normalize_uses_valid_samples_only():
    wavs, wav_lens = batch([1000, 600])
    wavs = wavs * 3 + 1
    wavs[1, 600:] = 0
    out = normalize_waveforms(wavs, wav_lens)
    for i, n in enumerate([1000, 600]):
        ref = F.layer_norm(wavs[i, :n], (n,))
        assert (out[i, :n] - ref).abs().max() < 1e-5
    assert out[1, 600:].abs().max() == 0


def test_normalize_flag_changes_input():
    torch.manual_seed(4)
    raw = small("hubert_large", normalize=False)
    torch.manual_seed(4)
    norm = small("hubert_large", normalize=True)
    wavs, wav_lens = batch([2000])
    with torch.no_grad():
        a = raw(wavs * 5, wav_lens).hidden_states[-1]
        b = norm(wavs * 5, wav_lens).hidden_states[-1]
        c = raw(normalize_waveforms(wavs * 5, wav_lens), wav_lens).hidden_states[-1]
    assert (b - c).abs().max() < 1e-5
    assert (a - b).abs().max() > 1e-3


def test_padding_values_are_ignored():
    torch.manual_seed(5)
    model = small("hubert_large")
    wavs, wav_lens = batch([3000, 1500])
    noisy = wavs.clone()
    noisy[1, 1500:] = 100.0
    with torch.no_grad():
        a = model(wavs, wav_lens)
        b = model(noisy, wav_lens)
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert torch.equal(x, y)


def test_unknown_option_is_named():
    with pytest.raises(TypeError, match="num_layer"):
        build_upstream("hubert", random_init=True, num_layer=2)


@pytest.mark.parametrize("name", ["hubert_large", "wav2vec2_large"])
def test_padding_modes_agree_for_layer_norm_cnn(name):
    """Layer-norm CNN + one positional convolution: "exact" and "peer" give the same frames."""
    torch.manual_seed(6)
    exact = small(name)
    peer = small(name, padding="peer")
    peer.load_state_dict(exact.state_dict())
    exact.group_padding = None  # bit-for-bit: the same batch shape (length groups round differently)
    wavs, wav_lens = batch(LENS)
    with torch.no_grad():
        a, b = exact(wavs, wav_lens), peer(wavs, wav_lens)
    for x, y, in zip(a.hidden_states, b.hidden_states):
        for i, t in enumerate(a.lengths.tolist()):
            assert torch.equal(x[i, :t], y[i, :t])


def test_padding_option_values():
    assert PRESETS["wav2vec2"].padding == "exact"
    with pytest.raises(ValueError, match="padding must be 'exact' or 'peer'"):
        small("wav2vec2", padding="fairseq")


def test_bad_config_values():
    with pytest.raises(ValueError, match="num_heads"):
        Wav2Vec2Config(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="extractor_mode"):
        Wav2Vec2Config(extractor_mode="batch_norm")


def test_too_short_utterance():
    model = small("hubert")
    with pytest.raises(ValueError, match="receptive field"):
        model(torch.randn(1, 300), torch.tensor([300]))


def test_frozen_and_eval():
    model = small("hubert")
    model.train()
    assert not model.model.training
    assert not any(p.requires_grad for p in model.parameters())
