"""s3prl native Mockingjay / TERA checkpoints -> :class:`~superb.upstream.mockingjay.model.MockingjayUpstream`.

s3prl's ``.ckpt``: ``{'Transformer': state_dict, 'Upstream_Config' (or legacy 'Config'), ...}``
(facts of s3prl's format). The weight renaming is data: :data:`S3PRL_KEY_MAP`, and
:data:`S3PRL_ALIASES` lists the pre-LN duplicates that are checked and dropped.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from ..base import SAMPLE_RATE
from ..checkpoint_io import safe_load
from ..options import as_bool, config_from_options, to_plain
from ..state_dict import load_strict, map_keys
from .model import MockingjayConfig, MockingjayUpstream

#: s3prl weight name -> ours (applied after the gamma/beta rename)
S3PRL_KEY_MAP: Tuple[Tuple[str, str], ...] = (
    (r"input_representations\.spec_transform\.(weight|bias)", r"input_proj.\1"),
    (r"input_representations\.LayerNorm\.(weight|bias)", r"input_norm.\1"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.query\.(weight|bias)", r"layers.\1.q.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.key\.(weight|bias)", r"layers.\1.k.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.value\.(weight|bias)", r"layers.\1.v.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"layers.\1.attn_out.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(weight|bias)", r"layers.\1.attn_norm.\2"),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)", r"layers.\1.ffn_in.\2"),
    (r"encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"layers.\1.ffn_out.\2"),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.(weight|bias)", r"layers.\1.ffn_norm.\2"),
    (r"encoder\.LayerNorm\.(\d+)\.(weight|bias)", r"layer_norms.\1.\2"),
)

#: pre-LN aliases in s3prl state dicts -> the name of the tensor they duplicate
S3PRL_ALIASES: Tuple[Tuple[str, str], ...] = (
    (r"encoder\.layer\.(\d+)\.attention\.LayerNorm\.(weight|bias)", r"encoder.layer.\1.attention.output.LayerNorm.\2"),
    (r"encoder\.layer\.(\d+)\.LayerNorm\.(weight|bias)", r"encoder.layer.\1.output.LayerNorm.\2"),
)

def _upstream_config(obj: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    for key in ("Upstream_Config", "Config"):
        cfg = to_plain(obj.get(key)) if key in obj else None
        if isinstance(cfg, dict) and "transformer" in cfg:
            return cfg
    return None


def detect(obj: Any) -> bool:
    """True for an s3prl native Mockingjay / TERA checkpoint."""
    return isinstance(obj, Mapping) and "Transformer" in obj and _upstream_config(obj) is not None


def config_from_s3prl(cfg: Mapping[str, Any], where: str) -> MockingjayConfig:
    """Translate s3prl's ``{'transformer', 'task', 'audio'}`` config (defaults as s3prl's)."""
    tr = cfg.get("transformer")
    if not isinstance(tr, Mapping):
        raise ValueError(f"{where}: 'transformer' section is missing or not a mapping")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act"):
        if key not in tr:
            raise ValueError(f"{where}: transformer.{key} is missing")
    task = cfg.get("task") or {}
    if "sequence_length" not in task:
        raise ValueError(f"{where}: task.sequence_length is missing")
    out = MockingjayConfig(
        hidden_size=int(tr["hidden_size"]),
        num_layers=int(tr["num_hidden_layers"]),
        num_heads=int(tr["num_attention_heads"]),
        intermediate_size=int(tr["intermediate_size"]),
        activation=str(tr["hidden_act"]),
        layer_norm_eps=float(tr.get("layer_norm_eps", 1e-12)),
        pre_layer_norm=as_bool(tr.get("pre_layer_norm", False), "transformer.pre_layer_norm", where),
        share_layer=as_bool(tr.get("share_layer", False), "transformer.share_layer", where),
        sequence_length=int(task["sequence_length"]),
    )
    audio = cfg.get("audio")
    if not isinstance(audio, Mapping):
        raise ValueError(
            f"{where}: no 'audio' section: this checkpoint was trained on precomputed features and has no "
            "built-in front end, so it cannot run on waveforms (s3prl's expert refuses it too)")
    if "kaldi" in audio:
        kal = audio["kaldi"] or {}
        feat_type = str(kal.get("feat_type", "fbank"))
        if feat_type not in kal:
            raise ValueError(f"{where}: audio.kaldi.{feat_type} (the arguments of the Kaldi {feat_type}) is missing")
        delta = audio.get("delta") or {}
        unknown = sorted(set(delta) - {"order", "win_length", "mode"})
        if unknown:
            raise ValueError(f"{where}: audio.delta has unknown key(s) {unknown}")
        if delta.get("mode", "replicate") != "replicate":
            raise ValueError(f"{where}: audio.delta.mode {delta['mode']!r} is not supported (only 'replicate')")
        cmvn = audio.get("cmvn")
        if not isinstance(cmvn, Mapping) or "use_cmvn" not in cmvn:
            raise ValueError(f"{where}: audio.cmvn.use_cmvn is missing")
        return dataclasses.replace(
            out, front_end="kaldi", kaldi_feat_type=feat_type, kaldi_kwargs=dict(kal[feat_type] or {}),
            kaldi_delta_order=int(delta.get("order", 2)), kaldi_delta_win_length=int(delta.get("win_length", 5)),
            kaldi_cmvn=as_bool(cmvn["use_cmvn"], "audio.cmvn.use_cmvn", where))
    if "target_level" not in audio:
        raise ValueError(f"{where}: audio.target_level is missing")
    if int(audio.get("sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
        raise ValueError(f"{where}: audio.sample_rate {audio['sample_rate']} is not {SAMPLE_RATE}")
    inp = audio.get("input")
    if not isinstance(inp, Mapping) or "feat_type" not in inp:
        raise ValueError(f"{where}: audio.input.feat_type is missing")
    if int(inp.get("channel", 0)) != 0:
        raise ValueError(f"{where}: audio.input.channel {inp['channel']} is not supported (mono input)")
    return dataclasses.replace(
        out, front_end="online", feat_type=str(inp["feat_type"]), target_level=float(audio["target_level"]),
        win_ms=float(audio.get("win_ms", 25)), hop_ms=float(audio.get("hop_ms", 10)),
        n_freq=int(audio.get("n_freq", 201)), n_mels=int(audio.get("n_mels", 40)),
        log=as_bool(inp.get("log", False), "audio.input.log", where), delta=int(inp.get("delta", 0)),
        cmvn=as_bool(inp.get("cmvn", False), "audio.input.cmvn", where))


def convert_s3prl_state(state: Mapping[str, torch.Tensor], path) -> Dict[str, torch.Tensor]:
    """s3prl ``Transformer`` state dict -> ours (gamma/beta rename, aliases checked and dropped)."""
    renamed: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key.replace("gamma", "weight") if "gamma" in key else key
        new = new.replace("beta", "bias") if "beta" in new else new
        renamed[new] = value
    aliases = [(re.compile(p), r) for p, r in S3PRL_ALIASES]
    out: Dict[str, torch.Tensor] = {}
    for key, value in renamed.items():
        original = next((pat.sub(r, key) for pat, r in aliases if pat.fullmatch(key)), None)
        if original is not None:
            if original in renamed and not torch.equal(renamed[original], value):
                raise ValueError(f"{path}: {key} should duplicate {original} (pre-LN alias) but differs")
            if original in renamed:
                continue
            key = original  # only the alias was stored: use it as the original
        out[key] = value
    return map_keys(out, S3PRL_KEY_MAP)


def load_s3prl_native(path: Path, obj: Mapping[str, Any], **options) -> MockingjayUpstream:
    where = f"{path}"
    cfg_dict = _upstream_config(obj)
    if cfg_dict is None:
        raise ValueError(f"{path}: neither 'Upstream_Config' nor 'Config' holds a 'transformer' section")
    cfg = config_from_s3prl(cfg_dict, where)
    cfg = config_from_options(MockingjayConfig, cfg, options, f"{path}")
    model = MockingjayUpstream(cfg, where)
    state = obj["Transformer"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: 'Transformer' is not a state dict ({type(state).__name__})")
    load_strict(model, convert_s3prl_state(state, path), path)
    model.eval()
    return model


def describe(obj: Any) -> Dict[str, Any]:
    """Summary of a native checkpoint for ``superb inspect``."""
    cfg_dict = _upstream_config(obj) or {}
    cfg = config_from_s3prl(cfg_dict, "checkpoint")
    task = cfg_dict.get("task") or {}
    tera = any(str(k).startswith(("mask_freq", "noise_")) for k in task)  # TERA's alterations
    return {
        "family": "mockingjay",
        "format": "s3prl native Mockingjay/TERA (.ckpt)",
        "upstreams": ["tera", "mockingjay"] if tera else ["mockingjay", "tera"],
        "config_entry": "Upstream_Config" if "transformer" in (to_plain(obj.get("Upstream_Config")) or {}) else "Config",
        "num_hidden_states": cfg.num_layers + 1,
        "hidden_size": cfg.hidden_size,
        "pre_layer_norm": cfg.pre_layer_norm,
        "front_end": cfg.front_end if cfg.front_end == "kaldi" else f"online {cfg.feat_type}",
        "sequence_length": cfg.sequence_length,
        "ignored_entries": sorted(k for k in obj if k not in ("Transformer", "Upstream_Config", "Config")),
    }


FORMATS = ("s3prl native .ckpt {'Transformer', 'Upstream_Config' or legacy 'Config', ...}",)


def load(path: Path, variant=None, **options) -> MockingjayUpstream:
    """Load a native file (as ``mockingjay`` or ``tera``: the file decides the architecture)."""
    obj = safe_load(path)
    if not detect(obj):
        keys = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(
            f"{path}: not an s3prl Mockingjay/TERA checkpoint (expected 'Transformer' and "
            f"'Upstream_Config' or 'Config' with a 'transformer' section; found {keys})")
    return load_s3prl_native(path, obj, **options)
