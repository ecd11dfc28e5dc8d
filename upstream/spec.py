"""The description of one registered upstream (:class:`UpstreamSpec`), shared by
:mod:`superb.upstream.registry`, :mod:`superb.upstream.custom` and :mod:`superb.upstream.family`
(it imports none of them, so they import each other in one direction only)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Tuple

from .base import Upstream

__all__ = ["UpstreamSpec"]


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
