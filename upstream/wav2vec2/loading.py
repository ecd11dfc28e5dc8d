"""Detect a wav2vec 2.0-family checkpoint's format and load it into :class:`Wav2Vec2Upstream`.

Formats, detected from the file itself:

* ``huggingface`` - a folder with ``config.json`` and ``model.safetensors`` or
  ``pytorch_model.bin`` (see :mod:`.import_hf`);
* ``s3prl`` - s3prl's converted ``.pt`` with ``task_cfg`` / ``model_cfg`` / ``model_weight``
  (see :mod:`.import_s3prl`);
* ``fairseq`` - a fairseq ``.pt`` with ``model`` and ``cfg`` (or a legacy ``args`` namespace)
  (see :mod:`.import_fairseq`).

Every ``.pt`` file is read with :func:`superb.upstream.checkpoint_io.safe_load`: nothing in it
is executed and fairseq is not needed. Pretraining-only weights are dropped; any other missing,
unexpected or wrongly shaped weight is an error listing the names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from ..checkpoint_io import UnsafeCheckpointError, safe_load, to_plain
from ..state_dict import check_weights
from . import import_fairseq, import_hf, import_s3prl
from .model import PRESETS, UnknownOptionError, Wav2Vec2Config, Wav2Vec2Model, Wav2Vec2Upstream

#: options that may change how a loaded checkpoint is run (everything else is architecture)
RUNTIME_OPTIONS = ("normalize", "normalize_eps", "padding", "padding_mask")

FORMAT_NAMES = {
    "fairseq": "fairseq checkpoint (.pt)",
    "s3prl": "s3prl converted checkpoint (.pt)",
    "huggingface": "Hugging Face folder",
}


@dataclass
class LoadedCheckpoint:
    """A checkpoint read into our configuration and our weight names."""

    path: Path
    format: str
    config: Wav2Vec2Config
    state: Dict[str, torch.Tensor]
    dropped: List[str] = field(default_factory=list)
    normalize_source: str = ""
    info: Dict[str, Any] = field(default_factory=dict)


def detect_format(path: Path, obj: Any = None) -> str:
    """``'huggingface'``, ``'s3prl'`` or ``'fairseq'``; ``obj`` is the loaded ``.pt`` if known."""
    path = Path(path)
    if path.is_dir():
        if import_hf.is_hf_folder(path):
            return "huggingface"
        raise ValueError(f"{path}: a folder without config.json is not a Hugging Face model folder")
    if path.name == "config.json" or path.suffix == ".safetensors":
        raise ValueError(f"{path}: pass the Hugging Face model folder ({path.parent}), not one of its files")
    if obj is None:
        obj = safe_load(path)
    fmt = None
    if import_s3prl.is_s3prl_converted(obj):
        fmt, state = "s3prl", obj.get("model_weight")
    elif isinstance(obj, Mapping) and "model" in obj and ("cfg" in obj or "args" in obj):
        fmt, state = "fairseq", obj.get("model")
    if fmt is not None:
        if isinstance(state, Mapping) and any(
            str(k).startswith(("feature_aggregator.", "vector_quantizer.")) for k in state
        ):
            raise ValueError(
                f"{path}: this is a wav2vec / vq-wav2vec (v1) checkpoint, not wav2vec 2.0 / HuBERT / "
                "data2vec; use --upstream wav2vec or --upstream vq_wav2vec"
            )
        return fmt
    keys = ", ".join(map(str, list(obj)[:12])) if isinstance(obj, Mapping) else type(obj).__name__
    raise ValueError(
        f"{path}: not a recognised wav2vec 2.0 / HuBERT / data2vec checkpoint (top-level: {keys}). "
        "Accepted: fairseq .pt (model + cfg/args), s3prl converted .pt (task_cfg, model_cfg, "
        "model_weight), Hugging Face folder (config.json + weights)."
    )


def _expected_state(config: Wav2Vec2Config) -> Dict[str, torch.Tensor]:
    with torch.device("meta"):
        model = Wav2Vec2Model(config)
    return model.state_dict()


def source_name(key: str, key_map) -> str:
    """Our weight name written in a checkpoint format's naming (inverse of ``key_map``)."""
    for pattern, template in key_map:
        parts = re.split(r"\\(\d)", template)  # literal, group number, literal, ...
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<g{p}>[^.]+)" for i, p in enumerate(parts))
        m = re.fullmatch(regex, key)
        if not m:
            continue
        values = {int(n[1:]): v for n, v in m.groupdict().items()}
        out, group, i = [], 0, 0
        while i < len(pattern):
            c = pattern[i]
            if c == "\\" and i + 1 < len(pattern):
                out.append(pattern[i + 1])
                i += 2
            elif c == "(":
                group += 1
                i = pattern.index(")", i) + 1
                out.append(values.get(group, "?"))
            else:
                out.append(c)
                i += 1
        candidate = "".join(out)
        if re.fullmatch(pattern, candidate):
            return candidate
    return key


