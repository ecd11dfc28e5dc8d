"""Test helpers: small random reference models of the wav2vec 2.0 family and writers of their
official checkpoint formats. Test-only; needs s3prl 0.4.18 (--no-deps), omegaconf,
transformers and torchaudio depending on the helper.

Only public APIs of the peers are used: s3prl's fairseq-equivalent model classes
(``s3prl.upstream.{wav2vec2,hubert,data2vec}``), transformers' ``*Model`` classes and
``save_pretrained``, torchaudio's ``import_fairseq_model``. Checkpoint dicts are laid out the way
fairseq / s3prl save them (facts of the formats).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import types
from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

CONV = "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2"
CONV_HF = dict(conv_dim=[32] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2])
LENS = [4000, 3201, 2345]  # 12, 9, 7 frames


def batch(lens=LENS, seed=0):
    g = torch.Generator().manual_seed(seed)
    wavs = torch.zeros(len(lens), max(lens))
    for i, n in enumerate(lens):
        wavs[i, :n] = torch.randn(n, generator=g) * 0.3
    return wavs, torch.tensor(lens)


def perturb_(module: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> None:
    """Randomise every parameter (LayerNorm weights are 1 / 0 at init, which would hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


# ----------------------------------------------------------------------------------------------
# fairseq-equivalent models (s3prl 0.4.18)
# ----------------------------------------------------------------------------------------------


def fairseq_model_cfg(family: str, style: str, **extra) -> Dict:
    """fairseq model configuration fields for a small model; style 'base' or 'large'."""
    cfg = dict(conv_feature_layers=CONV, encoder_layers=2, encoder_embed_dim=48, encoder_ffn_embed_dim=64,
               encoder_attention_heads=4, conv_pos=16, conv_pos_groups=4, encoder_layerdrop=0.0,
               dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    if family == "data2vec":
        cfg.update(extractor_mode="layer_norm", conv_bias=style == "large", layer_norm_first=False,
                   conv_pos=15, pos_conv_depth=5)  # five convolutions of kernel 3
        if style == "large":
            cfg.update(encoder_layers=3, encoder_attention_heads=6)
    elif style == "base":
        cfg.update(extractor_mode="default", conv_bias=False, layer_norm_first=False)
    else:
        cfg.update(extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True, encoder_layers=3,
                   encoder_attention_heads=6, conv_pos=15)
    cfg.update(extra)
    return cfg


FAIRSEQ_NAMES = {"wav2vec2": "wav2vec2", "hubert": "hubert", "data2vec": "data2vec_audio"}
TASK_NAMES = {"wav2vec2": "audio_pretraining", "hubert": "hubert_pretraining", "data2vec": "audio_pretraining"}
SYMBOLS = [["<s>", "<pad>", "</s>", "<unk>", "0", "1", "2"]]


def build_s3prl_model(family: str, cfg: Dict, normalize: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    if family == "wav2vec2":
        from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Config, Wav2Vec2Model

        model = Wav2Vec2Model(Wav2Vec2Config(**cfg))
    elif family == "hubert":
        from s3prl.upstream.hubert.hubert_model import HubertConfig, HubertModel, HubertPretrainingConfig

        model = HubertModel(HubertConfig(label_rate=50, **cfg),
                            HubertPretrainingConfig(label_rate=50, normalize=normalize), SYMBOLS)
    elif family == "data2vec":
        from s3prl.upstream.data2vec.data2vec_model import Data2VecAudioConfig, Data2VecAudioModel

        model = Data2VecAudioModel(Data2VecAudioConfig(**cfg))
    else:
        raise ValueError(family)
    perturb_(model, seed)
    return model.eval()


def s3prl_state(model, family: str) -> Dict[str, torch.Tensor]:
    state = dict(model.state_dict())
    if family == "data2vec":  # what a data2vec pretraining checkpoint carries: the EMA teacher
        state["_ema"] = {k: v.clone() for k, v in state.items() if k.startswith("encoder.")}
    return state


@torch.no_grad()
def s3prl_hidden_states(model, family: str, wavs, wav_lens, normalize: bool) -> List[torch.Tensor]:
    """L+1 hidden states the way s3prl's experts hook them: input of every layer, encoder output."""
    wav_list = [wavs[i, :n] for i, n in enumerate(wav_lens.tolist())]
    if normalize:
        wav_list = [F.layer_norm(w, w.shape) for w in wav_list]
    padded = torch.nn.utils.rnn.pad_sequence(wav_list, batch_first=True)
    mask = torch.arange(padded.shape[1])[None, :] >= wav_lens[:, None]
    states: List[torch.Tensor] = []
    hooks = [layer.register_forward_pre_hook(lambda m, inp: states.append(inp[0].transpose(0, 1)))
             for layer in model.encoder.layers]
    hooks.append(model.encoder.register_forward_hook(lambda m, inp, out: states.append(out[0])))
    try:
        if family == "hubert":
            model.extract_features(padded, padding_mask=mask, mask=False)
        else:
            model.extract_features(padded, mask, mask=False)
    finally:
        for h in hooks:
            h.remove()
    frames = min(s.shape[1] for s in states)  # fairseq pads to an even frame count
    return [s[:, :frames] for s in states]


# ----------------------------------------------------------------------------------------------
# Official formats
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def fake_fairseq_dictionary():
    """A class recorded by pickle as ``fairseq.data.dictionary.Dictionary``; the fake modules
    are removed afterwards, so loading proves fairseq is not needed."""
    names = ["fairseq", "fairseq.data", "fairseq.data.dictionary"]
    saved = {n: sys.modules.get(n) for n in names}

    class Dictionary:
        def __init__(self, symbols):
            self.bos_word, self.unk_word, self.pad_word, self.eos_word = "<s>", "<unk>", "<pad>", "</s>"
            self.symbols = list(symbols)
            self.count = [1] * len(symbols)
            self.indices = {s: i for i, s in enumerate(symbols)}
            self.bos_index, self.pad_index, self.eos_index, self.unk_index = 0, 1, 2, 3
            self.nspecial = 4

    Dictionary.__module__ = "fairseq.data.dictionary"
    Dictionary.__qualname__ = "Dictionary"
    for n in names:
        sys.modules[n] = types.ModuleType(n)
    sys.modules["fairseq.data.dictionary"].Dictionary = Dictionary
    try:
        yield Dictionary
    finally:
        for n in names:
            if saved[n] is None:
                sys.modules.pop(n, None)
            else:  # pragma: no cover
                sys.modules[n] = saved[n]


def write_fairseq(path: Path, family: str, cfg: Dict, state: Dict, normalize: bool, legacy: bool = False,
                  omegaconf_cfg: bool = False) -> Path:
    """A fairseq ``.pt``: ``cfg`` dict (or a DictConfig object) or a legacy ``args`` Namespace."""
    task = {"_name": TASK_NAMES[family], "data": "/data", "normalize": normalize, "sample_rate": 16000}
    if family == "hubert":
        task.update(label_rate=50.0, labels=["km"])
    ckpt = {"model": state, "optimizer_history": [{"criterion_name": "ModelCriterion", "num_updates": 10}],
            "extra_state": {"epoch": 1, "val_loss": 1.5}, "last_optimizer_state": None}
    if legacy:
        ckpt["args"] = argparse.Namespace(arch=FAIRSEQ_NAMES[family], task=task["_name"], normalize=normalize,
                                          sample_rate=16000, **cfg)
    else:
        full = {"_name": None, "common": {"seed": 1, "fp16": False},
                "model": {"_name": FAIRSEQ_NAMES[family], **cfg}, "task": task}
        if omegaconf_cfg:
            from omegaconf import OmegaConf

            full = OmegaConf.create(full)
        ckpt["cfg"] = full
        ckpt["args"] = None
    if family == "hubert":
        with fake_fairseq_dictionary() as Dictionary:
            ckpt["task_state"] = {"dictionaries": [Dictionary(SYMBOLS[0])]}
            torch.save(ckpt, path)
    else:
        torch.save(ckpt, path)
    assert "fairseq" not in sys.modules
    return path


def write_s3prl(path: Path, family: str, cfg: Dict, state: Dict, normalize: bool) -> Path:
    """s3prl's converted layout (what ``s3prl/upstream/<name>/convert.py`` writes)."""
    task = {"_name": TASK_NAMES[family], "data": "/data", "normalize": normalize, "sample_rate": 16000}
    if family == "hubert":
        task.update(label_rate=50.0, labels=["km"])
    model_cfg = {"_name": FAIRSEQ_NAMES[family], **cfg}
    if family == "hubert":
        model_cfg["label_rate"] = 50.0
    out = {"task_cfg": task, "model_cfg": model_cfg, "model_weight": state}
    if family == "hubert":
        out["dictionaries_symbols"] = SYMBOLS
    torch.save(out, path)
    return path


# ----------------------------------------------------------------------------------------------
# transformers
# ----------------------------------------------------------------------------------------------


def hf_model(family: str, style: str, seed: int = 0, **extra):
    import transformers

    torch.manual_seed(seed)
    common = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  num_conv_pos_embedding_groups=4, hidden_dropout=0.0, attention_dropout=0.0,
                  activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0,
                  **CONV_HF)
    if family == "data2vec":
        common.update(num_conv_pos_embeddings=5, conv_pos_kernel_size=3, conv_bias=style == "large")
        if style == "large":
            common.update(num_hidden_layers=3, num_attention_heads=6)
        common.update(extra)
        model = transformers.Data2VecAudioModel(transformers.Data2VecAudioConfig(**common))
    else:
        common.update(num_conv_pos_embeddings=16 if style == "base" else 15)
        if style == "base":
            common.update(feat_extract_norm="group", conv_bias=False, do_stable_layer_norm=False)
        else:
            common.update(feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True,
                          num_hidden_layers=3, num_attention_heads=6)
        common.update(extra)
        if family == "wav2vec2":
            model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**common))
        else:
            model = transformers.HubertModel(transformers.HubertConfig(**common))
    perturb_(model, seed)
    return model.eval()


