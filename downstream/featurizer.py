"""The SUPERB featurizer: a learnable softmax-weighted sum of an upstream's hidden states.

One scalar per layer, initialised to zero (so the initial weights are uniform), normalised with a
softmax and trained jointly with the downstream head (SUPERB, arXiv 2105.01051 §3). Optionally
each layer first goes through a non-affine layer norm over its feature dimension (off in SUPERB).
With ``layer=N`` a single hidden state is used instead (negative N counts from the last layer).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Featurizer(nn.Module):
    def __init__(self, hidden_sizes: Sequence[int], layer: Optional[int] = None, layer_norm: bool = False):
        super().__init__()
        hidden_sizes = list(hidden_sizes)
        if not hidden_sizes:
            raise ValueError("the upstream declares no hidden states")
        self.num_layers = len(hidden_sizes)
        self.layer_norm = bool(layer_norm)
        if layer is not None:
            if not -self.num_layers <= int(layer) < self.num_layers:
                raise ValueError(
                    f"featurizer.layer={layer} is out of range: the upstream has {self.num_layers} "
                    f"hidden states (valid: 0..{self.num_layers - 1}, or negative from the end)"
                )
            layer = int(layer) % self.num_layers
            self.output_dim = hidden_sizes[layer]
        else:
            if len(set(hidden_sizes)) != 1:
                raise ValueError(
                    f"a weighted sum needs equal hidden sizes, got {hidden_sizes}; pick one layer with "
                    "featurizer.layer=N"
                )
            self.output_dim = hidden_sizes[0]
        self.layer = layer
        # Zeros -> uniform softmax weights. Kept (and saved) even for single-layer selection.
        self.weights = nn.Parameter(torch.zeros(self.num_layers), requires_grad=layer is None)

    def layer_weights(self) -> List[float]:
        """The normalised weight of every layer (one-hot when a single layer is selected)."""
        if self.layer is not None:
            return [1.0 if i == self.layer else 0.0 for i in range(self.num_layers)]
        return F.softmax(self.weights.detach().float(), dim=0).tolist()

    def _norm(self, h: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(h, h.shape[-1:]) if self.layer_norm else h

    def forward(self, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(hidden_states) != self.num_layers:
            raise ValueError(
                f"featurizer built for {self.num_layers} hidden states got {len(hidden_states)}"
            )
        if self.layer is not None:
            return self._norm(hidden_states[self.layer])
        stacked = torch.stack([self._norm(h) for h in hidden_states], dim=0)  # [L, B, T, D]
        norm_weights = F.softmax(self.weights, dim=0).to(stacked.dtype)
        return (norm_weights.view(-1, 1, 1, 1) * stacked).sum(dim=0)
