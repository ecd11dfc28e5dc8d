"""CTC over characters: the ASR character vocabulary, SpecAugment and the BiLSTM CTC head.

Shared by ASR (the head as is), SF (the head over characters plus slot tags) and OOD-ASR (the head
over a corpus-built vocabulary). The vocabulary is LibriSpeech's alphabet: ``<blank>``, ``|``
(word boundary), apostrophe and A-Z.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn


BLANK = "<blank>"
VOCAB = (BLANK, "|", "'") + tuple(chr(c) for c in range(ord("A"), ord("Z") + 1))
CHAR_TO_ID = {c: i for i, c in enumerate(VOCAB)}


def encode_transcript(text: str, where: str) -> List[int]:
    ids = []
    for ch in text:
        key = "|" if ch == " " else ch
        if key not in CHAR_TO_ID or key == BLANK:
            raise ValueError(f"{where}: character {ch!r} is outside the ASR vocabulary (A-Z, apostrophe, space)")
        ids.append(CHAR_TO_ID[key])
    return ids


def decode_ids(ids: Sequence[int]) -> str:
    """Greedy CTC collapse: merge repeats, drop blanks, ``|`` -> space."""
    out, prev = [], None
    for i in ids:
        if i != prev and i != 0:
            out.append(" " if VOCAB[i] == "|" else VOCAB[i])
        prev = i
    return " ".join("".join(out).split())


class SpecAugment(nn.Module):
    """Random time and frequency masks on ``[B, T, D]`` features (training only)."""

    def __init__(self, num_time_masks=2, max_time_width=40, num_freq_masks=4, max_freq_width=50):
        super().__init__()
        self.num_time_masks, self.max_time_width = num_time_masks, max_time_width
        self.num_freq_masks, self.max_freq_width = num_freq_masks, max_freq_width

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return feats
        feats = feats.clone()
        dim = feats.shape[-1]
        for b, n in enumerate(lengths.tolist()):
            for _ in range(self.num_time_masks):
                w = int(torch.randint(0, self.max_time_width + 1, ()))
                if 0 < w < n:
                    t0 = int(torch.randint(0, n - w + 1, ()))
                    feats[b, t0:t0 + w] = 0
            for _ in range(self.num_freq_masks):
                w = int(torch.randint(0, min(self.max_freq_width, dim - 1) + 1, ()))
                if w > 0:
                    f0 = int(torch.randint(0, dim - w + 1, ()))
                    feats[b, :, f0:f0 + w] = 0
        return feats


class RNNCTCHead(nn.Module):
    """Projector -> stacked bidirectional LSTMs (packed, so padding never leaks) -> linear."""

    def __init__(self, input_dim, vocab_size, projector_dim, rnn_dim, rnn_layers, dropout, specaug=None):
        super().__init__()
        self.specaug = SpecAugment(**specaug) if specaug else None
        self.projector = nn.Linear(input_dim, projector_dim)
        self.rnns = nn.ModuleList()
        in_dim = projector_dim
        for _ in range(rnn_layers):
            self.rnns.append(self.make_rnn(in_dim, rnn_dim))
            in_dim = 2 * rnn_dim
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(in_dim, vocab_size)

    def make_rnn(self, input_dim: int, hidden: int) -> nn.Module:
        return nn.LSTM(input_dim, hidden, batch_first=True, bidirectional=True)

    def run_rnn(self, rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = rnn(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    def project(self, feats: torch.Tensor) -> torch.Tensor:
        return self.projector(feats)

    def forward(self, feats, lengths):
        if self.specaug is not None:
            feats = self.specaug(feats, lengths)
        x = self.project(feats)
        for rnn in self.rnns:
            x = self.dropout(self.run_rnn(rnn, x, lengths))
        return self.output(x).float().log_softmax(-1)
