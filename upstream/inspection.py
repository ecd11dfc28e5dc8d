"""``superb inspect PATH``: what a checkpoint is, without running it.

:func:`inspect_checkpoint` returns a dict with the detected ``family``, ``format``, suggested
``upstream`` name, ``config``, ``num_parameters``, ``num_layers`` (hidden states exposed),
``downsample_rate`` and notes; :func:`format_inspection` renders it as text.

Detection tries the registered *inspectors* first (fast, read the file once and build no model;
families register theirs through :func:`superb.upstream.family.register_family`), then every registered pretrained upstream's loader in
turn - so any upstream family that can load a file can also describe it. Nothing is downloaded
and no code from the file is executed (all loaders go through
:func:`superb.upstream.checkpoint_io.safe_load`).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .base import SAMPLE_RATE

#: callables ``(path) -> dict | None`` (None: not this inspector's format)
_INSPECTORS: List[Callable[[Path], Optional[Dict[str, Any]]]] = []


def register_inspector(fn: Callable[[Path], Optional[Dict[str, Any]]]) -> Callable:
    """Add a fast inspector; it returns ``None`` for files it does not recognise."""
    if fn not in _INSPECTORS:
        _INSPECTORS.append(fn)
    return fn


# ----------------------------------------------------------------------------------------------
# inspectors of the families that read one torch file (see superb.upstream.family)
# ----------------------------------------------------------------------------------------------

_INSPECT_CACHE: Dict[Tuple[str, int, int], Any] = {}


def load_for_inspection(path) -> Any:
    """``safe_load(path)`` for the family inspectors, cached for the last file (each family's
    inspector looks at the same file in turn). ``None`` for a folder or a file that is not a
    torch checkpoint; a file that safe loading refuses raises."""
    from .checkpoint_io import UnsafeCheckpointError, safe_load

    path = Path(path)
    if not path.is_file():
        return None
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _INSPECT_CACHE:
        try:
            obj = safe_load(path)
        except UnsafeCheckpointError:
            raise
        except Exception:  # noqa: BLE001 - not a checkpoint this inspector can read
            obj = None
        _INSPECT_CACHE.clear()
        _INSPECT_CACHE[key] = obj
    return _INSPECT_CACHE[key]


def inspection_record(path, info: Mapping[str, Any], formats: Sequence[str]) -> Dict[str, Any]:
    """The dict ``superb inspect`` prints, from a family's ``describe`` summary; the model is
    built through ``build_upstream`` so that sizes and the parameter count are exact."""
    from .registry import build_upstream

    name = info["upstreams"][0]
    model = build_upstream(name, ckpt=path)
    config = model.config
    config = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})
    skip = {"family", "format", "upstreams"}
    notes = [f"{k}: {v}" for k, v in info.items() if k not in skip]
    if len(info["upstreams"]) > 1:
        notes.append("also loads as: " + ", ".join(info["upstreams"][1:]))
    return {
        "path": str(path),
        "family": info["family"],
        "format": info["format"],
        "format_description": "; ".join(formats),
        "upstream": name,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "num_layers": model.num_layers,
        "hidden_size": model.hidden_sizes[-1],
        "downsample_rate": int(model.downsample_rate),
        "notes": notes,
    }


def family_inspector(detect_fn, describe_fn, formats: Sequence[str]) -> Callable[[Path], Optional[Dict[str, Any]]]:
    """A fast ``superb inspect`` inspector for a family that reads one torch file:
    ``detect_fn(obj)`` recognises the safely loaded object, ``describe_fn(obj)`` summarises it."""
    def inspector(path):
        obj = load_for_inspection(path)
        if obj is None or not detect_fn(obj):
            return None
        return inspection_record(path, describe_fn(obj), formats)

    inspector.__name__ = f"inspect_{getattr(detect_fn, '__module__', 'family').rsplit('.', 1)[-1]}"
    return inspector


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
        f"downsample rate: {info['downsample_rate']} samples/frame ({SAMPLE_RATE / info['downsample_rate']:.0f} frames/s)",
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