@torch.no_grad()
def hf_hidden_states(model, wavs, wav_lens) -> List[torch.Tensor]:
    """L+1 states: HF's hidden_states; the last one is ``last_hidden_state`` (after the final
    LayerNorm for stable-layer-norm models, where transformers v5's ``hidden_states[-1]`` is not)."""
    mask = (torch.arange(wavs.shape[1])[None, :] < wav_lens[:, None]).long()
    out = model(wavs, attention_mask=mask, output_hidden_states=True)
    states = list(out.hidden_states)
    states[-1] = out.last_hidden_state
    return states


def write_preprocessor_config(folder: Path, do_normalize: bool) -> None:
    import json

    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": do_normalize, "feature_extractor_type": "Wav2Vec2FeatureExtractor",
        "feature_size": 1, "padding_side": "right", "padding_value": 0.0,
        "return_attention_mask": True, "sampling_rate": 16000}))


def hf_normalize(wavs, wav_lens):
    """Wav2Vec2FeatureExtractor's zero-mean unit-variance normalisation (epsilon 1e-7)."""
    out = torch.zeros_like(wavs)
    for i, n in enumerate(wav_lens.tolist()):
        x = wavs[i, :n]
        out[i, :n] = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
    return out


# ----------------------------------------------------------------------------------------------
# comparison
# ----------------------------------------------------------------------------------------------


