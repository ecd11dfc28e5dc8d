"""wav2vec and vq-wav2vec upstreams (see :mod:`.model`); checkpoints: :mod:`.import_fairseq`.

Importing this package registers ``wav2vec`` (random init: fairseq's wav2vec large configuration)
and ``vq_wav2vec`` (random init: the released Gumbel configuration).
"""
from __future__ import annotations

import dataclasses

from ..family import Variant, register_family
from . import import_fairseq
from .import_fairseq import DROP, FAIRSEQ_KEY_MAP, FORMATS, config_from_fairseq, describe, detect, load_checkpoint
from .model import LEGACY_ARGS_DEFAULTS, Wav2VecConfig, Wav2VecUpstream

__all__ = ["DROP", "FAIRSEQ_KEY_MAP", "FORMATS", "LEGACY_ARGS_DEFAULTS", "Wav2VecConfig", "Wav2VecUpstream",
           "config_from_fairseq", "describe", "detect", "load_checkpoint"]

#: the released vq-wav2vec (gumbel) configuration
VQ_WAV2VEC_CONFIG = dataclasses.replace(Wav2VecConfig(), activation="gelu", vq_type="gumbel", vq_groups=2,
                                        vq_depth=2, combine_groups=True, vq_vars=320)

register_family(
    "wav2vec", Wav2VecUpstream,
    [Variant("wav2vec", "wav2vec (large): 8-conv extractor + 12 causal aggregator convs; states z, aggregator "
             "conv inputs, c", layers="N_agg+1", config=Wav2VecConfig()),
     Variant("vq_wav2vec", "vq-wav2vec (gumbel or k-means quantiser before the aggregator); states as wav2vec, "
             "z before quantisation", layers="N_agg+1", config=VQ_WAV2VEC_CONFIG)],
    formats=FORMATS, load=import_fairseq.load, detect=detect, describe=describe)
