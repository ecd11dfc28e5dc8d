"""Mockingjay / TERA: every hidden state against s3prl 0.4.18's own expert.

Reference weights are random, written as s3prl's native ``.ckpt`` (``Transformer``, ``SpecHead``,
``Upstream_Config`` or legacy ``Config``, plus runner entries ``Args`` / ``Optimizer`` / ``Step``)
and loaded through ``build_upstream``.
"""
from __future__ import annotations

import argparse
import copy

import pytest
import torch

from golden_utils import assert_states_close, golden_batch, per_utterance, randomize_
from superb.upstream import build_upstream
from superb.upstream.checkpoint_io import CheckpointKeyError
from superb.upstream.inspection import inspect_checkpoint

s3prl_model = pytest.importorskip("s3prl.upstream.mockingjay.model")
s3prl_expert = pytest.importorskip("s3prl.upstream.mockingjay.expert")

TRANSFORMER = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 48,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02, "layer_norm_eps": 1e-12, "share_layer": False, "pre_layer_norm": False,
}
ONLINE_AUDIO = {
    "target_level": -25, "win_ms": 25, "hop_ms": 10, "n_freq": 201, "n_mels": 80, "n_mfcc": 13,
    "input": {"feat_type": "mel", "channel": 0, "log": True, "delta": 0, "cmvn": True},
    "target": {"feat_type": "linear", "channel": 1, "log": True, "delta": 0, "cmvn": True},
}
KALDI_AUDIO = {
    "kaldi": {"feat_type": "fbank", "fbank": {"frame_length": 25.0, "frame_shift": 10.0,
                                              "num_mel_bins": 40, "use_log_fbank": True}},
    "delta": {"order": 2, "win_length": 5},
    "cmvn": {"use_cmvn": True},
}


