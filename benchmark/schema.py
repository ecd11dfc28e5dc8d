"""Types and ranges of the runner, optimiser, batch and featurizer sections of a run's config.

Each section is a dataclass whose fields carry their type and bounds; :func:`validate_config`
checks a resolved config against them **before anything is built or written**, so
``runner.accumulate=0``, ``runner.eval_every=-1`` or ``batch.max_seconds=abc`` is a one-line
error naming the key and the value, not a silent no-op or a ``ZeroDivisionError`` later.

Rules: integer fields take ints (and integral floats such as ``2e3``); float fields take ints or
floats, and numbers PyYAML leaves as strings (``lr: 1e-3``); checked values are written back
normalised; booleans are refused where a number goes (YAML reads ``yes`` as ``True``); ``None`` only
where the field says ``Optional``. Tasks without training (``trainable = False``, QbE) use only
``runner.seed`` and ``batch.eval_max_seconds``, so only the keys present are checked for them.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from .config import ConfigError


def _spec(kind: str, low: Optional[float] = None, low_open: bool = False, optional: bool = False, doc: str = "",
          choices: tuple = ()):
    return field(default=None, metadata={"kind": kind, "low": low, "low_open": low_open, "optional": optional,
                                         "doc": doc, "choices": choices})


PRECISIONS = ("fp32", "bf16", "fp16")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass
class RunnerConfig:
    total_steps: Optional[int] = _spec("int", 1, doc="optimiser steps")
    eval_every: Optional[int] = _spec("int", 1, doc="steps between dev evaluations")
    save_every: Optional[int] = _spec("int", 1, doc="steps between saves of checkpoints/last.pt")
    log_every: Optional[int] = _spec("int", 1, doc="steps between log.jsonl lines")
    accumulate: Optional[int] = _spec("int", 1, doc="batches per optimiser step")
    grad_clip: Optional[float] = _spec("float", 0, optional=True, doc="max gradient norm (null or 0: no clipping)")
    seed: Optional[int] = _spec("int", 0, doc="seed of every RNG")
    precision: Optional[str] = _spec("choice", optional=True, choices=PRECISIONS,
                                     doc="autocast of upstream and head on CUDA (null: fp32)")


@dataclass
class OptimizerConfig:
    name: Optional[str] = _spec("optimizer", doc="a torch.optim optimiser class")
    lr: Optional[float] = _spec("rates", 0, low_open=True,
                                doc="learning rate, or a list of rates: one head per rate trained on the same "
                                    "upstream pass, the best by dev reported (SUPERB's learning-rate search)")


@dataclass
class BatchConfig:
    max_seconds: Optional[float] = _spec("float", 0, low_open=True, doc="seconds of audio per training batch")
    eval_max_seconds: Optional[float] = _spec("float", 0, low_open=True, doc="seconds of audio per dev/test batch")
    max_frames: Optional[int] = _spec("int", 1, optional=True,
                                      doc="upstream frames per training batch, replacing max_seconds (null: unused)")


@dataclass
class SchedulerConfig:
    name: Optional[str] = _spec("choice", choices=("constant", "linear_warmup_decay", "sqrt_decay_warmup"),
                                doc="learning-rate schedule (superb/benchmark/schedulers.py)")
    warmup_steps: Optional[int] = _spec("int", 0, doc="linear warm-up steps")


@dataclass
class FeaturizerConfig:
    layer: Optional[int] = _spec("int", optional=True, doc="one hidden state instead of the weighted sum (null: all)")
    layer_norm: Optional[bool] = _spec("bool", doc="layer-normalise each hidden state before the sum")


CACHE_MODES = ("auto", "frames", "off")
STORE_DTYPES = ("fp32", "fp16", "bf16")


@dataclass
class CacheConfig:
    """The feature store (:mod:`superb.benchmark.feature_store`); set by ``superb run`` flags."""

    features: Optional[str] = _spec("choice", optional=True, choices=CACHE_MODES,
                                    doc="auto: store upstream features (time-means for linear pooled heads), "
                                        "frames: store frames only, off: compute every step (null: auto)")
    max_gb: Optional[float] = _spec("float", 0, low_open=True, optional=True,
                                    doc="disk budget of the whole store in GB (null: unbounded)")
    dtype: Optional[str] = _spec("choice", optional=True, choices=STORE_DTYPES,
                                 doc="storage precision (fp32: exact; null: fp32)")
    dir: Optional[str] = _spec("path", optional=True, doc="the store folder (null: <cache dir>/features)")


#: top-level keys (not sections) checked here, by the same rules as the sections' fields
TOP_LEVEL = {
    "tensorboard": _spec("bool", optional=True,
                         doc="TensorBoard event files in <run>/tensorboard/ (null or absent: true)").metadata,
}

SECTIONS = {"runner": RunnerConfig, "optimizer": OptimizerConfig, "scheduler": SchedulerConfig, "batch": BatchConfig,
            "featurizer": FeaturizerConfig, "cache": CacheConfig}
#: sections a config may lack (then their defaults apply: constant schedule, feature store on)
OPTIONAL_SECTIONS = ("featurizer", "scheduler", "cache")


def _check_value(key: str, value: Any, meta: Mapping[str, Any]) -> Any:
    kind = meta["kind"]
    if value is None:
        if meta["optional"]:
            return None
        raise ConfigError(f"config key {key} must be set (got null)")
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key} must be true or false, got {value!r}")
        return value
    if kind == "rates":
        if not isinstance(value, (list, tuple)):
            return _check_value(key, value, {**meta, "kind": "float"})
        rates = [_check_value(f"{key}[{i}]", v, {**meta, "kind": "float"}) for i, v in enumerate(value)]
        if not rates or len(set(f"{r:g}" for r in rates)) != len(rates):
            raise ConfigError(f"config key {key} must list distinct rates (as %g), got {value!r}")
        return rates[0] if len(rates) == 1 else rates
    if kind == "path":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"config key {key} must be a folder path, got {value!r}")
        return value
    if kind == "choice":
        if value not in meta["choices"]:
            raise ConfigError(f"config key {key} must be one of {', '.join(meta['choices'])}, got {value!r}")
        return value
    if kind == "optimizer":
        import torch

        cls = getattr(torch.optim, value, None) if isinstance(value, str) else None
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise ConfigError(f"config key {key} must name a torch.optim optimiser (Adam, AdamW, SGD, ...), got {value!r}")
        return value
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        value = float(value)  # YAML 1.1 (PyYAML) reads ``1e-3`` as a string: take it as the number it is
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"config key {key} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"config key {key} must be finite, got {value!r}")
    if kind == "int":
        if float(value) != int(value):
            raise ConfigError(f"config key {key} must be a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    low = meta["low"]
    if low is not None and (value <= low if meta["low_open"] else value < low):
        bound = f"> {low:g}" if meta["low_open"] else f">= {low:g}"
        raise ConfigError(f"config key {key} must be {bound}, got {value!r}")
    return value


def validate_config(config: Dict[str, Any], trainable: bool = True) -> Dict[str, Any]:
    """Check every field of :data:`SECTIONS` in ``config``; returns normalised sections.

    For trainable tasks every field except the ``optional`` ones must be present; for tasks
    without training only the keys present are checked (``optimizer`` may be null). The keys of
    :data:`TOP_LEVEL` are checked when present (``tensorboard: yes`` is fine, ``tensorboard: 1``
    an error naming the key).
    """
    out: Dict[str, Any] = {}
    for key, meta in TOP_LEVEL.items():
        if key in config:
            out[key] = _check_value(key, config[key], meta)
    for section, cls in SECTIONS.items():
        values = config.get(section)
        if values is None and (not trainable or section in OPTIONAL_SECTIONS):
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"config section {section} must be a mapping, got {values!r}")
        checked = {}
        for f in dataclasses.fields(cls):
            key = f"{section}.{f.name}"
            if f.name not in values:
                if trainable and not f.metadata["optional"]:
                    raise ConfigError(f"config key {key} is missing ({f.metadata['doc']})")
                continue
            checked[f.name] = _check_value(key, values[f.name], f.metadata)
            if checked[f.name] is not None and values[f.name] != checked[f.name]:
                values[f.name] = checked[f.name]  # normalised in place: "1e-3" -> 0.001, 2.0 -> 2
        out[section] = cls(**checked)
    return out
