"""Modified CPC (Rivière et al. 2020, "Unsupervised pretraining transfers well across languages").

Architecture (CPC_audio's ``cpc/model.py`` configuration names - facts only):

* encoder: five 1-D convolutions on the raw 16 kHz waveform (no normalisation of the wave),
  ``hiddenEncoder`` channels, kernels 10, 8, 4, 4, 4, strides 5, 4, 2, 2, 2, zero paddings
  3, 2, 1, 1, 1; each followed by a normalisation (``normMode``) and ReLU. ``layerNorm`` is
  CPC_audio's *channel norm*: per frame, ``(x - mean_c) / sqrt(var_c + 1e-5)`` over channels
  with the unbiased variance, then a per-channel affine. ``batchNorm`` uses its running
  statistics (inference), ``instanceNorm`` normalises every channel over the utterance's frames,
  ``ID`` is the identity;
* context network (``arMode``): ``nLevelsGRU`` layers of LSTM (default), GRU or RNN with
  ``hiddenGar`` units; ``cpc_mode='reverse'`` runs it right to left.

Hidden states (2; 10 ms, downsample rate 160): the encoder output and the context-network
output (what s3prl's hooks return).

Frames: each convolution maps ``n`` to ``floor((n + 2 p - k) / s) + 1``: 16,000 samples give 100
frames; the total stride is 160.

Batching: CPC_audio / s3prl run the convolutions on the zero-padded batch, so the frames of a
short utterance next to its end read the *next layer's padding*, which in a batch holds
activations of the padding rather than the zeros the utterance alone would get. We zero every
layer's frames beyond the utterance's valid length before the next convolution (and use only
valid frames for instance-norm statistics, and reverse each utterance within its own length), so
each utterance gets exactly what CPC_audio computes for it alone, whatever the batch.
CPC_audio's ``keepHidden`` (``samplingType='sequential'``) carries the recurrent state from one
batch to the next during training; extraction always starts from a zero state.

Checkpoints (:mod:`.import_cpc_audio`): CPC_audio's hub / s3prl format ``{'config': vars(args), 'weights': state_dict}``,
and CPC_audio training checkpoints ``checkpoint_N.pt`` (``{'gEncoder': state_dict,
'cpcCriterion', 'optimizer', 'best'}``) with ``checkpoint_args.json`` next to them. Weight names:
``gEncoder.conv{0..4}.*``, ``gEncoder.batchNorm{0..4}.*``, ``gAR.baseNet.*``; the
``cpcCriterion`` (prediction heads) is not used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import nn

from ..base import Upstream, UpstreamOutput, conv_output_lengths, valid_mask
from ..masking import masked_group_norm, zero_padding

#: (kernel, stride, padding) of the five encoder convolutions
ENCODER_LAYERS: Tuple[Tuple[int, int, int], ...] = ((10, 5, 3), (8, 4, 2), (4, 2, 1), (4, 2, 1), (4, 2, 1))

_NORM_MODES = ("layerNorm", "batchNorm", "instanceNorm", "ID")
_AR_MODES = ("LSTM", "GRU", "RNN")


@dataclass
class CPCConfig:
    """CPC_audio argument names. Defaults: CPC_audio's recommended (modified CPC) setup."""

    hiddenEncoder: int = 256
    hiddenGar: int = 256
    arMode: str = "LSTM"
    nLevelsGRU: int = 2
    normMode: str = "layerNorm"
    encoder_type: str = "cpc"
    cpc_mode: Optional[str] = None

    def validate(self, where: str) -> None:
        if self.encoder_type != "cpc":
            raise ValueError(f"{where}: encoder_type {self.encoder_type!r} is not supported (only 'cpc', the "
                             "convolutional encoder of modified CPC)")
        if self.normMode not in _NORM_MODES:
            raise ValueError(f"{where}: normMode {self.normMode!r} is not one of {_NORM_MODES}")
        if self.arMode not in _AR_MODES:
            raise ValueError(f"{where}: arMode {self.arMode!r} is not supported (supported: {_AR_MODES})")
        if self.cpc_mode not in (None, "none", "reverse"):
            raise ValueError(f"{where}: cpc_mode {self.cpc_mode!r} is not one of None, 'none', 'reverse'")


class ChannelNorm(nn.Module):
    """CPC_audio's channel norm over ``[B, C, T]``: per frame over channels, unbiased variance."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class _MaskedInstanceNorm(nn.InstanceNorm1d):
    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return masked_group_norm(x, lengths, x.shape[1], self.weight, self.bias, self.eps)


class _BatchNorm(nn.BatchNorm1d):
    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                        False, 0.0, self.eps)


class _Identity(nn.Module):
    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return x


def _norm(mode: str, channels: int) -> nn.Module:
    if mode == "layerNorm":
        return ChannelNorm(channels)
    if mode == "batchNorm":
        return _BatchNorm(channels)
    if mode == "instanceNorm":
        return _MaskedInstanceNorm(channels, affine=True)
    return _Identity()


def frame_lengths(wav_lens: torch.Tensor) -> torch.Tensor:
    """Valid frames after the five padded convolutions (effective kernel ``k - 2p``)."""
    return conv_output_lengths(wav_lens, [(k - 2 * p, s) for k, s, p in ENCODER_LAYERS])


class CPCUpstream(Upstream):
    """Modified CPC upstream (see module docstring)."""

    downsample_rate = 160

    def __init__(self, cfg: CPCConfig, where: str = "cpc config"):
        super().__init__()
        cfg.validate(where)
        self.config = cfg
        c = cfg.hiddenEncoder
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i, (k, s, p) in enumerate(ENCODER_LAYERS):
            self.convs.append(nn.Conv1d(1 if i == 0 else c, c, k, stride=s, padding=p))
            self.norms.append(_norm(cfg.normMode, c))
        rnn = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[cfg.arMode]
        self.ar = rnn(c, cfg.hiddenGar, num_layers=cfg.nLevelsGRU, batch_first=True)
        self.eval()

    @property
    def hidden_sizes(self) -> List[int]:
        return [self.config.hiddenEncoder, self.config.hiddenGar]

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        self.check_input(wavs, wav_lens)
        lengths = frame_lengths(wav_lens.cpu()).to(wavs.device)
        if int(lengths.min()) <= 0:
            raise ValueError(f"utterances shorter than one CPC frame in the batch: {wav_lens.tolist()} samples")
        x = zero_padding(wavs.float(), wav_lens).unsqueeze(1)
        n = wav_lens.to(wavs.device)
        for conv, norm, (k, s, p) in zip(self.convs, self.norms, ENCODER_LAYERS):
            n = torch.div(n + 2 * p - k, s, rounding_mode="floor") + 1
            x = torch.relu(norm(conv(x), n))
            x = zero_padding(x, n, time_dim=2)
        z = x.transpose(1, 2)  # [B, T, C]
        if self.config.cpc_mode == "reverse":
            c = _flip_valid(self.ar(_flip_valid(z, lengths))[0], lengths)
        else:
            c = self.ar(z)[0]
        return UpstreamOutput(hidden_states=[z, c], lengths=lengths.long())


def _flip_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse every utterance of ``[B, T, D]`` within its own valid frames."""
    T = x.shape[1]
    pos = torch.arange(T, device=x.device)[None, :]
    idx = torch.where(valid_mask(lengths, T), lengths[:, None] - 1 - pos, pos)
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
