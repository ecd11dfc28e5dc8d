"""wav2vec 2.0, HuBERT and data2vec audio upstreams.

Importing this package registers the upstreams ``wav2vec2``, ``wav2vec2_large``, ``hubert``,
``hubert_large``, ``data2vec`` and ``data2vec_large``. Each builds from a checkpoint (fairseq
``.pt``, s3prl converted ``.pt`` or a Hugging Face folder; see :mod:`.loading`) or, with
``random_init=True``, from the family's default configuration with random weights drawn from
torch's global RNG. Options override configuration fields (e.g. ``num_layers=2,
hidden_size=64``); an unknown option is an error that names it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..family import Variant, register_family
from .model import (
    PRESETS,
    UnknownOptionError,
    Wav2Vec2Config,
    Wav2Vec2Model,
    Wav2Vec2Upstream,
    build_config,
    normalize_waveforms,
)

__all__ = [
    "PRESETS",
    "UnknownOptionError",
    "Wav2Vec2Config",
    "Wav2Vec2Model",
    "Wav2Vec2Upstream",
    "build_config",
    "load_wav2vec2_family",
    "normalize_waveforms",
]

FORMATS = (
    "fairseq .pt (cfg dict or legacy args)",
    "s3prl converted .pt (task_cfg/model_cfg/model_weight)",
    "Hugging Face folder (config.json + model.safetensors or pytorch_model.bin)",
)

_DESCRIPTIONS = {
    "wav2vec2": "wav2vec 2.0 Base (12 layers, 768-d, group-norm CNN, post-LN)",
    "wav2vec2_large": "wav2vec 2.0 Large LV-60 / XLS-R style (24 layers, 1024-d, layer-norm CNN, layer-norm-first)",
    "hubert": "HuBERT Base (12 layers, 768-d, group-norm CNN, post-LN)",
    "hubert_large": "HuBERT Large (24 layers, 1024-d, layer-norm CNN, layer-norm-first)",
    "data2vec": "data2vec audio Base (12 layers, 768-d, layer-norm CNN, 5-layer conv positions, post-LN)",
    "data2vec_large": "data2vec audio Large (24 layers, 1024-d, layer-norm CNN, 5-layer conv positions, post-LN)",
}


def load_wav2vec2_family(preset: str, ckpt: Optional[Path], **options) -> Wav2Vec2Upstream:
    """Build preset ``preset`` with random weights (``ckpt is None``) or load ``ckpt``."""
    if ckpt is None:
        config = build_config(preset, **options)
        return Wav2Vec2Upstream(config)
    from .loading import load_upstream_checkpoint

    return load_upstream_checkpoint(Path(ckpt), expected_preset=preset, **options)


def _load(ckpt: Path, variant: Variant, **options) -> Wav2Vec2Upstream:
    return load_wav2vec2_family(variant.name, ckpt, **options)


def _inspect(path: Path):
    from .loading import inspect_wav2vec2  # reads the file; no model is built

    return inspect_wav2vec2(path)


def _configure(variant: Variant, options) -> Wav2Vec2Config:
    return build_config(variant.name, **options)  # unknown options: UnknownOptionError naming them


for _name, _config in PRESETS.items():
    register_family(_config.family, Wav2Vec2Upstream, [Variant(_name, _DESCRIPTIONS[_name], "L+1", _config)],
                    formats=FORMATS, load=_load, configure=_configure, inspector=_inspect)
