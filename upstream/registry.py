"""Registry of upstreams: ``build_upstream(name, ckpt=None, **options)``.

Each upstream family module registers an :class:`UpstreamSpec` when it is imported. The
built-in modules are listed in :data:`BUILTIN_MODULES` and imported on first use, so importing
``superb.upstream`` stays cheap.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .base import Upstream

#: modules whose import registers built-in upstreams
BUILTIN_MODULES: Tuple[str, ...] = (
    "superb.upstream.baselines",
    "superb.upstream.wav2vec2",
    "superb.upstream.mockingjay",
    "superb.upstream.apc",
    "superb.upstream.cpc",
    "superb.upstream.wav2vec1",
    "superb.upstream.best_rq",
)


class UnknownUpstreamError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class MissingWeightsError(ValueError):
    """A pretrained upstream was asked for without weights and without ``random_init``."""


@dataclass
class UpstreamSpec:
    """How to build one named upstream.

    ``factory(ckpt, **options)`` returns an :class:`Upstream`; ``ckpt`` is ``None`` for a
    random-initialised (or parameter-free) model, else a :class:`pathlib.Path` that exists.
    """

    name: str
    factory: Callable[..., Upstream]
    description: str
    downsample_rate: int
    layers: str
    formats: Tuple[str, ...] = ()
    needs_weights: bool = True
    family: str = ""
    aliases: Tuple[str, ...] = field(default_factory=tuple)
    #: custom and plug-in upstreams: a checkpoint may be given or not (superb.upstream.custom)
    weights_optional: bool = False


_REGISTRY: Dict[str, UpstreamSpec] = {}
_ALIASES: Dict[str, str] = {}
_loaded = False


def register_upstream(spec: UpstreamSpec) -> UpstreamSpec:
    for key in (spec.name, *spec.aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"upstream name {key!r} is registered twice")
    _REGISTRY[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    # plug-ins: installed packages' `superb.upstreams` entry points (see superb.upstream.custom)
    from .custom import load_entry_points

    load_entry_points()


def list_upstreams() -> List[UpstreamSpec]:
    _load_builtins()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_spec(name: str) -> UpstreamSpec:
    # custom references (`path/file.py:Class`, `module:Class`, `hear:<module>`): superb.upstream.custom
    from .custom import custom_spec, is_custom_name, unknown_name_hint

    if is_custom_name(name):
        return custom_spec(name)
    _load_builtins()
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        choices = sorted([*_REGISTRY, *_ALIASES])
        close = difflib.get_close_matches(key, choices, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownUpstreamError(
            f"unknown upstream {name!r}.{hint} Known upstreams: {', '.join(sorted(_REGISTRY))} "
            "(`superb list` describes them)." + unknown_name_hint(name)
        )
    return _REGISTRY[key]


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_checkpoint(ckpt) -> Path:
    """Check that a checkpoint path exists; explain hub identifiers (nothing is downloaded)."""
    path = Path(os.path.expanduser(str(ckpt)))
    if path.exists():
        return path
    if _HUB_ID.match(str(ckpt)) and not str(ckpt).startswith((".", "/")):
        raise FileNotFoundError(
            f"upstream checkpoint {str(ckpt)!r} does not exist. It looks like a model-hub identifier: "
            "superb never downloads at run time. Download the model folder (config.json + weights) "
            "on a machine with network access, copy it here and pass its path."
        )
    raise FileNotFoundError(f"upstream checkpoint not found: {path}")


def build_upstream(name: str, ckpt=None, random_init: bool = False, **options) -> Upstream:
    """Build the upstream ``name``.

    Pretrained families (HuBERT, wav2vec 2.0, ...) need ``ckpt``; ``random_init=True`` builds the
    family's default architecture with random weights instead (a legitimate SUPERB baseline).
    Parameter-free baselines (``fbank``, ``mfcc``) take neither.
    """
    spec = get_spec(name)
    path = resolve_checkpoint(ckpt) if ckpt is not None else None
    if path is not None and random_init:
        raise ValueError("give either an upstream checkpoint or random_init, not both")
    if path is None and spec.needs_weights and not random_init:
        formats = "; ".join(spec.formats) if spec.formats else "see `superb list`"
        raise MissingWeightsError(
            f"upstream {spec.name!r} is a pretrained model and needs its weights: pass "
            f"--upstream-ckpt PATH (accepted: {formats}). superb never downloads weights. "
            "To benchmark the untrained architecture instead, pass --random-init."
        )
    if path is not None and not spec.needs_weights and not spec.weights_optional:
        raise ValueError(f"upstream {spec.name!r} has no weights; do not pass a checkpoint")
    _check_options(spec, options)
    model = spec.factory(path, **options)
    model.upstream_name = spec.name
    return model


def _named_parameters(func, skip_first: bool) -> Optional[List[str]]:
    """Keyword-usable parameter names of ``func``; ``None`` when it takes ``**kwargs`` or has no
    readable signature."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return None
    if skip_first and params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        params = params[1:]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def accepted_options(spec: UpstreamSpec) -> Optional[List[str]]:
    """The option names ``spec.factory`` accepts, when they can be read from signatures.

    The factory's own signature (after ``ckpt``) when it names its options; a factory of the form
    ``factory(ckpt, **options)`` that forwards to the one :class:`Upstream` class it closes over
    (``cls(**options)``, as the FBANK/MFCC baselines do) accepts that class's constructor
    arguments. ``None`` when neither tells (factories that pass ``**options`` on to loaders or
    config builders, which check the names themselves)."""
    names = _named_parameters(spec.factory, skip_first=True)
    if names is not None:
        return names
    try:
        closed = inspect.getclosurevars(spec.factory).nonlocals
    except (TypeError, ValueError):
        return None
    classes = [v for v in closed.values() if isinstance(v, type) and issubclass(v, Upstream)]
    if len(classes) != 1:
        return None
    return _named_parameters(classes[0], skip_first=False)


def _check_options(spec: UpstreamSpec, options: Dict[str, object]) -> None:
    """Unknown ``--upstream-option`` names are a ValueError naming them, the upstream and the
    accepted options -- checked before building, so a TypeError raised inside model code is
    never mistaken for a bad option (nor hidden)."""
    if not options:
        return
    accepted = accepted_options(spec)
    if accepted is None:
        return
    unknown = [k for k in options if k not in accepted]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, accepted, n=1)
            if close:
                hints.append(f"{k} -> {close[0]}?")
        hint = f" (did you mean {', '.join(hints)})" if hints else ""
        raise ValueError(
            f"upstream {spec.name!r} does not accept option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}{hint}; accepted options: {', '.join(accepted) or 'none'}"
        )
