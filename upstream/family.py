"""``register_family``: the one way an upstream family registers its upstreams.

A family (a package ``superb/upstream/<family>/`` in-tree, or any importable package of a plug-in)
has a model class (an :class:`~superb.upstream.Upstream` subclass built from a configuration
dataclass) and, for pretrained models, a checkpoint import module. Its ``__init__.py`` calls::

    register_family(
        "apc", APCUpstream,
        [Variant("apc", "APC: ...", layers="N", config=APCConfig()),
         Variant("vq_apc", "VQ-APC: ...", layers="N", config=APCConfig(vq_codebook_size=(512,), ...))],
        formats=FORMATS, load=import_s3prl.load, detect=import_s3prl.detect, describe=import_s3prl.describe)

and everything else is derived:

* **factory** - ``ckpt=None``: ``model(config_from_options(type(config), config, options))``
  (random init; ``configure(variant, options)`` replaces that step), or ``model(**options)`` for
  a variant without configuration (parameter-free upstreams such as FBANK); with a checkpoint:
  ``load(path, variant, **options)``;
* **downsample rate** - ``model.rate_for(variant.config)``: stated once, in the model class (a class
  attribute, or a ``rate_for`` classmethod when it depends on the configuration); a class that
  states none is an error naming it;
* **inspector** - ``superb inspect`` support from ``detect(obj)`` / ``describe(obj)`` on the
  safely loaded file (or a ready ``inspector(path)``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple, Type

from .base import Upstream
from .inspection import family_inspector, register_inspector
from .options import config_from_options
from .registry import UpstreamSpec, register_upstream

__all__ = ["Variant", "register_family"]


@dataclass(frozen=True)
class Variant:
    """One registered name of a family: its description, how many hidden states it has (``layers``,
    e.g. ``"L+1"``), its random-init configuration and its aliases."""

    name: str
    description: str
    layers: str
    config: Any = None
    aliases: Tuple[str, ...] = field(default_factory=tuple)


def register_family(family: str, model: Type[Upstream], variants: Sequence[Variant], *,
                    formats: Sequence[str] = (), load: Optional[Callable[..., Upstream]] = None,
                    configure: Optional[Callable[[Variant, Mapping[str, Any]], Any]] = None,
                    detect: Optional[Callable[[Any], bool]] = None,
                    describe: Optional[Callable[[Any], Mapping[str, Any]]] = None,
                    inspector: Optional[Callable[[Path], Any]] = None,
                    needs_weights: Optional[bool] = None) -> List[UpstreamSpec]:
    """Register every variant of ``family`` (see the module docstring); returns the specs.

    ``load(path, variant, **options)`` reads a checkpoint (``None``: the family has no weights).
    ``needs_weights`` defaults to ``load is not None``."""
    if not (isinstance(model, type) and issubclass(model, Upstream)):
        raise TypeError(f"register_family({family!r}): {model!r} is not an Upstream subclass")
    if needs_weights is None:
        needs_weights = load is not None
    rates = [model.rate_for(variant.config) for variant in variants]  # a class stating none fails here
    if inspector is None and detect is not None and describe is not None:
        inspector = family_inspector(detect, describe, formats)
    if inspector is not None:
        register_inspector(inspector)
    specs = []
    for variant, rate in zip(variants, rates):
        specs.append(register_upstream(UpstreamSpec(
            name=variant.name, factory=_factory(model, variant, load, configure),
            description=variant.description, downsample_rate=rate,
            layers=variant.layers, formats=tuple(formats), needs_weights=needs_weights, family=family,
            aliases=tuple(variant.aliases))))
    return specs


def _factory(model: Type[Upstream], variant: Variant, load, configure):
    if variant.config is None and configure is None:
        # the constructor takes the options: registry.accepted_options reads its signature
        def factory(ckpt: Optional[Path] = None, **options) -> Upstream:
            if ckpt is not None:
                return load(Path(ckpt), variant, **options)
            return model(**options)
    else:
        def factory(ckpt: Optional[Path] = None, **options) -> Upstream:
            if ckpt is not None:
                return load(Path(ckpt), variant, **options)
            if configure is not None:
                return model(configure(variant, options))
            return model(config_from_options(type(variant.config), variant.config, options, "random-init"))

        factory.options_checked_by_config = True  # the configuration builder names unknown options
    factory.__name__ = f"build_{variant.name}"
    return factory
