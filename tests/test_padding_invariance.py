"""Outputs must not depend on padding: for every upstream family, a padded batch of utterances
of different lengths (random garbage in the padding) gives every valid frame of every hidden
state the values that utterance gets alone (max abs diff <= 1e-4).

Tiny random-init instances (``build_upstream(name, random_init=True, **small options)``), every
parameter randomised so no normalisation weight keeps its structured initial value. The
wav2vec 2.0 family is checked with its default ``padding="exact"``; ``padding="peer"``
(the reference implementations' padded behaviour) is checked to differ where they do.
"""
import pytest
import torch

from golden_utils import golden_batch, randomize_
from superb.upstream import build_upstream

ATOL = 1e-4
#: three different lengths, none a multiple of a frame hop; the longest is not first
LENGTHS = (9137, 5003, 12011)

_W2V2 = dict(conv_layers=((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2,
             hidden_size=32, num_layers=2, num_heads=4, ffn_dim=64, pos_conv_kernel=16, pos_conv_groups=4)
_W2V1_FEAT = "[(16, 10, 5), (16, 8, 4), (16, 4, 2), (16, 4, 2), (16, 4, 2), (16, 1, 1)]"
_W2V1_AGG = "[(16, 2, 1), (24, 3, 1), (24, 4, 1), (24, 5, 1)]"

#: upstream name -> small options (None: a parameter-free baseline, built without random_init)
CASES = {
    "wav2vec2": _W2V2,  # group-norm CNN, post-LN (Base style)
    "wav2vec2_large": _W2V2,  # layer-norm CNN, layer-norm-first
    "hubert": _W2V2,
    "hubert_large": _W2V2,
    "data2vec": dict(_W2V2, pos_conv_kernel=3),  # five stacked positional convolutions
    "data2vec_large": dict(_W2V2, pos_conv_kernel=3),
    "tera": dict(hidden_size=24, num_heads=2, intermediate_size=32),
    "mockingjay": dict(hidden_size=24, num_heads=2, intermediate_size=32, num_layers=2),
    "apc": dict(hidden_size=16, num_layers=2),
    "vq_apc": dict(hidden_size=16, vq_codebook_size=(8,), vq_code_dim=(16,)),
    "modified_cpc": dict(hiddenEncoder=16, hiddenGar=8),
    "wav2vec": dict(conv_feature_layers=_W2V1_FEAT, conv_aggregator_layers=_W2V1_AGG),
    "vq_wav2vec": dict(conv_feature_layers=_W2V1_FEAT, conv_aggregator_layers=_W2V1_AGG, vq_vars=16),
    "best_rq": dict(n_mels=40, cnn_channels=(8, 4), d_model=32, num_layers=2, nhead=4, d_ffn=40,
                    conv_kernel=7, codebook_size=32),
    "fbank": None,
    "mfcc": None,
}


def _build(name, **extra):
    options = CASES[name]
    if options is None:
        return build_upstream(name, **extra).eval()
    torch.manual_seed(0)
    model = build_upstream(name, random_init=True, **dict(options, **extra))
    randomize_(model, seed=1, scale=0.1)
    return model.eval()


def _batch_vs_alone(model):
    """Largest |batched - alone| over every hidden state and valid frame, per utterance."""
    wavs, lens, _ = golden_batch(LENGTHS)
    with torch.no_grad():
        out = model(wavs, lens)
        diffs = []
        for i, n in enumerate(lens.tolist()):
            alone = model(wavs[i:i + 1, :n], lens[i:i + 1])
            t = int(out.lengths[i])
            assert int(alone.lengths[0]) == t, f"utterance {i}: {t} frames batched, {int(alone.lengths[0])} alone"
            assert len(out.hidden_states) == len(alone.hidden_states)
            diffs.append(max(float((hb[i, :t].double() - ha[0, :t].double()).abs().max())
                             for hb, ha in zip(out.hidden_states, alone.hidden_states)))
    return diffs


@pytest.mark.parametrize("name", list(CASES))
def test_padded_batch_equals_each_utterance_alone(name):
    diffs = _batch_vs_alone(_build(name))
    assert max(diffs) <= ATOL, f"{name}: max abs diff per utterance {['%.3g' % d for d in diffs]} > {ATOL}"


@pytest.mark.parametrize("name", ["wav2vec2", "hubert", "data2vec"])
def test_peer_padding_option_reproduces_reference_dependence(name):
    """padding="peer" keeps the reference implementations' padded behaviour (group-norm
    statistics over the padding; data2vec's positional stack zeroed only at its input): the
    padded utterances differ, the longest (unpadded) one does not."""
    diffs = _batch_vs_alone(_build(name, padding="peer"))
    longest = LENGTHS.index(max(LENGTHS))
    assert diffs[longest] <= ATOL
    assert max(d for i, d in enumerate(diffs) if i != longest) > 1e-2
