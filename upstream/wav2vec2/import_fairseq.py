"""fairseq checkpoints (and s3prl's converted copies of them) -> :class:`Wav2Vec2Config` + weights.

Key names and configuration fields are facts of fairseq's checkpoint format (fairseq
``Wav2Vec2Config`` / ``HubertConfig`` / ``Data2VecAudioConfig``, ``AudioPretrainingConfig``);
nothing here imports fairseq. The maps are data: :data:`FAIRSEQ_KEY_MAP` renames weights,
:data:`FAIRSEQ_PRETRAINING_ONLY` lists entries that only pretraining uses (dropped).
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from ..state_dict import parse_layer_spec, rename_keys  # noqa: F401 - rename_keys: the one key mapper
from .model import DEFAULT_CONV_LAYERS, Wav2Vec2Config

#: (fairseq name regex, our name template); the first full match wins
FAIRSEQ_KEY_MAP: List[Tuple[str, str]] = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)", r"feature_extractor.conv_layers.\1.norm.\2"),
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)", r"feature_extractor.conv_layers.0.norm.\1"),
    (r"layer_norm\.(weight|bias)", r"feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"feature_projection.projection.\1"),
    (r"encoder\.pos_conv\.0\.(weight_g|weight_v|bias)", r"encoder.pos_conv.\1"),
    (r"encoder\.pos_conv\.0\.parametrizations\.weight\.original0", r"encoder.pos_conv.weight_g"),
    (r"encoder\.pos_conv\.0\.parametrizations\.weight\.original1", r"encoder.pos_conv.weight_v"),
    (r"encoder\.pos_conv\.(\d+)\.0\.(weight|bias)", r"encoder.pos_conv.layers.\1.conv.\2"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
     r"encoder.layers.\1.attention.\2.\3"),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"encoder.layers.\1.attention_layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc([12])\.(weight|bias)", r"encoder.layers.\1.feed_forward.fc\2.\3"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
]

#: weights that only pretraining uses (regexes matched at the start of a fairseq name)
FAIRSEQ_PRETRAINING_ONLY: Tuple[str, ...] = (
    r"quantizer\.", r"input_quantizer\.", r"project_q\.", r"project_inp\.", r"final_proj\.",
    r"target_glu\.", r"label_embs_concat$", r"_ema$", r"_ema\.", r"ema\.", r"mask_emb$",
)

#: fairseq model ``_name`` -> family
FAIRSEQ_MODEL_NAMES = {"wav2vec2": "wav2vec2", "hubert": "hubert", "data2vec_audio": "data2vec"}

_FAIRSEQ_DEFAULTS = dict(
    extractor_mode="default", encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=3072,
    encoder_attention_heads=12, activation_fn="gelu", layer_type="transformer", conv_bias=False,
    layer_norm_first=False, conv_pos=128, conv_pos_groups=16, pos_conv_depth=1,
    crop_seq_to_multiple=1, quantize_input=False,
)


def parse_conv_layers(spec: Any, where: str = "conv_feature_layers") -> Tuple[Tuple[int, int, int], ...]:
    """fairseq's ``conv_feature_layers`` as ``(channels, kernel, stride)`` triples, parsed without
    ``eval`` by :func:`superb.upstream.state_dict.parse_layer_spec` (``where`` names the source)."""
    return tuple(parse_layer_spec(spec, "conv_feature_layers", where, arity=3))


def detect_family(model_cfg: Mapping[str, Any], state: Mapping[str, Any], hint: Optional[str] = None) -> str:
    name = model_cfg.get("_name") or model_cfg.get("arch")
    if isinstance(name, str):
        if name in FAIRSEQ_MODEL_NAMES:
            return FAIRSEQ_MODEL_NAMES[name]
        for prefix, family in (("wav2vec2", "wav2vec2"), ("hubert", "hubert"), ("data2vec", "data2vec")):
            if name.startswith(prefix):
                return family
    if "label_embs_concat" in state or hint == "hubert":
        return "hubert"
    if "_ema" in state or any(k.startswith("encoder.pos_conv.1.") for k in state):
        return "data2vec"
    return "wav2vec2"


def config_from_fairseq(model_cfg: Mapping[str, Any], task_cfg: Mapping[str, Any],
                        state: Mapping[str, Any], source: str, family_hint: Optional[str] = None) -> Wav2Vec2Config:
    """Build our config from fairseq's model/task configuration (plain dicts)."""
    name = model_cfg.get("_name") or model_cfg.get("arch")
    if isinstance(name, str) and name.startswith(("wav2vec_ctc", "wav2vec_seq2seq", "hubert_ctc", "hubert_seq2seq",
                                                  "data2vec_ctc")) or any(k.startswith("w2v_encoder.") for k in state):
        raise ValueError(
            f"{source}: this is a fine-tuned fairseq model ({name or 'w2v_encoder.*'}); superb loads the "
            "pretrained (self-supervised) checkpoint. Pass the pretraining checkpoint instead."
        )
    if isinstance(name, str) and name.split("_")[0] in ("wav2vec", "vq") and not name.startswith("wav2vec2"):
        raise ValueError(f"{source}: model {name!r} is a wav2vec / vq-wav2vec (v1) checkpoint, not wav2vec 2.0")

    def get(key):
        value = model_cfg.get(key)
        return _FAIRSEQ_DEFAULTS.get(key) if value is None else value

    family = detect_family(model_cfg, state, family_hint)
    unsupported = []
    if get("activation_fn") != "gelu":
        unsupported.append(f"activation_fn={get('activation_fn')!r}")
    if get("layer_type") != "transformer":
        unsupported.append(f"layer_type={get('layer_type')!r}")
    if int(get("crop_seq_to_multiple")) != 1:
        unsupported.append(f"crop_seq_to_multiple={get('crop_seq_to_multiple')!r}")
    if get("quantize_input"):
        unsupported.append("quantize_input=True")
    if unsupported:
        raise ValueError(f"{source}: unsupported fairseq model configuration: {', '.join(unsupported)}")
    mode = get("extractor_mode")
    if mode not in ("default", "layer_norm"):
        raise ValueError(f"{source}: unknown extractor_mode {mode!r} (expected 'default' or 'layer_norm')")
    conv_layers = parse_conv_layers(model_cfg.get("conv_feature_layers") or DEFAULT_CONV_LAYERS, source)
    normalize = task_cfg.get("normalize")
    return Wav2Vec2Config(
        family=family,
        conv_layers=conv_layers,
        extractor_mode="group_norm" if mode == "default" else "layer_norm",
        conv_bias=bool(get("conv_bias")),
        hidden_size=int(get("encoder_embed_dim")),
        num_layers=int(get("encoder_layers")),
        num_heads=int(get("encoder_attention_heads")),
        ffn_dim=int(get("encoder_ffn_embed_dim")),
        layer_norm_first=bool(get("layer_norm_first")),
        pos_conv_kernel=(int(get("conv_pos")) if int(get("pos_conv_depth")) == 1
                         else max(3, int(get("conv_pos")) // int(get("pos_conv_depth")))),
        pos_conv_groups=int(get("conv_pos_groups")),
        pos_conv_depth=int(get("pos_conv_depth")),
        post_extract_proj="post_extract_proj.weight" in state,
        feature_layer_norm=True,
        normalize=bool(normalize) if normalize is not None else False,
    )


def split_fairseq_checkpoint(ckpt: Mapping[str, Any], source: str) -> Tuple[Dict, Dict, Dict]:
    """``(model_cfg, task_cfg, state)`` from a fairseq checkpoint dict (already plain data).

    Modern files keep ``cfg = {'model': {...}, 'task': {...}}``; legacy files keep one flat
    ``args`` namespace holding model and task options together.
    """
    state = ckpt.get("model")
    if not isinstance(state, Mapping):
        raise ValueError(f"{source}: fairseq checkpoint without a 'model' state dict")
    cfg = ckpt.get("cfg")
    if isinstance(cfg, Mapping) and isinstance(cfg.get("model"), Mapping):
        model_cfg = dict(cfg["model"])
        task_cfg = dict(cfg.get("task") or {})
        if not model_cfg and isinstance(ckpt.get("args"), Mapping):
            model_cfg = dict(ckpt["args"])
    elif isinstance(ckpt.get("args"), Mapping):
        model_cfg = dict(ckpt["args"])
        task_cfg = dict(ckpt["args"])
    else:
        raise ValueError(f"{source}: fairseq checkpoint without 'cfg' (model/task) or legacy 'args'")
    return model_cfg, task_cfg, dict(state)


def map_fairseq_state(state: Mapping[str, Any]) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    return rename_keys(state, FAIRSEQ_KEY_MAP)
