"""Registry of upstreams: ``build_upstream(name, ckpt=None, **options)``.

Each upstream family package registers its :class:`UpstreamSpec` objects when it is imported
(through :func:`superb.upstream.family.register_family`). The built-in packages are listed in
:data:`BUILTIN_MODULES` and imported on first use, so importing ``superb.upstream`` stays cheap.

Plug-ins: installed packages declare entry points in the group ``superb.upstreams``
(:data:`ENTRY_POINT_GROUP`). The object an entry point names may be an ``Upstream`` subclass
(registered under the entry point's name), an :class:`UpstreamSpec` (or a list of them), a
function returning those (or registering them itself and returning ``None``), or a module - e.g.
a whole upstream family package - whose import registers its upstreams
(:func:`~superb.upstream.family.register_family` or :func:`register_upstream`). A broken plug-in
never breaks the built-ins: it is reported as a warning, and again if its name is asked for.
Custom references (``file.py:Class``, ``module:Class``, ``hear:<module>``) are resolved by
:mod:`superb.upstream.custom`, which does not import this module.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .base import Upstream
from .custom import (CustomUpstreamError, check_upstream_class, class_spec_fields, custom_spec, instantiate,
                     is_custom_name, unknown_name_hint)
from .spec import UpstreamSpec

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


ENTRY_POINT_GROUP = "superb.upstreams"

#: entry point name -> why it failed to load
ENTRY_POINT_ERRORS: Dict[str, str] = {}
_entry_points_loaded = False

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
    load_entry_points()  # plug-ins: installed packages' `superb.upstreams` entry points


def list_upstreams() -> List[UpstreamSpec]:
    _load_builtins()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_spec(name: str) -> UpstreamSpec:
    # custom references (`path/file.py:Class`, `module:Class`, `hear:<module>`): superb.upstream.custom
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
            "(`superb list` describes them)." + _failed_plugin_hint(name) + unknown_name_hint(name, _failed(name))
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
    if getattr(spec.factory, "options_checked_by_config", False):
        return None  # superb.upstream.family: the configuration builder checks the names
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


# ---------------------------------------------------------------------------------------------
# entry points (plug-ins)
# ---------------------------------------------------------------------------------------------
def _entry_points():
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def load_entry_points(force: bool = False) -> List[str]:
    """Register the upstreams of installed plug-ins; returns the names registered now."""
    global _entry_points_loaded
    if _entry_points_loaded and not force:
        return []
    _entry_points_loaded = True
    added: List[str] = []
    seen = set()
    for ep in _entry_points():
        if ep.name in seen:
            continue
        seen.add(ep.name)
        where = f"entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP}"
        before = set(_REGISTRY)
        try:
            added.extend(_register_entry_point(ep, where, before))
        except Exception as exc:  # a broken plug-in must not break the built-ins
            ENTRY_POINT_ERRORS[ep.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"superb: skipping {where}: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
    return added


def _register_entry_point(ep, where: str, before) -> List[str]:
    obj = ep.load()
    specs: List[Any] = []
    if inspect.ismodule(obj):
        pass  # importing registered its upstreams (e.g. a family package calling register_family)
    elif inspect.isclass(obj):
        check_upstream_class(obj, where)
        cls = obj
        specs = [UpstreamSpec(
            name=ep.name.lower().replace("-", "_"),
            factory=lambda ckpt, _cls=cls, _w=where, **options: instantiate(_cls, ckpt, options, _w),
            description=((inspect.getdoc(cls) or "").strip().splitlines() or [f"plug-in {ep.value}"])[0],
            family="plugin", **class_spec_fields(cls))]
    elif isinstance(obj, UpstreamSpec):
        specs = [obj]
    elif callable(obj):
        result = obj()
        if isinstance(result, UpstreamSpec):
            specs = [result]
        elif result is not None:
            specs = list(result)
    else:
        raise CustomUpstreamError(f"{where} names a {type(obj).__name__}, not an Upstream class, spec, "
                                  "function or module")
    for spec in specs:
        if not isinstance(spec, UpstreamSpec):
            raise CustomUpstreamError(f"{where} returned {spec!r}, not an UpstreamSpec")
        if spec.name in _REGISTRY or spec.name in _ALIASES:
            if _REGISTRY.get(spec.name) is spec:
                continue
            raise CustomUpstreamError(f"{where}: upstream name {spec.name!r} is already registered")
        register_upstream(spec)
    return sorted(set(_REGISTRY) - before)


def _failed(name: str) -> Dict[str, str]:
    key = name.strip().lower().replace("-", "_")
    return {k: v for k, v in ENTRY_POINT_ERRORS.items() if k.lower().replace("-", "_") == key}


def _failed_plugin_hint(name: str) -> str:
    return "".join(f" The plug-in entry point {k!r} failed to load: {v}." for k, v in _failed(name).items())
