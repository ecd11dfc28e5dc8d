"""s3prl converted checkpoints (``task_cfg`` / ``model_cfg`` / ``model_weight``
[+ ``dictionaries_symbols``]) of wav2vec 2.0 / HuBERT / data2vec, checked against s3prl.

Needs (test-only, installed by .ci/run): s3prl==0.4.18 (--no-deps) and omegaconf.

The reference model is built by s3prl's own ``load_converted_model`` from the very file we
wrote (so the file is a genuine s3prl converted checkpoint); every hidden state is compared on a
padded batch of different lengths (layer count and lengths exact, max abs diff <= 1e-4), with
``padding="peer"`` (s3prl's padded behaviour).
"""
import importlib
import warnings

import pytest
import torch

import w2v2_peers as P
from superb.upstream import build_upstream, conv_output_lengths

warnings.filterwarnings("ignore", category=FutureWarning)

CONV = [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2
CASES = [(f, s) for f in ("wav2vec2", "hubert", "data2vec") for s in ("base", "large")]


def _write(family, style, tmp_path):
    normalize = style == "large"
    cfg = P.fairseq_model_cfg(family, style)
    model = P.build_s3prl_model(family, cfg, normalize=normalize)
    path = P.write_s3prl(tmp_path / f"{family}_{style}_s3prl.pt", family, cfg, P.s3prl_state(model, family), normalize)
    return path, normalize


@pytest.mark.parametrize("family,style", CASES)
def test_s3prl_converted_matches_s3prl(family, style, tmp_path):
    path, normalize = _write(family, style, tmp_path)
    convert = importlib.import_module(f"s3prl.upstream.{family}.convert")
    ref_model, task_cfg = convert.load_converted_model(str(path))
    ref_model.eval()
    assert bool(task_cfg.normalize) is normalize

    options = {"padding": "peer"}
    if family == "hubert":
        options["padding_mask"] = "fairseq_hubert"
    ours = build_upstream(family + ("_large" if style == "large" else ""), ckpt=path, **options)
    assert ours.source_format == "s3prl"
    assert ours.config.normalize is normalize
    wavs, lens = P.batch()
    with torch.no_grad():
        out = ours(wavs, lens)
    ref = P.s3prl_hidden_states(ref_model, family, wavs, lens, normalize)
    P.compare(out, ref, lens, conv_output_lengths(lens, CONV))


def test_s3prl_hubert_default_padding_rule_matches_single_utterances(tmp_path):
    path, normalize = _write("hubert", "large", tmp_path)
    from s3prl.upstream.hubert.convert import load_converted_model

    ref_model, _ = load_converted_model(str(path))
    ref_model.eval()
    ours = build_upstream("hubert_large", ckpt=path)
    wavs, lens = P.batch()
    with torch.no_grad():
        batched = ours(wavs, lens)
    for i, n in enumerate(lens.tolist()):
        w, l = wavs[i:i + 1, :n], lens[i:i + 1]
        ref = P.s3prl_hidden_states(ref_model, "hubert", w, l, normalize)
        for a, b in zip(batched.hidden_states, ref):  # batched (default rule) == fairseq alone
            t = int(batched.lengths[i])
            assert (a[i, :t] - b[0, :t]).abs().max() <= 1e-4