def write_native(path, transformer, audio, sequence_length=1500, legacy=False, gamma_beta=False, seed=0):
    cfg = {"transformer": dict(transformer), "task": {"sequence_length": sequence_length, "loss": "L1"},
           "audio": copy.deepcopy(audio)}
    tcfg = s3prl_model.TransformerConfig(cfg["transformer"])
    if "kaldi" in audio:
        in_dim = audio["kaldi"]["fbank"]["num_mel_bins"] * (1 + audio["delta"]["order"])
    else:
        in_dim = audio["n_mels"] * (1 + audio["input"]["delta"])
    model = randomize_(s3prl_model.TransformerModel(tcfg, in_dim), seed)
    head = randomize_(s3prl_model.TransformerSpecPredictionHead(tcfg, 201), seed + 1)
    state = model.state_dict()
    if gamma_beta:
        state = type(state)((k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"), v)
                            for k, v in state.items())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ckpt = {
        "Transformer": state,
        "SpecHead": head.state_dict(),
        "Optimizer": opt.state_dict(),
        "Global_step": 1000,
        "Args": argparse.Namespace(config="config.yaml", seed=1337, upstream="transformer", multi_gpu=False),
    }
    if legacy:
        ckpt["Config"] = cfg
    else:
        ckpt["Upstream_Config"] = cfg
        ckpt["Config"] = {"runner": {"total_steps": 1000, "gradient_clipping": 1.0}, "optimizer": {"lr": 2e-4}}
    torch.save(ckpt, path)
    return path


def reference(path):
    expert = s3prl_expert.UpstreamExpert(str(path))
    expert.eval()

    def run(wavs):
        with torch.no_grad():
            return list(expert(wavs)["hidden_states"])

    return run


def check(name, path, lengths=None, batched_reference=False):
    wavs, wav_lens, raw = golden_batch(*( [lengths] if lengths else []))
    model = build_upstream(name, path)
    with torch.no_grad():
        out = model(wavs, wav_lens)
    ref = reference(path)
    expected = per_utterance(ref, raw)
    ref_lens = [int(ref([w])[0].shape[1]) for w in raw]
    assert out.lengths.tolist() == ref_lens
    assert model.num_layers == len(out.hidden_states) == TRANSFORMER["num_hidden_layers"] + 1
    assert_states_close(out.hidden_states, expected, out.lengths, ref_lens, what=f"{name} per-utterance")
    if batched_reference:
        batched = ref(raw)
        assert_states_close(out.hidden_states, batched, out.lengths, what=f"{name} batched")
    return model, out


def test_mockingjay_online_post_ln(tmp_path):
    path = write_native(tmp_path / "states-1000.ckpt", TRANSFORMER, ONLINE_AUDIO)
    model, out = check("mockingjay", path)
    assert model.downsample_rate == 160
    # frames of a centred STFT: n // 160 + 1
    assert out.lengths.tolist() == [n // 160 + 1 for n in (9137, 5003, 12011)]
    info = inspect_checkpoint(path)
    assert (info["family"], info["upstream"], info["num_layers"]) == ("mockingjay", "mockingjay", 3)


def test_tera_kaldi_fbank_pre_ln_legacy_config_gamma_beta(tmp_path):
    tr = dict(TRANSFORMER, pre_layer_norm=True, hidden_act="relu")
    path = write_native(tmp_path / "tera.ckpt", tr, KALDI_AUDIO, legacy=True, gamma_beta=True, seed=3)
    _, out = check("tera", path, batched_reference=True)
    # Kaldi snip_edges frames: 1 + (n - 400) // 160
    assert out.lengths.tolist() == [1 + (n - 400) // 160 for n in (9137, 5003, 12011)]


def test_long_inputs_are_chunked_like_s3prl(tmp_path):
    # sequence_length 20 frames: 58, 32 and 76 frames are cut into 3, 2 and 4 chunks
    tr = dict(TRANSFORMER, pre_layer_norm=True, hidden_act="swish")
    path = write_native(tmp_path / "tera_chunk.ckpt", tr, ONLINE_AUDIO, sequence_length=20, seed=5)
    check("tera", path)


def test_shared_layer_and_options(tmp_path):
    tr = dict(TRANSFORMER, share_layer=True)
    path = write_native(tmp_path / "aalbert.ckpt", tr, ONLINE_AUDIO, seed=7)
    check("tera", path, lengths=(4000, 7777))
    with pytest.raises(ValueError, match="unknown upstream option"):
        build_upstream("tera", path, no_such_option=1)


def test_bad_checkpoints(tmp_path):
    path = write_native(tmp_path / "ok.ckpt", TRANSFORMER, ONLINE_AUDIO)
    obj = torch.load(path, weights_only=False)
    obj["Transformer"].pop("encoder.layer.1.output.dense.bias")
    obj["Transformer"]["encoder.layer.1.extra.weight"] = torch.zeros(2)
    torch.save(obj, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointKeyError, match=r"encoder\.layer\.1\.extra\.weight|layers\.1\.ffn_out\.bias"):
        build_upstream("tera", tmp_path / "bad.ckpt")
    obj = torch.load(path, weights_only=False)
    del obj["Upstream_Config"]["audio"]
    torch.save(obj, tmp_path / "noaudio.ckpt")
    with pytest.raises(ValueError, match="no 'audio' section"):
        build_upstream("tera", tmp_path / "noaudio.ckpt")
    torch.save({"model": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="not an s3prl Mockingjay/TERA checkpoint"):
        build_upstream("mockingjay", tmp_path / "other.ckpt")


def test_old_runner_objects_load_as_inert_stand_ins(tmp_path, monkeypatch):
    """Old s3prl runner files pickle objects of the top-level module ``optimizers``; they load as
    inert stand-ins and are never used."""
    import sys
    import types

    fake = types.ModuleType("optimizers")

    class BertAdam:  # stands for the pickled runner class
        def __init__(self):
            self.lr, self.warmup = 2e-4, 0.07

    BertAdam.__module__ = "optimizers"
    BertAdam.__qualname__ = "BertAdam"
    fake.BertAdam = BertAdam
    monkeypatch.setitem(sys.modules, "optimizers", fake)
    path = write_native(tmp_path / "old.ckpt", TRANSFORMER, ONLINE_AUDIO, legacy=True)
    obj = torch.load(path, weights_only=False)
    obj["Optimizer"] = BertAdam()
    torch.save(obj, path)
    monkeypatch.delitem(sys.modules, "optimizers")
    model = build_upstream("mockingjay", path)
    assert model.num_layers == 3


def test_random_init_defaults():
    m = build_upstream("tera", random_init=True, hidden_size=24, num_heads=2, intermediate_size=32)
    wavs, wav_lens, _ = golden_batch((3000, 1700))
    out = m(wavs, wav_lens)
    assert len(out.hidden_states) == 4 and out.hidden_states[0].shape[-1] == 24
    assert out.lengths.tolist() == [3000 // 160 + 1, 1700 // 160 + 1]
    assert build_upstream("mockingjay", random_init=True, hidden_size=16, num_heads=2,
                          intermediate_size=16).num_layers == 13
