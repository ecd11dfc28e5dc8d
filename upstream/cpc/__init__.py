"""Modified CPC upstream (see :mod:`.model`); checkpoints: :mod:`.import_cpc_audio`.

Importing this package registers ``modified_cpc`` (alias ``cpc``).
"""
from __future__ import annotations

from ..family import Variant, register_family
from . import import_cpc_audio
from .import_cpc_audio import CPC_AUDIO_KEY_MAP, FORMATS, config_from_cpc_audio, describe, detect, load_cpc_audio
from .model import ENCODER_LAYERS, CPCConfig, CPCUpstream, frame_lengths

__all__ = ["CPC_AUDIO_KEY_MAP", "CPCConfig", "CPCUpstream", "ENCODER_LAYERS", "FORMATS", "config_from_cpc_audio",
           "describe", "detect", "frame_lengths", "load_cpc_audio"]

register_family(
    "cpc", CPCUpstream,
    [Variant("modified_cpc", "modified CPC: 5-conv encoder (strides 5,4,2,2,2) with channel norm + LSTM context "
             "network", layers="2", config=CPCConfig(), aliases=("cpc",))],
    formats=FORMATS, load=import_cpc_audio.load, detect=detect, describe=describe)
