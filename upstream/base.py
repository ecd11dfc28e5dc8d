"""The upstream contract.

An *upstream* is a frozen speech model. Every upstream in superb is an ``nn.Module`` subclass of
:class:`Upstream` whose ``forward`` takes a padded batch of 16 kHz waveforms and their exact
lengths and returns **all** of its hidden states together with the exact number of valid frames
of every utterance:

    out = upstream(wavs, wav_lens)          # wavs: FloatTensor[B, T], wav_lens: LongTensor[B]
    out.hidden_states                       # list of FloatTensor[B, T', D_l], one per layer
    out.lengths                             # LongTensor[B], valid frames of each utterance

Frame counts come from the architecture's own arithmetic (convolution kernel/stride, STFT
window/hop), never from trimming to the shortest sequence. ``downsample_rate`` is the number of
input samples per output frame (160 = 10 ms, 320 = 20 ms at 16 kHz).

Each upstream states ``num_layers`` (the number of hidden states it returns) and ``hidden_sizes``
(their feature dimensions). Frames beyond ``lengths[b]`` are padding: their values are undefined
and every downstream stage must ignore them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from torch import nn

SAMPLE_RATE = 16000


@dataclass
class UpstreamOutput:
    """What an upstream returns: every hidden state and the exact valid frame counts."""

    hidden_states: List[torch.Tensor]
    lengths: torch.Tensor

    def __post_init__(self) -> None:
        if not self.hidden_states:
            raise ValueError("UpstreamOutput.hidden_states is empty: an upstream returns at least one layer")
        if self.lengths.dtype != torch.long or self.lengths.dim() != 1:
            raise ValueError(
                f"UpstreamOutput.lengths must be a 1-D LongTensor, got {self.lengths.dtype} "
                f"with shape {tuple(self.lengths.shape)}"
            )


def conv_output_lengths(lengths: torch.Tensor, layers) -> torch.Tensor:
    """Valid output frames after a stack of unpadded 1-D convolutions.

    ``layers`` is an iterable of ``(kernel_size, stride)``; each layer maps ``n`` samples to
    ``floor((n - kernel) / stride) + 1`` frames (0 when ``n < kernel``).
    """
    out = lengths.clone().long()
    for kernel, stride in layers:
        out = torch.div(out - kernel, stride, rounding_mode="floor") + 1
        out = out.clamp(min=0)
    return out


def lengths_to_padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean mask ``[B, T]`` that is True on padding positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) >= lengths.unsqueeze(1)


class Upstream(nn.Module):
    """Base class of every upstream.

    Subclasses set :attr:`downsample_rate` and implement :meth:`forward` and
    :attr:`hidden_sizes`. ``num_layers`` is derived from ``hidden_sizes``.
    """

    #: samples of 16 kHz audio per output frame
    downsample_rate: int = 160
    sample_rate: int = SAMPLE_RATE

    @property
    def hidden_sizes(self) -> List[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def num_layers(self) -> int:
        return len(self.hidden_sizes)

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def check_input(wavs: torch.Tensor, wav_lens: torch.Tensor) -> None:
        """Validate the ``(wavs, wav_lens)`` pair every upstream receives."""
        if wavs.dim() != 2:
            raise ValueError(f"wavs must be [B, T] mono 16 kHz audio, got shape {tuple(wavs.shape)}")
        if wav_lens.dim() != 1 or wav_lens.shape[0] != wavs.shape[0]:
            raise ValueError(
                f"wav_lens must be [B] with B={wavs.shape[0]}, got shape {tuple(wav_lens.shape)}"
            )
        if int(wav_lens.max()) > wavs.shape[1] or int(wav_lens.min()) <= 0:
            raise ValueError(
                f"wav_lens must lie in 1..{wavs.shape[1]}, got {wav_lens.tolist()}"
            )
