"""Hugging Face folders (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``) ->
:class:`Wav2Vec2Config` + weights, for ``Wav2Vec2Model``, ``HubertModel`` and
``Data2VecAudioModel`` (and their ``*For*`` wrappers, whose base-model prefix is stripped).

Configuration field names and weight names are facts of the transformers checkpoint format;
transformers is not imported. :data:`HF_KEY_MAP` renames weights, :data:`HF_DROP` lists entries
that are not part of the encoder (pretraining heads and fine-tuning heads).

Waveform normalisation: ``do_normalize`` of ``preprocessor_config.json`` when the folder has
one (with the feature extractor's epsilon, 1e-7); otherwise the fairseq convention of the
architecture - on for layer-norm CNNs (Large / data2vec), off for group-norm CNNs (Base).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import torch

from ..checkpoint_io import load_safetensors, safe_load
from .model import Wav2Vec2Config

#: (HF name regex, our name template); the first full match wins
HF_KEY_MAP: List[Tuple[str, str]] = [
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)", r"feature_extractor.conv_layers.\1.norm.\2"),
    (r"feature_projection\.layer_norm\.(weight|bias)", r"feature_projection.layer_norm.\1"),
    (r"feature_projection\.projection\.(weight|bias)", r"feature_projection.projection.\1"),
    (r"encoder\.pos_conv_embed\.conv\.(weight_g|weight_v|bias)", r"encoder.pos_conv.\1"),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", r"encoder.pos_conv.weight_g"),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", r"encoder.pos_conv.weight_v"),
    (r"encoder\.pos_conv_embed\.layers\.(\d+)\.conv\.(weight|bias)", r"encoder.pos_conv.layers.\1.conv.\2"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.attention\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
     r"encoder.layers.\1.attention.\2.\3"),
    (r"encoder\.layers\.(\d+)\.layer_norm\.(weight|bias)", r"encoder.layers.\1.attention_layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.(weight|bias)", r"encoder.layers.\1.feed_forward.fc1.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.output_dense\.(weight|bias)", r"encoder.layers.\1.feed_forward.fc2.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
]

#: entries outside the encoder: pretraining (masking, quantiser) and task heads
HF_DROP: Tuple[str, ...] = (
    r"masked_spec_embed$", r"quantizer\.", r"project_q\.", r"project_hid\.", r"lm_head\.",
    r"projector\.", r"classifier\.", r"layer_weights$", r"tdnn\.", r"feature_extractor\.weight$",
)

#: model_type -> (family, base-model prefix used by the *For* wrappers)
HF_MODEL_TYPES = {
    "wav2vec2": ("wav2vec2", "wav2vec2."),
    "hubert": ("hubert", "hubert."),
    "data2vec-audio": ("data2vec", "data2vec_audio."),
}

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def read_hf_config(folder: Path) -> Dict[str, Any]:
    path = folder / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the model configuration: {exc}") from exc


def hf_normalize(folder: Path, config: Mapping[str, Any]) -> Tuple[bool, str]:
    """``(normalize, where the setting came from)``."""
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        try:
            value = json.loads(pre.read_text()).get("do_normalize")
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{pre}: cannot read the feature-extractor configuration: {exc}") from exc
        if value is not None:
            return bool(value), f"{pre.name}: do_normalize={bool(value)}"
    layer = _feat_extract_norm(config) == "layer"
    return layer, f"default for a {'layer' if layer else 'group'}-norm CNN (no preprocessor_config.json)"


def _feat_extract_norm(config: Mapping[str, Any]) -> str:
    if config.get("model_type") == "data2vec-audio":
        return "layer"
    return config.get("feat_extract_norm", "group")


def config_from_hf(config: Mapping[str, Any], source: str, normalize: bool) -> Wav2Vec2Config:
    model_type = config.get("model_type")
    if model_type not in HF_MODEL_TYPES:
        raise ValueError(
            f"{source}: config.json has model_type {model_type!r}; supported: {', '.join(HF_MODEL_TYPES)}"
        )
    family = HF_MODEL_TYPES[model_type][0]
    problems = []
    for key in ("hidden_act", "feat_extract_activation"):
        if config.get(key, "gelu") != "gelu":
            problems.append(f"{key}={config.get(key)!r}")
    if config.get("add_adapter"):
        problems.append("add_adapter=True")
    if config.get("conv_pos_batch_norm"):
        problems.append("conv_pos_batch_norm=True")
    if config.get("position_embeddings_type") not in (None, "conv"):
        problems.append(f"position_embeddings_type={config.get('position_embeddings_type')!r}")
    norm = _feat_extract_norm(config)
    if norm not in ("group", "layer"):
        problems.append(f"feat_extract_norm={norm!r}")
    if problems:
        raise ValueError(f"{source}: unsupported model configuration: {', '.join(problems)}")
    dims = config.get("conv_dim", (512,) * 7)
    kernels = config.get("conv_kernel", (10, 3, 3, 3, 3, 2, 2))
    strides = config.get("conv_stride", (5, 2, 2, 2, 2, 2, 2))
    if not (len(dims) == len(kernels) == len(strides)):
        raise ValueError(f"{source}: conv_dim, conv_kernel and conv_stride have different lengths")
    hidden = int(config.get("hidden_size", 768))
    if family == "data2vec":
        depth = int(config.get("num_conv_pos_embeddings", 5))
        kernel = int(config.get("conv_pos_kernel_size", 19))
        pos_kernel, pos_depth = kernel, depth
    else:
        pos_kernel, pos_depth = int(config.get("num_conv_pos_embeddings", 128)), 1
    return Wav2Vec2Config(
        family=family,
        conv_layers=tuple((int(d), int(k), int(s)) for d, k, s in zip(dims, kernels, strides)),
        extractor_mode="group_norm" if norm == "group" else "layer_norm",
        conv_bias=bool(config.get("conv_bias", False)),
        hidden_size=hidden,
        num_layers=int(config.get("num_hidden_layers", 12)),
        num_heads=int(config.get("num_attention_heads", 12)),
        ffn_dim=int(config.get("intermediate_size", 3072)),
        layer_norm_first=bool(config.get("do_stable_layer_norm", False)) and family != "data2vec",
        pos_conv_kernel=pos_kernel,
        pos_conv_groups=int(config.get("num_conv_pos_embedding_groups", 16)),
        pos_conv_depth=pos_depth,
        layer_norm_eps=float(config.get("layer_norm_eps", 1e-5)),
        post_extract_proj=True,
        feature_layer_norm=bool(config.get("feat_proj_layer_norm", True)) if family == "hubert" else True,
        normalize=normalize,
        normalize_eps=1e-7,
    )


def read_hf_weights(folder: Path) -> Tuple[Dict[str, torch.Tensor], Path]:
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            state = load_safetensors(path) if name.endswith(".safetensors") else safe_load(path)
            if not isinstance(state, Mapping):
                raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
            return dict(state), path
    sharded = sorted(folder.glob("*.safetensors.index.json")) + sorted(folder.glob("*.bin.index.json"))
    if sharded:
        index = sharded[0]
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"{index}: cannot read the shard index: {exc}") from exc
        state: Dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            path = folder / shard
            part = load_safetensors(path) if shard.endswith(".safetensors") else safe_load(path)
            state.update(part)
        return state, index
    raise FileNotFoundError(
        f"{folder}: Hugging Face folder without weights: expected one of {', '.join(WEIGHT_FILES)}"
    )


def strip_prefix(state: Mapping[str, Any], prefix: str) -> Dict[str, Any]:
    """Remove the base-model prefix of ``*For*`` wrappers (``wav2vec2.``, ``hubert.``, ...)."""
    if any(k.startswith(prefix) for k in state):
        return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}
    return dict(state)


def hf_prefix(config: Mapping[str, Any]) -> str:
    return HF_MODEL_TYPES.get(config.get("model_type"), ("", ""))[1]
