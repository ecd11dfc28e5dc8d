"""Utterance-level pooling: masked mean and SUPERB's pooled classification head (KS, SID, ER, IC)."""
from __future__ import annotations

import torch
from torch import nn

from superb.upstream.base import valid_mask


def masked_mean(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the valid frames of ``[B, T, D]`` features."""
    mask = valid_mask(lengths.to(feats.device), feats.shape[1]).to(feats.dtype)
    return (feats * mask.unsqueeze(-1)).sum(1) / lengths.clamp(min=1).to(feats.dtype).unsqueeze(-1)


class UtterancePooledHead(nn.Module):
    """SUPERB's utterance-level head: linear projector -> mean pooling -> linear classifier."""

    def __init__(self, input_dim: int, projector_dim: int, num_classes: int):
        super().__init__()
        self.projector = nn.Linear(input_dim, projector_dim)
        self.classifier = nn.Linear(projector_dim, num_classes)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classifier(masked_mean(self.projector(feats), lengths))