def _check_and_convert(state: Mapping[str, Any], origin: Mapping[str, str], config: Wav2Vec2Config,
                       drop: tuple, path: Path, key_map) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Check names (dropping ``drop`` patterns) and shapes; return float32 weights + dropped names.

    Errors list the names as the checkpoint format spells them.
    """
    return check_weights(_expected_state(config), state, path, drop, origin=origin,
                         source_name=lambda k: source_name(k, key_map))


def read_checkpoint(path: Path) -> LoadedCheckpoint:
    """Read any supported format into our configuration and weight names (no model built)."""
    path = Path(path)
    fmt = detect_format(path) if path.is_dir() else None
    if fmt == "huggingface":
        hf_cfg = import_hf.read_hf_config(path)
        normalize, norm_src = import_hf.hf_normalize(path, hf_cfg)
        config = import_hf.config_from_hf(hf_cfg, str(path / "config.json"), normalize)
        raw, weights_path = import_hf.read_hf_weights(path)
        raw = import_hf.strip_prefix(raw, import_hf.hf_prefix(hf_cfg))
        mapped, origin = import_fairseq.rename_keys(raw, import_hf.HF_KEY_MAP)
        state, dropped = _check_and_convert(mapped, origin, config, import_hf.HF_DROP, weights_path,
                                            import_hf.HF_KEY_MAP)
        info = {"model_type": hf_cfg.get("model_type"), "architectures": hf_cfg.get("architectures"),
                "weights_file": weights_path.name}
        return LoadedCheckpoint(path, fmt, config, state, dropped, norm_src, info)

    obj = safe_load(path)
    fmt = detect_format(path, obj)
    if fmt == "s3prl":
        model_cfg, task_cfg, raw, hint = import_s3prl.split_s3prl_checkpoint(obj, str(path))
        info = {"dictionaries": len(obj.get("dictionaries_symbols") or [])}
    else:
        plain = {k: (to_plain(v) if k in ("cfg", "args") else v) for k, v in obj.items()}
        model_cfg, task_cfg, raw = import_fairseq.split_fairseq_checkpoint(plain, str(path))
        hint = "hubert" if isinstance(obj.get("task_state"), Mapping) and "dictionaries" in obj["task_state"] else None
        info = {"legacy_args": "cfg" not in obj or not isinstance(plain.get("cfg"), Mapping)}
    model_cfg, task_cfg = to_plain(model_cfg), to_plain(task_cfg)
    config = import_fairseq.config_from_fairseq(model_cfg, task_cfg, raw, str(path), hint)
    if config.family == "data2vec" and fmt in ("fairseq", "s3prl") and "_ema" not in raw:
        info["note"] = "no _ema entry (data2vec pretraining checkpoints normally carry one)"
    mapped, origin = import_fairseq.map_fairseq_state(raw)
    key_map = list(import_fairseq.FAIRSEQ_KEY_MAP)
    if config.extractor_mode == "group_norm":  # name missing norms as group-norm weights
        key_map.sort(key=lambda rule: "conv_layers\\.0\\.2\\." not in rule[0])
    state, dropped = _check_and_convert(mapped, origin, config, import_fairseq.FAIRSEQ_PRETRAINING_ONLY, path,
                                        key_map)
    norm_value = task_cfg.get("normalize")
    norm_src = (f"task normalize={bool(norm_value)}" if norm_value is not None
                else "task has no normalize field: fairseq default False")
    info["model_name"] = model_cfg.get("_name") or model_cfg.get("arch")
    return LoadedCheckpoint(path, fmt, config, state, dropped, norm_src, info)


def load_upstream_checkpoint(path: Path, expected_preset: Optional[str] = None, **options) -> Wav2Vec2Upstream:
    """Load ``path`` (any supported format) as a frozen :class:`Wav2Vec2Upstream`.

    ``expected_preset`` names the registered upstream the user asked for: its family must match
    the checkpoint's (a HuBERT checkpoint cannot be loaded as ``wav2vec2``); Base / Large follow
    the checkpoint. ``options`` may set the runtime fields ``normalize``, ``normalize_eps``,
    ``padding`` and ``padding_mask``; architecture comes from the checkpoint.
    """
    bad = sorted(set(options) - set(RUNTIME_OPTIONS))
    if bad:
        known = set(Wav2Vec2Config.field_names())
        kinds = ["architecture fields come from the checkpoint" if k in known else "unknown option" for k in bad]
        raise UnknownOptionError(
            f"option(s) {', '.join(bad)} cannot be used with a checkpoint ({'; '.join(sorted(set(kinds)))}); "
            f"allowed: {', '.join(RUNTIME_OPTIONS)}"
        )
    loaded = read_checkpoint(path)
    if expected_preset is not None:
        want = PRESETS[expected_preset].family
        if loaded.config.family != want:
            raise ValueError(
                f"{path} holds a {loaded.config.family} model but upstream {expected_preset!r} is {want}; "
                f"use --upstream {loaded.config.family}{'_large' if loaded.config.num_layers > 12 else ''}"
            )
    config = loaded.config.replace(**options) if options else loaded.config
    with torch.device("meta"):  # no random init of weights that are replaced right away
        model = Wav2Vec2Model(config)
    model.load_state_dict(loaded.state, strict=True, assign=True)
    upstream = Wav2Vec2Upstream(config, model, source=str(path), source_format=loaded.format)
    upstream.normalize_source = ("option" if "normalize" in options else loaded.normalize_source)
    return upstream


def inspect_wav2vec2(path: Path) -> Optional[Dict[str, Any]]:
    """``superb inspect``: describe a wav2vec 2.0-family checkpoint without building a model (``None``
    for files of other families)."""

    try:
        detect_format(path)
    except UnsafeCheckpointError:
        raise
    except ValueError:
        return None  # not a wav2vec 2.0-family checkpoint
    loaded = read_checkpoint(path)
    cfg = loaded.config
    large = cfg.hidden_size >= 1024
    name = cfg.family + ("_large" if large else "")
    return {
        "path": str(path),
        "family": cfg.family,
        "format": loaded.format,
        "format_description": FORMAT_NAMES[loaded.format],
        "upstream": name,
        "config": cfg.to_dict(),
        "num_parameters": int(sum(t.numel() for t in loaded.state.values())),
        "num_layers": cfg.num_layers + 1,
        "hidden_size": cfg.hidden_size,
        "downsample_rate": cfg.downsample_rate,
        "normalize": cfg.normalize,
        "normalize_source": loaded.normalize_source,
        "dropped_weights": loaded.dropped,
        "notes": [f"{k}: {v}" for k, v in loaded.info.items() if v not in (None, "", [], False)],
    }
