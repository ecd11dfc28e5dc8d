"""fairseq wav2vec / vq-wav2vec checkpoints (and s3prl's converted copies) ->
:class:`~superb.upstream.wav2vec1.model.Wav2VecUpstream`.

fairseq legacy ``{'args': Namespace, 'model'}``, fairseq ``{'cfg': {'model': ...}, 'model'}`` and
s3prl's ``{'task_cfg', 'model_cfg', 'model_weight'}`` (facts of those formats). The weight renaming
is data: :data:`FAIRSEQ_KEY_MAP`; :data:`DROP` lists pretraining-only weights.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from ..checkpoint_io import safe_load
from ..options import as_bool, config_from_options, to_plain
from ..state_dict import load_strict, map_keys, parse_layer_spec
from .model import LEGACY_ARGS_DEFAULTS, Wav2VecConfig, Wav2VecUpstream

FAIRSEQ_KEY_MAP: Tuple[Tuple[str, str], ...] = (
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.weight", r"fe_convs.\1.weight"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.(weight|bias)", r"fe_norms.\1.\2"),
    (r"feature_aggregator\.conv_layers\.(\d+)\.1\.(weight|bias)", r"agg_convs.\1.\2"),
    (r"feature_aggregator\.conv_layers\.(\d+)\.3\.(weight|bias)", r"agg_norms.\1.\2"),
    (r"feature_aggregator\.residual_proj\.(\d+)\.weight", r"agg_proj.\1.weight"),
    (r"feature_aggregator\.1\.(.+)", r"agg_gru.\1"),
    (r"vector_quantizer\.vars", r"quantizer.vars"),
    (r"vector_quantizer\.weight_proj\.(.+)", r"quantizer.weight_proj.\1"),
    (r"vector_quantizer\.embedding", r"quantizer.embedding"),
    (r"vector_quantizer\.projection\.0\.weight", r"quantizer.proj_conv.weight"),
    (r"vector_quantizer\.projection\.1\.(weight|bias)", r"quantizer.proj_norm.\1"),
)
#: pretraining-only weights
DROP = (r"wav2vec_predictions\.", r"project_features\.")

_FIELDS = [f.name for f in dataclasses.fields(Wav2VecConfig)]


def _model_state(obj: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    for key in ("model_weight", "model"):
        state = obj.get(key)
        if isinstance(state, Mapping) and any(str(k).startswith("feature_aggregator.") for k in state):
            return state
    return None


def detect(obj: Any) -> bool:
    """True for a wav2vec / vq-wav2vec checkpoint (fairseq or s3prl converted)."""
    return isinstance(obj, Mapping) and _model_state(obj) is not None and (
        "args" in obj or "cfg" in obj or "model_cfg" in obj)


def _format_and_args(obj: Mapping[str, Any], where: str) -> Tuple[str, Dict[str, Any], Dict[str, Any]]:
    """(format name, model arguments, defaults for absent ones)."""
    if "model_cfg" in obj:
        return "s3prl converted", to_plain(obj["model_cfg"]) or {}, {}
    if obj.get("args") is not None:
        args = to_plain(obj["args"])
        if not isinstance(args, dict):
            raise ValueError(f"{where}: 'args' is not an argument namespace ({type(obj['args']).__name__})")
        return "fairseq legacy args", args, LEGACY_ARGS_DEFAULTS
    cfg = to_plain(obj.get("cfg")) or {}
    model = cfg.get("model") if isinstance(cfg, dict) else None
    if not isinstance(model, dict):
        raise ValueError(f"{where}: neither 'args' nor cfg['model'] describes the model")
    return "fairseq cfg", model, {}


def config_from_fairseq(args: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> Wav2VecConfig:
    name = args.get("_name", args.get("arch"))
    if name not in (None, "wav2vec"):
        raise ValueError(f"{where}: model {name!r} is not wav2vec (arch/_name)")
    values = {**dict(defaults), **{k: args[k] for k in _FIELDS if k in args and args[k] is not None}}
    for key in ("no_conv_bias", "agg_zero_pad", "skip_connections_feat", "skip_connections_agg",
                "log_compression", "non_affine_group_norm", "combine_groups"):
        if key in values:
            values[key] = as_bool(values[key], key, where)
    for key in ("gru_dim", "vq_vars", "vq_groups", "vq_dim", "vq_depth"):
        if key in values:
            values[key] = int(values[key])
    if "residual_scale" in values:
        values["residual_scale"] = float(values["residual_scale"])
    if values.get("vq_type") is None:
        values["vq_type"] = "none"
    cfg = dataclasses.replace(Wav2VecConfig(), **values)
    cfg.validate(where)
    return cfg


def load_checkpoint(path: Path, obj: Mapping[str, Any], expect_vq: Optional[bool], **options) -> Wav2VecUpstream:
    fmt, args, defaults = _format_and_args(obj, str(path))
    cfg = config_from_options(Wav2VecConfig, config_from_fairseq(args, defaults, str(path)), options, str(path))
    is_vq = cfg.vq_type != "none"
    if expect_vq is not None and is_vq != expect_vq:
        right = "vq_wav2vec" if is_vq else "wav2vec"
        raise ValueError(f"{path}: this is a {'vq-wav2vec' if is_vq else 'wav2vec'} checkpoint (vq_type "
                         f"{cfg.vq_type!r}); load it as upstream {right!r}")
    model = Wav2VecUpstream(cfg, str(path))
    load_strict(model, map_keys(_model_state(obj), FAIRSEQ_KEY_MAP), path, drop_patterns=DROP)
    model.eval()
    return model


def describe(obj: Any) -> Dict[str, Any]:
    fmt, args, defaults = _format_and_args(obj, "checkpoint")
    cfg = config_from_fairseq(args, defaults, "checkpoint")
    feat = parse_layer_spec(cfg.conv_feature_layers, "conv_feature_layers", "checkpoint")
    agg = parse_layer_spec(cfg.conv_aggregator_layers, "conv_aggregator_layers", "checkpoint") if cfg.aggregator == "cnn" else []
    return {
        "family": "wav2vec",
        "format": fmt,
        "upstreams": ["vq_wav2vec"] if cfg.vq_type != "none" else ["wav2vec"],
        "vq_type": cfg.vq_type,
        "num_hidden_states": (len(agg) + 1) if cfg.aggregator == "cnn" else 2,
        "downsample_rate": int(math.prod(s for _, _, s in feat)),
        "aggregator": cfg.aggregator,
    }


FORMATS = ("fairseq .pt with legacy 'args' (or 'cfg')", "s3prl converted .pt (task_cfg/model_cfg/model_weight)")


def load(path: Path, variant=None, **options) -> Wav2VecUpstream:
    """Load ``path``; ``variant`` (``wav2vec`` / ``vq_wav2vec``) must match the checkpoint's kind."""
    obj = safe_load(path)
    if not detect(obj):
        keys = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"{path}: not a wav2vec / vq-wav2vec checkpoint (expected fairseq 'args'/'cfg' + "
                         f"'model' or s3prl 'model_cfg' + 'model_weight' with feature_aggregator.* weights; "
                         f"found {keys})")
    expect_vq = None if variant is None else variant.name == "vq_wav2vec"
    return load_checkpoint(path, obj, expect_vq, **options)
