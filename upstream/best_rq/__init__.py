"""BEST-RQ upstream (SpeechBrain's open implementation; see :mod:`.model`).

Importing this package registers ``best_rq``. Checkpoints: SpeechBrain folders
(:mod:`.import_speechbrain`) and superb's own file (:mod:`.import_superb`, written by
:func:`save_checkpoint`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from ..checkpoint_io import safe_load
from ..family import Variant, register_family
from ..inspection import inspection_record, load_for_inspection
from ..options import to_plain
from .import_speechbrain import (SPEECHBRAIN_DROP, SPEECHBRAIN_KEY_MAP, config_from_speechbrain, describe_path,
                                 detect, find_speechbrain_folder, load_speechbrain_folder)
from .import_superb import OWN_FORMAT, load_own, save_checkpoint
from .model import BestRQConfig, BestRQUpstream

__all__ = ["BestRQConfig", "BestRQUpstream", "FORMATS", "OWN_FORMAT", "SPEECHBRAIN_DROP", "SPEECHBRAIN_KEY_MAP",
           "config_from_speechbrain", "describe", "detect", "load", "load_own", "load_speechbrain_folder",
           "save_checkpoint"]


def describe(obj: Any) -> Dict[str, Any]:
    if obj.get("format") == OWN_FORMAT:
        cfg = to_plain(obj.get("config")) or {}
        return {"family": "best_rq", "format": "superb BEST-RQ file", "upstreams": ["best_rq"],
                "num_hidden_states": int(cfg.get("num_layers", 0)) + 1, "d_model": cfg.get("d_model")}
    cfg = config_from_speechbrain(obj, {}, "model.ckpt")
    return {"family": "best_rq", "format": "SpeechBrain BEST-RQ model.ckpt (load its CKPT folder)",
            "upstreams": ["best_rq"], "num_hidden_states": cfg.num_layers + 1, "d_model": cfg.d_model}


FORMATS = ("SpeechBrain checkpoint folder CKPT+*/ (CKPT.yaml, model.ckpt, normalize.ckpt, quantizer.ckpt, linear.ckpt)",
           "superb .pt {'format': 'superb.best_rq', 'config', 'state_dict'}")


def load(path: Path, variant=None, **options) -> BestRQUpstream:
    """A SpeechBrain ``CKPT+*`` folder (or its ``model.ckpt``) or a superb BEST-RQ file."""
    path = Path(path)
    folder = find_speechbrain_folder(path)
    if folder is not None:
        return load_speechbrain_folder(folder, **options)
    if path.is_dir():
        inner = sorted(p.name for p in path.iterdir() if p.is_dir() and p.name.startswith("CKPT"))
        hint = f"; it contains checkpoint folders {inner}: pass one of them" if inner else ""
        raise ValueError(f"{path}: not a SpeechBrain checkpoint folder (needs CKPT.yaml and model.ckpt){hint}")
    obj = safe_load(path)
    if isinstance(obj, Mapping) and obj.get("format") == OWN_FORMAT:
        return load_own(path, obj, **options)
    raise ValueError(f"{path}: not a BEST-RQ checkpoint: pass a SpeechBrain CKPT+* folder (CKPT.yaml, model.ckpt, "
                     f"...) or a superb file with format {OWN_FORMAT!r}")


def _inspector(path) -> Optional[Dict[str, Any]]:
    """``superb inspect``: SpeechBrain checkpoint folders and superb's own BEST-RQ files."""
    path = Path(path)
    if find_speechbrain_folder(path) is not None:
        info = describe_path(path)
    else:
        obj = load_for_inspection(path)
        if not (isinstance(obj, Mapping) and obj.get("format") == OWN_FORMAT):
            return None
        info = describe(obj)
    return inspection_record(path, info, FORMATS)


register_family(
    "best_rq", BestRQUpstream,
    [Variant("best_rq", "BEST-RQ Conformer (SpeechBrain recipe: 12 x 576, RelPos attention, 4x conv subsampling); "
             "Google released no weights", layers="L+1", config=BestRQConfig())],
    formats=FORMATS, load=load, inspector=_inspector)
