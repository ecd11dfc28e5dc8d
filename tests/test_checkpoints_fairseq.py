"""fairseq ``.pt`` checkpoints of wav2vec 2.0 / HuBERT / data2vec, checked against peers.

Needs (test-only, installed by .ci/run): s3prl==0.4.18 (--no-deps; its model code equals fairseq's),
omegaconf (s3prl imports it; also used to write a DictConfig ``cfg``), torchaudio
(``import_fairseq_model``). fairseq itself is NOT needed and must not be importable for loading.

Each case builds a small random fairseq-equivalent model, writes it the way fairseq saves
checkpoints, loads it with ``build_upstream(name, ckpt=path)`` and compares every hidden state
on a padded batch of different lengths (layer count and lengths exact, max abs diff <= 1e-4).
Padded batches are compared with ``padding="peer"`` (the peers' padded behaviour, where group
norm and data2vec's positional stack see the padding); the default ``padding="exact"`` is
compared with the peer running every utterance alone.
"""
import sys
import warnings

import pytest
import torch

import w2v2_peers as P
from superb.upstream import build_upstream, conv_output_lengths

warnings.filterwarnings("ignore", category=FutureWarning)

CASES = [(f, s) for f in ("wav2vec2", "hubert", "data2vec") for s in ("base", "large")]
NAMES = {("wav2vec2", "base"): "wav2vec2", ("wav2vec2", "large"): "wav2vec2_large",
         ("hubert", "base"): "hubert", ("hubert", "large"): "hubert_large",
         ("data2vec", "base"): "data2vec", ("data2vec", "large"): "data2vec_large"}
