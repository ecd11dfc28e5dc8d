"""Upstream models: frozen speech encoders that expose all their hidden states.

``build_upstream(name, ckpt=None, random_init=False, **options)`` builds one by name;
``list_upstreams()`` describes all registered ones. See :mod:`superb.upstream.base` for the
contract every upstream follows, :func:`register_family` (:mod:`superb.upstream.family`) for how a
family registers its upstreams, and ``docs/adding-an-upstream.md`` for adding one.
"""
from .base import (SAMPLE_RATE, UndeclaredDownsampleRateError, Upstream, UpstreamOutput, conv_output_lengths,
                   lengths_to_padding_mask, valid_mask)
from .family import Variant, register_family
from .registry import (
    MissingWeightsError,
    UnknownUpstreamError,
    UpstreamSpec,
    build_upstream,
    get_spec,
    list_upstreams,
    register_upstream,
)

__all__ = [
    "SAMPLE_RATE",
    "Upstream",
    "UpstreamOutput",
    "UpstreamSpec",
    "MissingWeightsError",
    "UnknownUpstreamError",
    "UndeclaredDownsampleRateError",
    "Variant",
    "build_upstream",
    "conv_output_lengths",
    "get_spec",
    "lengths_to_padding_mask",
    "list_upstreams",
    "register_family",
    "register_upstream",
    "valid_mask",
]