def compare(ours, ref_states: List[torch.Tensor], lens, ref_lengths: Optional[torch.Tensor] = None,
            atol: float = 1e-4, layers=None) -> float:
    """Every layer, every valid frame: layer count exact, lengths exact, max abs diff <= atol."""
    assert len(ours.hidden_states) == len(ref_states), (len(ours.hidden_states), len(ref_states))
    if ref_lengths is not None:
        assert ours.lengths.tolist() == ref_lengths.tolist(), (ours.lengths.tolist(), ref_lengths.tolist())
    worst = 0.0
    for li, (a, b) in enumerate(zip(ours.hidden_states, ref_states)):
        if layers is not None and li not in layers:
            continue
        assert a.shape[-1] == b.shape[-1]
        for i, t in enumerate(ours.lengths.tolist()):
            assert b.shape[1] >= t
            diff = float((a[i, :t] - b[i, :t]).abs().max())
            worst = max(worst, diff)
            assert diff <= atol, f"layer {li} utterance {i}: max abs diff {diff:.3g} > {atol}"
    return worst


def assert_matches_peer(ours, peer, family: str, normalize: bool, lens=(9137, 5003, 12011), num_states=None) -> None:
    """Every hidden state of ``ours`` (an upstream) against the s3prl peer model run on each
    utterance alone: on a padded batch (garbage in the padding) and on each utterance alone,
    max abs diff <= 1e-4 (:func:`compare`)."""
    from golden_utils import golden_batch

    wavs, wav_lens, raw = golden_batch(lens)
    with torch.no_grad():
        out = ours(wavs, wav_lens)
    alone = [s3prl_hidden_states(peer, family, w[None], torch.tensor([len(w)]), normalize) for w in raw]
    ref = [torch.nn.utils.rnn.pad_sequence([a[layer][0] for a in alone], batch_first=True)
           for layer in range(len(alone[0]))]
    if num_states is not None:
        assert len(out.hidden_states) == num_states
    compare(out, ref, wav_lens)
    for i, w in enumerate(raw):
        with torch.no_grad():
            single = ours(w[None], torch.tensor([len(w)]))
        compare(single, alone[i], torch.tensor([len(w)]))