CONV = [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2


def _reference(family, style, tmp_path, layout):
    normalize = style == "large"
    cfg = P.fairseq_model_cfg(family, style)
    model = P.build_s3prl_model(family, cfg, normalize=normalize)
    path = tmp_path / f"{family}_{style}_{layout}.pt"
    P.write_fairseq(path, family, cfg, P.s3prl_state(model, family), normalize,
                    legacy=layout == "args", omegaconf_cfg=layout == "omegaconf")
    return model, path, normalize


@pytest.mark.parametrize("layout", ["cfg", "args", "omegaconf"])
@pytest.mark.parametrize("family,style", CASES)
def test_fairseq_matches_fairseq_model(family, style, layout, tmp_path):
    """fairseq reference behaviour on a padded batch (padding="peer"; HuBERT with its own
    padding-mask rule)."""
    model, path, normalize = _reference(family, style, tmp_path, layout)
    assert "fairseq" not in sys.modules
    options = {"padding": "peer"}
    if family == "hubert":
        options["padding_mask"] = "fairseq_hubert"
    ours = build_upstream(NAMES[(family, style)], ckpt=path, **options)
    assert ours.source_format == "fairseq"
    assert ours.config.normalize is normalize  # task normalize honoured
    assert ours.num_layers == P.fairseq_model_cfg(family, style)["encoder_layers"] + 1
    wavs, lens = P.batch()
    with torch.no_grad():
        out = ours(wavs, lens)
    ref = P.s3prl_hidden_states(model, family, wavs, lens, normalize)
    P.compare(out, ref, lens, conv_output_lengths(lens, CONV))
    assert "fairseq" not in sys.modules


@pytest.mark.parametrize("family,style", CASES)
def test_fairseq_single_utterances_default_options(family, style, tmp_path):
    """Default options, each utterance alone: identical to fairseq (no padding anywhere)."""
    model, path, normalize = _reference(family, style, tmp_path, "cfg")
    ours = build_upstream(family, ckpt=path)
    wavs, lens = P.batch()
    for i, n in enumerate(lens.tolist()):
        w, l = wavs[i:i + 1, :n], lens[i:i + 1]
        with torch.no_grad():
            out = ours(w, l)
        P.compare(out, P.s3prl_hidden_states(model, family, w, l, normalize), l)


@pytest.mark.parametrize("family,style", CASES)
def test_fairseq_padded_batch_equals_reference_alone(family, style, tmp_path):
    """Default padding="exact": every utterance of a padded batch (garbage in the padding) gets
    what fairseq computes for it alone."""
    model, path, normalize = _reference(family, style, tmp_path, "cfg")
    ours = build_upstream(NAMES[(family, style)], ckpt=path)
    assert ours.config.padding == "exact"
    wavs, lens = P.batch()
    noisy = wavs.clone()
    for i, n in enumerate(lens.tolist()):
        noisy[i, n:] = torch.randn(noisy.shape[1] - n)
    with torch.no_grad():
        out = ours(noisy, lens)
    alone = [P.s3prl_hidden_states(model, family, wavs[i:i + 1, :n], lens[i:i + 1], normalize)
             for i, n in enumerate(lens.tolist())]
    ref = [torch.nn.utils.rnn.pad_sequence([a[layer][0] for a in alone], batch_first=True)
           for layer in range(len(alone[0]))]
    P.compare(out, ref, lens, conv_output_lengths(lens, CONV))


def test_hubert_padding_mask_rules_differ(tmp_path):
    """fairseq HuBERT attends to frames whose receptive field reaches into the padding; the
    default rule (exact conv lengths, as transformers and torchaudio) does not."""
    model, path, normalize = _reference("hubert", "large", tmp_path, "cfg")
    wavs, lens = P.batch()
    ref = P.s3prl_hidden_states(model, "hubert", wavs, lens, normalize)
    with torch.no_grad():
        out = build_upstream("hubert_large", ckpt=path)(wavs, lens)
    t = int(out.lengths[1])
    assert (out.hidden_states[-1][1, :t] - ref[-1][1, :t]).abs().max() > 1e-3
    for a, b in zip(out.hidden_states, ref):  # the unpadded utterance is the same under both rules
        assert (a[0] - b[0, : a.shape[1]]).abs().max() <= 1e-4


@pytest.mark.parametrize("family,style", [(f, s) for f in ("wav2vec2", "hubert") for s in ("base", "large")])
def test_fairseq_matches_torchaudio(family, style, tmp_path):
    """torchaudio's own fairseq importer builds the peer model from the same weights."""
    from torchaudio.models.wav2vec2.utils import import_fairseq_model

    model, path, _ = _reference(family, style, tmp_path, "cfg")
    ta = import_fairseq_model(model).eval()
    ours = build_upstream(family, ckpt=path, normalize=False, padding="peer")
    wavs, lens = P.batch()
    first = []
    hook = ta.encoder.transformer.layers[0].register_forward_pre_hook(lambda m, inp: first.append(inp[0]))
    with torch.no_grad():
        feats, ta_lens = ta.extract_features(wavs, lens)
        hook.remove()
        final, _ = ta(wavs, lens)  # torchaudio's extract_features returns the last layer pre-LN
        out = ours(wavs, lens)
    P.compare(out, [first[0]] + feats[:-1] + [final], lens, ta_lens)


def test_fairseq_without_feature_projection(tmp_path):
    """fairseq omits post_extract_proj when the CNN width equals the transformer width."""
    cfg = P.fairseq_model_cfg("wav2vec2", "base", encoder_embed_dim=32)
    model = P.build_s3prl_model("wav2vec2", cfg)
    assert model.post_extract_proj is None
    path = P.write_fairseq(tmp_path / "noproj.pt", "wav2vec2", cfg, P.s3prl_state(model, "wav2vec2"), False)
    ours = build_upstream("wav2vec2", ckpt=path, padding="peer")
    assert ours.config.post_extract_proj is False
    wavs, lens = P.batch()
    with torch.no_grad():
        P.compare(ours(wavs, lens), P.s3prl_hidden_states(model, "wav2vec2", wavs, lens, False), lens)


def test_pretraining_entries_dropped_and_dictionary_read(tmp_path):
    from superb.upstream.wav2vec2.loading import read_checkpoint

    model, path, _ = _reference("hubert", "base", tmp_path, "cfg")
    loaded = read_checkpoint(path)
    assert loaded.format == "fairseq" and loaded.config.family == "hubert"
    assert {"label_embs_concat", "mask_emb", "final_proj.weight", "final_proj.bias"} <= set(loaded.dropped)
    _, path2, _ = _reference("data2vec", "base", tmp_path, "cfg")
    assert "_ema" in read_checkpoint(path2).dropped


def test_family_mismatch_is_an_error(tmp_path):
    _, path, _ = _reference("hubert", "base", tmp_path, "cfg")
    with pytest.raises(ValueError, match="holds a hubert model"):
        build_upstream("wav2vec2", ckpt=path)


def test_architecture_options_rejected_with_checkpoint(tmp_path):
    _, path, _ = _reference("wav2vec2", "base", tmp_path, "cfg")
    with pytest.raises(TypeError, match="num_layers"):
        build_upstream("wav2vec2", ckpt=path, num_layers=3)
