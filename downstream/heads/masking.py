"""STFT masking: the SE/SS mask network, its STFT settings, mask targets and the uPIT loss.

Head (s3prl v0.4.18 ``enhancement_stft`` / ``separation_stft`` ``SepRNN``; facts only): stacked
bidirectional LSTM -> one linear layer per output source over the ``n_fft/2 + 1`` STFT bins with
a ReLU -> masks on the mixture's STFT magnitude. Targets (``mask_type``): ``NPSM`` (non-negative
phase-sensitive, the default), ``PSM``, ``AM``; with several sources the loss is
utterance-level permutation invariant (:func:`upit_mse`).
"""
from __future__ import annotations

import itertools
from typing import List, Sequence

import torch
from torch import nn

from superb.upstream.base import valid_mask

MASK_TYPES = ("NPSM", "PSM", "AM")


class StftConfig:
    def __init__(self, n_fft: int, win_length: int, hop: int):
        self.n_fft, self.win_length, self.hop = int(n_fft), int(win_length), int(hop)
        if self.hop <= 0 or self.win_length > self.n_fft:
            raise ValueError(f"invalid STFT settings: n_fft {n_fft}, win_length {win_length}, hop {hop}")

    @property
    def num_bins(self) -> int:
        return self.n_fft // 2 + 1

    def frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop

    def window(self, device) -> torch.Tensor:
        return torch.hann_window(self.win_length, device=device)

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """``[N]`` float -> complex ``[F, frames(N)]``."""
        return torch.stft(wav.float(), self.n_fft, self.hop, self.win_length, self.window(wav.device),
                          center=True, return_complex=True)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop, self.win_length, self.window(spec.device), center=True,
                           length=length)


class MaskNet(nn.Module):
    """Stacked (bi)LSTM over the aligned features -> ReLU masks, one per output source."""

    def __init__(self, input_dim: int, num_bins: int, num_outputs: int, hidden_size: int, num_layers: int,
                 dropout: float, bidirectional: bool = True):
        super().__init__()
        self.rnn = nn.LSTM(input_dim, hidden_size, num_layers=num_layers, batch_first=True,
                           bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        out = hidden_size * (2 if bidirectional else 1)
        self.outputs = nn.ModuleList([nn.Linear(out, num_bins) for _ in range(num_outputs)])

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[B, T, D]`` -> masks ``[B, S, T, F]`` (padded frames hold garbage; callers mask)."""
        packed = nn.utils.rnn.pack_padded_sequence(feats, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        x, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=feats.shape[1])
        x = self.dropout(x)
        return torch.stack([torch.relu(layer(x)) for layer in self.outputs], dim=1)


def mask_targets(mix: torch.Tensor, refs: Sequence[torch.Tensor], mask_type: str) -> List[torch.Tensor]:
    """Target magnitudes of each reference STFT given the mixture STFT (complex ``[F, T]``)."""
    out = []
    for ref in refs:
        mag = ref.abs()
        if mask_type == "AM":
            out.append(mag)
            continue
        psm = mag * torch.cos(torch.angle(ref) - torch.angle(mix))
        out.append(psm.clamp(min=0.0) if mask_type == "NPSM" else psm)
    return out


def upit_mse(est: torch.Tensor, targets: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of the minimum over permutations of the squared error.

    ``est`` and ``targets`` are ``[B, S, T, F]``; frames past ``frames[b]`` are ignored. The caller
    divides by the total number of frames."""
    b, s, t, _ = est.shape
    valid = valid_mask(frames.to(est.device), t).to(est.dtype)  # [B, T]
    per_pair = ((est[:, :, None] - targets[:, None, :]) ** 2).sum(-1)  # [B, S_est, S_ref, T]
    per_pair = (per_pair * valid[:, None, None, :]).sum(-1)  # [B, S, S]
    perms = list(itertools.permutations(range(s)))
    totals = torch.stack([sum(per_pair[:, p[k], k] for k in range(s)) for p in perms], dim=1)  # [B, P]
    return totals.min(dim=1).values.sum()
