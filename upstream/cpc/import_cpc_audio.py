"""CPC_audio checkpoints -> :class:`~superb.upstream.cpc.model.CPCUpstream`.

CPC_audio's hub / s3prl ``{'config': vars(args), 'weights': state_dict}`` and training checkpoints
``checkpoint_N.pt`` with ``checkpoint_args.json`` (facts of CPC_audio's format). The weight
renaming is data: :data:`CPC_AUDIO_KEY_MAP`.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

from ..checkpoint_io import safe_load
from ..options import config_from_options, to_plain
from ..state_dict import load_strict, map_keys
from .model import _AR_MODES, CPCConfig, CPCUpstream

CPC_AUDIO_KEY_MAP: Tuple[Tuple[str, str], ...] = (
    (r"gEncoder\.conv(\d)\.(weight|bias)", r"convs.\1.\2"),
    (r"gEncoder\.batchNorm(\d)\.(.+)", r"norms.\1.\2"),
    (r"gAR\.baseNet\.(.+)", r"ar.\1"),
)
#: pretraining-only weights that may accompany the model
DROP = (r"cpcCriterion\.",)

_CONFIG_FIELDS = ("hiddenEncoder", "hiddenGar", "arMode", "nLevelsGRU", "normMode", "encoder_type", "cpc_mode")


def _is_model_state(state: Any) -> bool:
    return isinstance(state, Mapping) and any(str(k).startswith("gEncoder.") for k in state)


def detect(obj: Any) -> bool:
    """True for CPC_audio's ``{'config', 'weights'}`` file or a training checkpoint."""
    if not isinstance(obj, Mapping):
        return False
    if "config" in obj and "weights" in obj and _is_model_state(obj["weights"]):
        return True
    return "gEncoder" in obj and _is_model_state(obj["gEncoder"])


def config_from_cpc_audio(args: Mapping[str, Any], where: str) -> CPCConfig:
    cfg = CPCConfig(nLevelsGRU=1)  # CPC_audio's argparse defaults
    values = {k: args[k] for k in _CONFIG_FIELDS if k in args}
    for key in ("hiddenEncoder", "hiddenGar", "nLevelsGRU"):
        if key in values:
            values[key] = int(values[key])
    if values.get("cpc_mode") == "none":
        values["cpc_mode"] = None
    if "arMode" in values and values["arMode"] in ("transformer", "no_ar"):
        raise ValueError(f"{where}: arMode {values['arMode']!r} is not supported (supported: {_AR_MODES})")
    return dataclasses.replace(cfg, **values)


def _read_args(path: Path, obj: Mapping[str, Any]) -> Tuple[Dict[str, Any], Mapping[str, Any]]:
    if "config" in obj and "weights" in obj:
        args = to_plain(obj["config"])
        if not isinstance(args, dict):
            raise ValueError(f"{path}: 'config' is not a mapping of CPC_audio arguments")
        return args, obj["weights"]
    args_file = path.parent / "checkpoint_args.json"
    if not args_file.is_file():
        raise ValueError(f"{path}: a CPC_audio training checkpoint needs its checkpoint_args.json next to it "
                         f"({args_file} not found)")
    try:
        args = json.loads(args_file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{args_file}: not valid JSON ({exc})") from None
    return args, obj["gEncoder"]


def load_cpc_audio(path: Path, obj: Mapping[str, Any], **options) -> CPCUpstream:
    args, state = _read_args(path, obj)
    cfg = config_from_options(CPCConfig, config_from_cpc_audio(args, str(path)), options, str(path))
    model = CPCUpstream(cfg, str(path))
    load_strict(model, map_keys(state, CPC_AUDIO_KEY_MAP), path, drop_patterns=DROP)
    model.eval()
    return model


def describe(obj: Any) -> Dict[str, Any]:
    if not ("config" in obj and "weights" in obj):
        return {"family": "cpc", "format": "CPC_audio training checkpoint (+ checkpoint_args.json)",
                "upstreams": ["modified_cpc"], "num_hidden_states": 2}
    fmt, args = "CPC_audio {'config', 'weights'}", to_plain(obj["config"])
    cfg = config_from_cpc_audio(args, "checkpoint")
    return {"family": "cpc", "format": fmt, "upstreams": ["modified_cpc"], "num_hidden_states": 2,
            "hidden_sizes": [cfg.hiddenEncoder, cfg.hiddenGar], "arMode": cfg.arMode,
            "nLevelsGRU": cfg.nLevelsGRU, "normMode": cfg.normMode}


FORMATS = ("CPC_audio / s3prl .pt {'config', 'weights'}",
           "CPC_audio training checkpoint_N.pt {'gEncoder', ...} + checkpoint_args.json")


def load(path: Path, variant=None, **options) -> CPCUpstream:
    obj = safe_load(path)
    if not detect(obj):
        keys = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"{path}: not a CPC_audio checkpoint (expected 'config' + 'weights' with gEncoder.* "
                         f"weights, or a training checkpoint with 'gEncoder'; found {keys})")
    return load_cpc_audio(path, obj, **options)
