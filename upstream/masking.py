"""Tensor helpers for padded batches with exact lengths: zeroing the padding, masked group
normalisation, per-utterance CMVN, padding a list and repeating frames.

The length mask itself is :func:`superb.upstream.base.valid_mask` (the one mask of
:mod:`superb.upstream`); everything here is batch-invariant: the valid frames of an utterance never
depend on the rest of the batch or on the values of the padding.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

from .base import valid_mask

__all__ = ["cmvn_unbiased", "masked_group_norm", "pad_list", "repeat_frames", "valid_mask", "zero_padding"]


def zero_padding(x: torch.Tensor, lengths: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
    """Set every position at or beyond ``lengths[b]`` along ``time_dim`` to zero."""
    mask = valid_mask(lengths.to(x.device), x.shape[time_dim])  # [B, T]
    shape = [1] * x.dim()
    shape[0] = x.shape[0]
    shape[time_dim] = x.shape[time_dim]
    return x * mask.view(shape).to(x.dtype)


def masked_group_norm(x: torch.Tensor, lengths: torch.Tensor, num_groups: int,
                      weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                      eps: float) -> torch.Tensor:
    """``GroupNorm`` of ``x [B, C, T]`` whose statistics use only the valid frames of each
    utterance (what ``F.group_norm`` gives for the utterance alone). Computed in float32;
    the biased variance, as ``nn.GroupNorm``."""
    B, C, T = x.shape
    dtype = x.dtype
    xf = x.float()
    mask = valid_mask(lengths.to(x.device), T).float()  # [B, T]
    g = xf.view(B, num_groups, C // num_groups, T)
    m = mask.view(B, 1, 1, T)
    count = (mask.sum(dim=1) * (C // num_groups)).clamp(min=1).view(B, 1, 1, 1)
    mean = (g * m).sum(dim=(2, 3), keepdim=True) / count
    var = (((g - mean) * m) ** 2).sum(dim=(2, 3), keepdim=True) / count
    out = ((g - mean) / torch.sqrt(var + eps)).view(B, C, T)
    if weight is not None:
        out = out * weight.float().view(1, C, 1)
    if bias is not None:
        out = out + bias.float().view(1, C, 1)
    return out.to(dtype)


def cmvn_unbiased(feats: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Per-utterance CMVN of ``[T, D]`` features: ``(x - mean) / (eps + std)``, unbiased std
    (s3prl's APC / Mockingjay convention)."""
    return (feats - feats.mean(dim=0, keepdim=True)) / (eps + feats.std(dim=0, keepdim=True))


def pad_list(feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Right-pad a list of ``[T_i, D]`` tensors with zeros to ``[B, max T, D]``."""
    return torch.nn.utils.rnn.pad_sequence(list(feats), batch_first=True)


def repeat_frames(feats: torch.Tensor, lengths: torch.Tensor, factor: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Repeat every frame ``factor`` times along time: ``[B, T, D] -> [B, T * factor, D]``.

    Frame-level tasks whose labels come at a finer rate than the upstream (BEST-RQ emits one
    frame per 40 ms, frame labels are often at 10 or 20 ms) can bring the features to the label
    rate this way: ``factor = upstream_rate // label_rate``; lengths are multiplied likewise
    (trim or pad the last frames to the label count afterwards).
    """
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"repeat_frames needs a positive integer factor, got {factor!r}")
    factor = int(factor)
    if factor == 1:
        return feats, lengths
    return feats.repeat_interleave(factor, dim=1), lengths * factor
