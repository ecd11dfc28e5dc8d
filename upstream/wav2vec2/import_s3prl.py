"""s3prl's converted (fairseq-free) checkpoints of wav2vec 2.0 / HuBERT / data2vec.

s3prl's ``convert.py`` scripts store ``{'task_cfg': dict, 'model_cfg': dict, 'model_weight':
state_dict}`` - fairseq's task and model configuration as plain dicts and fairseq's weight names
- plus ``dictionaries_symbols`` (the label dictionaries' symbols) for HuBERT. Configuration and
weights therefore go through :mod:`.import_fairseq`.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

S3PRL_REQUIRED = ("task_cfg", "model_cfg", "model_weight")


def is_s3prl_converted(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(k in obj for k in S3PRL_REQUIRED)


def split_s3prl_checkpoint(obj: Mapping[str, Any], source: str) -> Tuple[Dict, Dict, Dict, Optional[str]]:
    """``(model_cfg, task_cfg, state, family_hint)``."""
    for key in S3PRL_REQUIRED:
        if not isinstance(obj.get(key), Mapping):
            raise ValueError(f"{source}: s3prl converted checkpoint: {key!r} must be a dict, "
                             f"got {type(obj.get(key)).__name__}")
    hint = "hubert" if "dictionaries_symbols" in obj else None
    return dict(obj["model_cfg"]), dict(obj["task_cfg"]), dict(obj["model_weight"]), hint
