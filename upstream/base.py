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

from superb.downstream.audio import SAMPLE_RATE  # noqa: F401  (the one sample rate, defined by audio I/O)


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


def valid_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean mask ``[B, T]`` that is True on valid frames (``t < lengths[b]``); the one
    length mask of the toolkit (upstreams, heads and tasks all use it: "exact lengths" is this
    contract's convention)."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def lengths_to_padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean mask ``[B, T]`` that is True on padding positions (``~valid_mask``)."""
    return ~valid_mask(lengths, max_len)


class UndeclaredDownsampleRateError(NotImplementedError):
    """An :class:`Upstream` subclass that states no ``downsample_rate``."""

    def __init__(self, cls: type):
        self.cls = cls
        super().__init__(
            f"upstream class {cls.__module__}.{cls.__qualname__} does not state its downsample_rate: set the "
            "class attribute `downsample_rate = <16 kHz samples per output frame>` (e.g. 320 for 20 ms "
            "frames), set self.downsample_rate in __init__, or override the classmethod rate_for(config)"
        )


class _StatedRate:
    """``Upstream.downsample_rate`` until a subclass (class attribute) or an instance (set in
    ``__init__``) states it; reading it before that raises :class:`UndeclaredDownsampleRateError`."""

    def __get__(self, obj, owner):
        if obj is not None and "downsample_rate" in obj.__dict__:
            return obj.__dict__["downsample_rate"]
        raise UndeclaredDownsampleRateError(owner if obj is None else type(obj))

    def __set__(self, obj, value) -> None:
        obj.__dict__["downsample_rate"] = value


def stated_rate(cls: type):
    """The ``downsample_rate`` class attribute ``cls`` (or a base class) states, else ``None``."""
    for klass in cls.__mro__:
        value = klass.__dict__.get("downsample_rate")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


class Upstream(nn.Module):
    """Base class of every upstream.

    Subclasses state :attr:`downsample_rate` (a class attribute, or set in ``__init__`` when it
    depends on the configuration - then :meth:`rate_for` computes it from a configuration) and
    implement :meth:`forward` and :attr:`hidden_sizes`. ``num_layers`` is derived from
    ``hidden_sizes``. There is no default rate: reading it from a class that states none raises
    :class:`UndeclaredDownsampleRateError` naming the class.
    """

    #: samples of 16 kHz audio per output frame
    downsample_rate = _StatedRate()

    @classmethod
    def rate_for(cls, config=None) -> int:
        """The downsample rate of an instance built from ``config`` (registration reads it here).
        Default: the class attribute; classes whose rate depends on the configuration override it."""
        rate = stated_rate(cls)
        if rate is None:
            raise UndeclaredDownsampleRateError(cls)
        return rate

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
