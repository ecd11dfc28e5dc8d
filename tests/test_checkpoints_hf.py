"""Hugging Face folders (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) of
Wav2Vec2Model / HubertModel / Data2VecAudioModel, checked against transformers and torchaudio.

Needs (test-only, installed by .ci/run): transformers (5.x), torchaudio
(``import_huggingface_model``). safetensors is not needed to load: superb reads the format itself.

Each case builds a small random transformers model, saves it with ``save_pretrained`` (and, for
the ``.bin`` layout, as a ``torch.save``'d state dict ``pytorch_model.bin``), loads the folder with
``build_upstream(name, ckpt=folder)`` and compares every hidden state on a padded batch of
different lengths (layer count and lengths exact, max abs diff <= 1e-4), with
``padding="peer"`` (transformers' padded behaviour); the default ``padding="exact"`` is compared
with transformers running every utterance alone.
"""
import warnings

import pytest
import torch

import w2v2_peers as P
from superb.upstream import build_upstream

warnings.filterwarnings("ignore", category=FutureWarning)

CASES = [(f, s) for f in ("wav2vec2", "hubert", "data2vec") for s in ("base", "large")]


def _save(model, folder, layout):
    model.save_pretrained(folder)
    if layout == "bin":  # the legacy layout: a pickled state dict
        (folder / "model.safetensors").unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


@pytest.mark.parametrize("layout", ["safetensors", "bin"])
@pytest.mark.parametrize("family,style", CASES)
def test_hf_matches_transformers(family, style, layout, tmp_path):
    hf = P.hf_model(family, style)
    folder = _save(hf, tmp_path / "model", layout)
    assert (folder / ("model.safetensors" if layout == "safetensors" else "pytorch_model.bin")).is_file()
    P.write_preprocessor_config(folder, do_normalize=False)
    ours = build_upstream(family + ("_large" if style == "large" else ""), ckpt=folder, padding="peer")
    assert ours.source_format == "huggingface"
    assert ours.config.normalize is False
    wavs, lens = P.batch()
    with torch.no_grad():
        out = ours(wavs, lens)
    expected = hf._get_feat_extract_output_lengths(lens)
    P.compare(out, P.hf_hidden_states(hf, wavs, lens), lens, expected)


@pytest.mark.parametrize("family,style", CASES)
def test_hf_do_normalize_honoured(family, style, tmp_path):
    hf = P.hf_model(family, style, seed=1)
    folder = _save(hf, tmp_path / "model", "safetensors")
    P.write_preprocessor_config(folder, do_normalize=True)
    ours = build_upstream(family, ckpt=folder, padding="peer")
    assert ours.config.normalize is True and ours.config.normalize_eps == 1e-7
    wavs, lens = P.batch()
    wavs = wavs * 3 + 0.5 * (wavs != 0)
    with torch.no_grad():
        out = ours(wavs, lens)
    P.compare(out, P.hf_hidden_states(hf, P.hf_normalize(wavs, lens), lens), lens)


@pytest.mark.parametrize("family,style", CASES)
def test_hf_padded_batch_equals_transformers_alone(family, style, tmp_path):
    """Default padding="exact": every utterance of a padded batch gets what transformers
    computes for it alone (transformers' own padded batch differs for group-norm CNNs and
    data2vec)."""
    hf = P.hf_model(family, style, seed=3)
    folder = _save(hf, tmp_path / "model", "safetensors")
    P.write_preprocessor_config(folder, do_normalize=False)
    ours = build_upstream(family + ("_large" if style == "large" else ""), ckpt=folder)
    assert ours.config.padding == "exact"
    wavs, lens = P.batch()
    with torch.no_grad():
        out = ours(wavs, lens)
    alone = [P.hf_hidden_states(hf, wavs[i:i + 1, :n], lens[i:i + 1]) for i, n in enumerate(lens.tolist())]
    ref = [torch.nn.utils.rnn.pad_sequence([a[layer][0] for a in alone], batch_first=True)
           for layer in range(len(alone[0]))]
    P.compare(out, ref, lens, hf._get_feat_extract_output_lengths(lens))


def test_hf_default_normalisation_without_preprocessor_config(tmp_path):
    group = _save(P.hf_model("wav2vec2", "base"), tmp_path / "g", "safetensors")
    layer = _save(P.hf_model("wav2vec2", "large"), tmp_path / "l", "safetensors")
    d2v = _save(P.hf_model("data2vec", "base"), tmp_path / "d", "safetensors")
    assert build_upstream("wav2vec2", ckpt=group).config.normalize is False
    assert build_upstream("wav2vec2", ckpt=layer).config.normalize is True
    assert build_upstream("data2vec", ckpt=d2v).config.normalize is True
    assert build_upstream("wav2vec2", ckpt=layer, normalize=False).config.normalize is False


@pytest.mark.parametrize("family,style", [(f, s) for f in ("wav2vec2", "hubert") for s in ("base", "large")])
def test_hf_matches_torchaudio(family, style, tmp_path):
    from torchaudio.models.wav2vec2.utils import import_huggingface_model

    hf = P.hf_model(family, style, seed=2)
    folder = _save(hf, tmp_path / "model", "safetensors")
    P.write_preprocessor_config(folder, do_normalize=False)
    ta = import_huggingface_model(hf).eval()
    ours = build_upstream(family, ckpt=folder, padding="peer")
    wavs, lens = P.batch()
    first = []
    hook = ta.encoder.transformer.layers[0].register_forward_pre_hook(lambda m, inp: first.append(inp[0]))
    with torch.no_grad():
        feats, ta_lens = ta.extract_features(wavs, lens)
        hook.remove()
        final, _ = ta(wavs, lens)
        out = ours(wavs, lens)
    P.compare(out, [first[0]] + feats[:-1] + [final], lens, ta_lens)


def test_hf_hubert_without_feature_layer_norm(tmp_path):
    hf = P.hf_model("hubert", "base", feat_proj_layer_norm=False)
    folder = _save(hf, tmp_path / "model", "safetensors")
    P.write_preprocessor_config(folder, do_normalize=False)
    ours = build_upstream("hubert", ckpt=folder, padding="peer")
    assert ours.config.feature_layer_norm is False
    wavs, lens = P.batch()
    with torch.no_grad():
        P.compare(ours(wavs, lens), P.hf_hidden_states(hf, wavs, lens), lens)


def test_hf_pretraining_wrapper_prefix_and_heads(tmp_path):
    """Wav2Vec2ForPreTraining: base-model prefix stripped, quantizer / project_* dropped."""
    import transformers

    base = P.hf_model("wav2vec2", "base")
    cfg = base.config
    cfg.codevector_dim, cfg.proj_codevector_dim, cfg.num_codevectors_per_group = 16, 16, 8
    pre = transformers.Wav2Vec2ForPreTraining(cfg).eval()
    pre.wav2vec2.load_state_dict(base.state_dict())
    folder = tmp_path / "pre"
    pre.save_pretrained(folder)
    P.write_preprocessor_config(folder, do_normalize=False)
    from superb.upstream.wav2vec2.loading import read_checkpoint

    loaded = read_checkpoint(folder)
    assert any(k.startswith("quantizer.") for k in loaded.dropped)
    assert any(k.startswith("project_q.") for k in loaded.dropped)
    ours = build_upstream("wav2vec2", ckpt=folder, padding="peer")
    wavs, lens = P.batch()
    with torch.no_grad():
        P.compare(ours(wavs, lens), P.hf_hidden_states(base, wavs, lens), lens)
