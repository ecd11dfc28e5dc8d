"""``superb inspect PATH``: what a checkpoint is, without running it.

:func:`inspect_checkpoint` returns a dict with the detected ``family``, ``format``, suggested
``upstream`` name, ``config``, ``num_parameters``, ``num_layers`` (hidden states exposed),
``downsample_rate`` and notes; :func:`format_inspection` renders it as text.

Detection tries the registered *inspectors* first (fast, read the file once and build no model;
the wav2vec 2.0 family registers one), then every registered pretrained upstream's loader in
turn - so any upstream family that can load a file can also describe it. Nothing is downloaded
and no code from the file is executed (all loaders go through
:func:`superb.upstream.checkpoint_io.safe_load`).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

#: callables ``(path) -> dict | None`` (None: not this inspector's format)
_INSPECTORS: List[Callable[[Path], Optional[Dict[str, Any]]]] = []


def register_inspector(fn: Callable[[Path], Optional[Dict[str, Any]]]) -> Callable:
    """Add a fast inspector; it returns ``None`` for files it does not recognise."""
    if fn not in _INSPECTORS:
        _INSPECTORS.append(fn)
    return fn


def _wav2vec2_inspector(path: Path) -> Optional[Dict[str, Any]]:
    from .checkpoint_io import UnsafeCheckpointError
    from .wav2vec2.loading import FORMAT_NAMES, detect_format, read_checkpoint

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


register_inspector(_wav2vec2_inspector)


def _via_loaders(path: Path) -> Dict[str, Any]:
    from .registry import build_upstream, list_upstreams

    errors = ["wav2vec2 / hubert / data2vec: not a fairseq .pt, s3prl converted .pt or Hugging Face folder "
              "of these families"]
    for spec in list_upstreams():
        if not spec.needs_weights or spec.family in ("wav2vec2", "hubert", "data2vec"):
            continue  # the wav2vec 2.0 family has its own inspector
        try:
            model = build_upstream(spec.name, ckpt=path)
        except Exception as exc:  # noqa: BLE001 - try the next family; report all at the end
            errors.append(f"{spec.name}: {str(exc).splitlines()[0][:200]}")
            continue
        config = getattr(model, "config", None)
        if dataclasses.is_dataclass(config):
            config = dataclasses.asdict(config)
        elif not isinstance(config, dict):
            config = {}
        return {
            "path": str(path),
            "family": spec.family or spec.name,
            "format": getattr(model, "source_format", None) or f"loaded by the {spec.name} loader",
            "format_description": "; ".join(spec.formats),
            "upstream": spec.name,
            "config": config,
            "num_parameters": int(sum(p.numel() for p in model.parameters())),
            "num_layers": model.num_layers,
            "hidden_size": model.hidden_sizes[-1],
            "downsample_rate": model.downsample_rate,
            "notes": [],
        }
    raise ValueError(f"{path}: no upstream loader recognises this checkpoint:\n  " + "\n  ".join(errors))


def inspect_checkpoint(path) -> Dict[str, Any]:
    """Describe a checkpoint file or model folder (see module docstring)."""
    from .registry import _load_builtins, resolve_checkpoint

    path = resolve_checkpoint(path)
    _load_builtins()
    for inspector in list(_INSPECTORS):
        found = inspector(path)  # errors of a recognised but broken file propagate
        if found is not None:
            return found
    return _via_loaders(path)


def format_inspection(info: Dict[str, Any]) -> str:
    """Human-readable rendering of :func:`inspect_checkpoint`'s dict."""
    lines = [
        f"checkpoint:      {info['path']}",
        f"family:          {info['family']}",
        f"format:          {info['format']}" + (f" ({info['format_description']})" if info.get("format_description") else ""),
        f"upstream:        {info['upstream']}  (superb run --upstream {info['upstream']} --upstream-ckpt {info['path']})",
        f"parameters:      {info['num_parameters']:,}",
        f"hidden states:   {info['num_layers']}" + (f" x {info['hidden_size']}-d" if info.get("hidden_size") else ""),
        f"downsample rate: {info['downsample_rate']} samples/frame ({16000 / info['downsample_rate']:.0f} frames/s)",
    ]
    if "normalize" in info:
        lines.append(f"normalize wave:  {info['normalize']} ({info.get('normalize_source', '')})")
    if info.get("dropped_weights"):
        dropped = info["dropped_weights"]
        shown = ", ".join(dropped[:8]) + (f", ... ({len(dropped)} in all)" if len(dropped) > 8 else "")
        lines.append(f"dropped (pretraining-only): {shown}")
    for note in info.get("notes") or []:
        lines.append(f"note:            {note}")
    lines.append("config:")
    for key, value in (info.get("config") or {}).items():
        lines.append(f"  {key}: {json.dumps(value) if isinstance(value, (list, dict)) else value}")
    return "\n".join(lines)
