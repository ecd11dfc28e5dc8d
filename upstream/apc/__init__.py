"""APC and VQ-APC upstreams (autoregressive predictive coding; see :mod:`.model`).

Importing this package registers ``apc`` and ``vq_apc``; both load s3prl's APC / VQ-APC files
(:mod:`.import_s3prl`) or, with ``random_init=True``, build :class:`APCConfig` defaults (VQ-APC: one
512-code group) with options applied.
"""
from __future__ import annotations

from ..family import Variant, register_family
from . import import_s3prl
from .import_s3prl import FORMATS, S3PRL_KEY_MAP, config_from_s3prl, detect, describe, load_s3prl
from .model import APCConfig, APCUpstream

__all__ = ["APCConfig", "APCUpstream", "FORMATS", "S3PRL_KEY_MAP", "config_from_s3prl", "detect", "describe",
           "load_s3prl"]

register_family(
    "apc", APCUpstream,
    [Variant("apc", "APC: 3-layer residual GRU (512) over Kaldi fbank 80 + CMVN", layers="N", config=APCConfig()),
     Variant("vq_apc", "VQ-APC: APC with a Gumbel VQ layer on the last GRU (states taken before quantisation)",
             layers="N", config=APCConfig(vq_codebook_size=(512,), vq_code_dim=(512,)))],
    formats=FORMATS, load=import_s3prl.load, detect=detect, describe=describe)
