"""superb's own BEST-RQ file: ``{'format': 'superb.best_rq', 'version': 1, 'config': {...},
'state_dict': {...}}`` - written by :func:`save_checkpoint`, read by :func:`load_own`."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch

from ..options import config_from_options, to_plain
from ..state_dict import load_strict

OWN_FORMAT = "superb.best_rq"


def save_checkpoint(model, path) -> Path:
    """Write superb's own BEST-RQ file: ``{'format': 'superb.best_rq', 'version': 1, 'config':
    {...}, 'state_dict': {...}}`` (plain data and tensors; the quantizer and head included)."""
    path = Path(path)
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model.config).items()}
    torch.save({"format": OWN_FORMAT, "version": 1, "config": cfg, "state_dict": model.state_dict()}, path)
    return path


def load_own(path: Path, obj: Mapping[str, Any], **options):
    from .model import BestRQConfig, BestRQUpstream

    if int(obj.get("version", 0)) != 1:
        raise ValueError(f"{path}: unsupported {OWN_FORMAT} version {obj.get('version')!r} (this superb reads 1)")
    raw = to_plain(obj.get("config"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: 'config' is missing or not a mapping")
    fields = {f.name: f for f in dataclasses.fields(BestRQConfig)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(f"{path}: config has unknown key(s) {unknown}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    cfg = config_from_options(BestRQConfig, dataclasses.replace(BestRQConfig(), **values), options, str(path))
    model = BestRQUpstream(cfg, str(path))
    load_strict(model, obj["state_dict"], path)
    model.eval()
    return model
