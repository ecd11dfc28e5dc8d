"""Mockingjay and TERA upstreams (see :mod:`.model`); checkpoints: :mod:`.import_s3prl`.

Importing this package registers ``mockingjay`` (random init: 12 layers) and ``tera`` (random
init: 3 layers); options override :class:`MockingjayConfig` fields.
"""
from __future__ import annotations

from ..family import Variant, register_family
from . import import_s3prl
from .import_s3prl import (FORMATS, S3PRL_ALIASES, S3PRL_KEY_MAP, config_from_s3prl, convert_s3prl_state, describe,
                           detect, load_s3prl_native)
from .model import MockingjayConfig, MockingjayUpstream, sinusoid_table

__all__ = ["FORMATS", "MockingjayConfig", "MockingjayUpstream", "S3PRL_ALIASES", "S3PRL_KEY_MAP",
           "config_from_s3prl", "convert_s3prl_state", "describe", "detect", "load_s3prl_native", "sinusoid_table"]

register_family(
    "mockingjay", MockingjayUpstream,
    [Variant("mockingjay", "Mockingjay: BERT-style transformer over log-mel (random init: 12 layers, 768-d, "
             "post-LN)", layers="L+1", config=MockingjayConfig(num_layers=12)),
     Variant("tera", "TERA: transformer encoder over log-mel, time/freq/magnitude alteration (random init: "
             "3 layers)", layers="L+1", config=MockingjayConfig(num_layers=3))],
    formats=FORMATS, load=import_s3prl.load, detect=detect, describe=describe)
