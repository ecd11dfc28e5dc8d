"""Building blocks shared by the objectives that pretrain a wav2vec 2.0-family encoder
(``wav2vec2``, ``hubert``, ``data2vec``, ``vicreg``): the waveform as the loop's "features",
span masking, the masked forward and the tiny architecture.

**Waveform frames.** The shared loop crops and pads per-frame features. These objectives learn
from the waveform, so :func:`waveform_frames` hands the loop the waveform cut into rows of
``hop`` samples (320: the CNN's stride), ``[n // hop, hop]``; the loop's ``max_frames`` crop is then
a crop of ``max_frames * hop`` samples, and :func:`frames_to_waveform` turns a padded batch of
rows back into ``[B, T * hop]`` waveforms with their lengths in samples. Samples past the last
whole row (< 20 ms) are dropped.

**Span masking** (:func:`span_mask`): the wav2vec 2.0 rule (Baevski et al. 2020, sec. 3.2 and
fairseq's ``compute_mask_indices``, described, not copied): per utterance of ``T`` valid frames,
``int(mask_prob * T / span + u)`` starts (``u`` uniform in [0, 1): probabilistic rounding), at
least ``min_masks``, drawn without replacement from ``0 .. T - span``; every start masks ``span``
frames; overlapping spans merge (so fewer than ``mask_prob * T`` frames may be masked, as in
fairseq). Unlike fairseq's batched version, utterances keep their own numbers of masked frames
(fairseq trims every row of a batch to the smallest count); nothing depends on the batch.

**Masked forward** (:func:`masked_forward`): CNN (:meth:`Wav2Vec2Model.extract`) -> feature
projection -> masked frames replaced by the learned ``mask_emb`` vector -> transformer
(:meth:`Wav2Vec2Model.encode`). It also returns the unmasked CNN features (wav2vec 2.0's
quantizer input) and the frame mask.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from ..wav2vec2.model import PRESETS, ConvFrames, Wav2Vec2Config, Wav2Vec2Model

#: samples per row of the loop's "features" (the wav2vec 2.0 CNN's total stride)
HOP = 320
#: the tiny CNN: 4 layers, 128 channels, total stride 320 (5 * 4 * 4 * 4), a receptive field of
#: 10 + 7*5 + 3*20 + 3*80 = 345 samples; trained in minutes on 2 CPU cores
TINY_CONV_LAYERS = ((128, 10, 5), (128, 8, 4), (128, 4, 4), (128, 4, 4))


def fairseq_has_post_extract_proj(config: Wav2Vec2Config) -> bool:
    """Whether fairseq's model of ``config.family`` has the CNN -> transformer projection
    (``post_extract_proj``): data2vec audio always builds it; wav2vec 2.0 and HuBERT only when the
    CNN width differs from ``hidden_size`` (s3prl 0.4.18's copies of the fairseq models)."""
    return config.family == "data2vec" or config.conv_layers[-1][0] != config.hidden_size


def tiny_config(family: str, **overrides) -> Wav2Vec2Config:
    """A small encoder of ``family`` (``wav2vec2``, ``hubert`` or ``data2vec``): the family's Base
    layout (norms, positional convolution kind, and ``post_extract_proj`` as fairseq's model of the
    family has it: :func:`fairseq_has_post_extract_proj`) at 4 CNN layers of 128 channels, 4
    transformer layers of 128 (4 heads, FFN 512); for tests and the mini-corpus ranking runs."""
    base = PRESETS[family]
    fields = dict(conv_layers=TINY_CONV_LAYERS, hidden_size=128, num_layers=4, num_heads=4, ffn_dim=512,
                  pos_conv_kernel=32 if base.pos_conv_depth == 1 else 5, pos_conv_groups=8)
    fields.update(overrides)
    config = base.replace(**fields)
    if "post_extract_proj" not in overrides:
        config = config.replace(post_extract_proj=fairseq_has_post_extract_proj(config))
    return config


def waveform_frames(wavs: torch.Tensor, wav_lens: torch.Tensor, hop: int = HOP) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[B, N]`` waveforms -> ``([B, N // hop, hop], lengths // hop)`` (the loop's features)."""
    n = (wavs.shape[1] // hop) * hop
    return wavs[:, :n].reshape(wavs.shape[0], n // hop, hop).float(), wav_lens // hop


def frames_to_waveform(rows: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The inverse of :func:`waveform_frames`: ``[B, T, hop]`` -> ``([B, T * hop], lengths * hop)``."""
    B, T, hop = rows.shape
    return rows.reshape(B, T * hop), lengths * hop


def span_mask(lengths: torch.Tensor, num_frames: int, mask_prob: float, span: int, generator: torch.Generator,
              min_masks: int = 2) -> torch.Tensor:
    """``[B, num_frames]`` bool, True on masked frames (the rule of the module docstring); frames
    at or past ``lengths[b]`` are never masked."""
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"span_mask: mask_prob must be in [0, 1], got {mask_prob}")
    if span < 1:
        raise ValueError(f"span_mask: span must be >= 1, got {span}")
    mask = torch.zeros(len(lengths), num_frames, dtype=torch.bool)
    for b, length in enumerate(lengths.tolist()):
        length = min(int(length), num_frames)
        starts_available = length - span + 1
        if starts_available <= 0:
            continue
        u = float(torch.rand((), generator=generator))
        count = max(int(min_masks), int(mask_prob * length / span + u))
        count = min(count, starts_available)
        starts = torch.randperm(starts_available, generator=generator)[:count]
        for s in starts.tolist():
            mask[b, s:s + span] = True
    return mask


@dataclass
class MaskedOutput:
    """:func:`masked_forward`'s result: every hidden state (as the upstream returns them), the CNN
    frames (``frames.features``: the unmasked CNN output, ``frames.lengths``), the projected
    unmasked frames (``projected``) and the frame ``mask`` (True: replaced by ``mask_emb``)."""

    states: List[torch.Tensor]
    frames: ConvFrames
    projected: torch.Tensor
    mask: torch.Tensor


def masked_forward(model: Wav2Vec2Model, wavs: torch.Tensor, wav_lens: torch.Tensor,
                   mask: Optional[torch.Tensor], mask_emb: Optional[torch.Tensor]) -> MaskedOutput:
    """CNN -> projection -> ``mask_emb`` at ``mask`` -> transformer. ``mask`` is ``[B, T']`` over
    the CNN frames (None: no masking, the teacher's view). ``wavs`` as the upstream feeds them:
    when ``model.config.normalize`` is set, normalise first
    (:func:`superb.upstream.wav2vec2.normalize_waveforms`), as the upstream does."""
    frames = model.extract(wavs, wav_lens)
    projected = model.feature_projection(frames.features)
    x = projected
    if mask is not None:
        mask = mask[:, : x.shape[1]].to(x.device)
        x = torch.where(mask[..., None], mask_emb.to(x.dtype).expand_as(x), x)
    else:
        mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
    return MaskedOutput(model.encode(x, frames), frames, projected, mask)


__all__ = ["HOP", "MaskedOutput", "TINY_CONV_LAYERS", "frames_to_waveform", "masked_forward", "span_mask",
           "tiny_config", "waveform_frames"]
