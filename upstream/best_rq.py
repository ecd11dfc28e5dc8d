"""BEST-RQ: a Conformer trained with a BERT-style random-projection quantizer (Chiu et al. 2022).

**Weights.** Google released neither code nor weights for BEST-RQ. This module loads the open
SpeechBrain implementation (Whetten et al. 2024, recipe ``LibriSpeech/self-supervised-learning/
BEST-RQ``, speechbrain 1.x): a SpeechBrain checkpoint folder ``CKPT+<date>/`` holding
``CKPT.yaml``, ``model.ckpt`` (the CNN front end and the Conformer), ``normalize.ckpt``,
``quantizer.ckpt`` and ``linear.ckpt`` - and superb's own single-file format (see
:func:`save_checkpoint`). Numbers obtained with either are numbers of *SpeechBrain's* BEST-RQ, not
of Google's models.

Architecture (SpeechBrain's modules and the recipe's hyper-parameters; facts only, our code):

* features: 80 log-mel filterbanks (``speechbrain.lobes.features.Fbank``: centred STFT with
  zero padding, Hamming window 25 ms, hop 10 ms, power spectrum, SpeechBrain's triangular mel
  filters, ``10 log10(max(x, 1e-10))`` clamped to 80 dB below the utterance's maximum), then
  per-utterance mean/variance normalisation over the valid frames (biased variance; or the
  global statistics of ``normalize.ckpt`` when it holds any);
* front end: ``ConvolutionFrontEnd`` - blocks of 2-D convolutions over (frequency, time) with
  "same" *reflect* padding, a LayerNorm over (frequency, channels) and LeakyReLU; the last
  convolution of each block has stride 2 (recipe: 2 blocks, 128 and 32 channels, kernel 3), so
  time is subsampled 4x; the (frequency, channel) planes are flattened (640 values) and linearly
  projected to ``d_model``;
* Conformer encoder (``TransformerASR`` with ``encoder_module='conformer'``,
  ``attention_type='RelPosMHAXL'``, ``normalize_before=True``): per layer
  ``x += FFN(x) / 2``; ``x += RelPosMHA(LN(x))``; ``x += ConvModule(x)``;
  ``x = LN(x + FFN(x) / 2)``. The feed-forward modules are macaron halves
  (``LN -> Linear -> act -> Linear``), the convolution module is ``LN -> pointwise conv ->
  GLU -> depthwise conv (kernel 31) -> LN -> act -> Linear``, attention is Transformer-XL style
  with learnt biases ``u``, ``v`` and SpeechBrain's symmetric sinusoidal relative positions
  (scores scaled by ``1 / sqrt(d_model)``); a final LayerNorm (eps 1e-6) closes the encoder;
* random-projection quantizer (kept with the model so it can be pretrained further): frozen
  Xavier projection ``P`` (``4 x 80 = 320 -> 16``) and L2-normalised random codebook ``CB``
  (``8192 x 16``); targets are the nearest codeword of ``normalise(stack4(features) @ P)``
  (:meth:`BestRQUpstream.targets`); the prediction head ``linear`` (``d_model -> 8192``) is kept
  too. During pretraining masked frames are replaced by N(0, 0.1) noise (not done here).

Hidden states (``L + 1``): the input of every Conformer layer (the first is the projected CNN
output), then the encoder output after the final LayerNorm.

Frame rate: 4x subsampling of 10 ms frames = **40 ms = 640 samples per frame** (the downsample
rate is taken from the architecture: ``160 * prod(strides)``). Frames: ``T0 = n // 160 + 1``
features (centred STFT), then ``floor((T + 2 (k // 2) - k) / 2) + 1`` per stride-2 convolution
(``ceil(T0 / 4)`` for the recipe). Frame-level tasks whose labels come every 10 or 20 ms must
bring the features to the label rate, e.g. by repeating every frame
(:func:`superb.upstream.features.repeat_frames`, factor ``640 // label_rate``).

Batching: SpeechBrain convolves the padded batch (the reflect padding of a short utterance then
reads the batch's padding, and the Conformer's depthwise convolution reads padding frames), and
takes the fbank's 80 dB floor over the padded spectrogram. Here every utterance is computed as
SpeechBrain computes it alone (reflection at its own last frame, zeros after it in the
convolution module, statistics over its own frames), whatever the batch.

SpeechBrain stores no architecture description in the checkpoint: it is read from the weight
shapes (CNN channels and kernels, ``d_model``, layers, heads from ``pos_bias_u``, feed-forward
width, convolution kernel) and, when a ``hyperparams.yaml`` sits in the folder or up to two
levels above it (SpeechBrain's experiment layout), from that file (read as plain YAML, tags
ignored, nothing executed) for what shapes cannot tell: ``n_mels``, CNN strides, the Conformer
activation. Otherwise the recipe's values are used (80 mels, strides 2, GELU); options override
any of them.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import Upstream, UpstreamOutput
from .features import (centered_stft_frame_lengths, config_from_options, inspection_record, load_for_inspection,
                       load_strict, map_keys, to_plain, valid_mask, zero_padding)
from .registry import UpstreamSpec, register_upstream

_ACTIVATIONS = {"gelu": nn.GELU, "swish": nn.SiLU, "relu": nn.ReLU}


@dataclass
class BestRQConfig:
    """Defaults: SpeechBrain's LibriSpeech BEST-RQ recipe (``BEST-RQ.yaml``)."""

    n_mels: int = 80
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 160
    f_min: float = 0.0
    f_max: float = 8000.0
    top_db: float = 80.0
    #: "sentence" (per utterance), "global" (statistics in the checkpoint) or "none"
    normalization: str = "sentence"
    cnn_channels: Tuple[int, ...] = (128, 32)
    cnn_kernels: Tuple[int, ...] = (3, 3)
    cnn_strides: Tuple[int, ...] = (2, 2)
    cnn_layers_per_block: int = 1
    cnn_residuals: Tuple[bool, ...] = (False, False)
    d_model: int = 576
    num_layers: int = 12
    nhead: int = 8
    d_ffn: int = 2048
    conv_kernel: int = 31
    activation: str = "gelu"
    #: quantizer: frames stacked per target, codebook size and dimension
    stack_frames: int = 4
    codebook_size: int = 8192
    codebook_dim: int = 16

    def validate(self, where: str) -> None:
        n = len(self.cnn_channels)
        if not (len(self.cnn_kernels) == len(self.cnn_strides) == len(self.cnn_residuals) == n) or n == 0:
            raise ValueError(f"{where}: cnn_channels, cnn_kernels, cnn_strides and cnn_residuals must have the "
                             f"same non-zero length, got {self.cnn_channels}, {self.cnn_kernels}, "
                             f"{self.cnn_strides}, {self.cnn_residuals}")
        if any(k % 2 == 0 for k in self.cnn_kernels):
            raise ValueError(f"{where}: cnn_kernels must be odd ('same' padding), got {self.cnn_kernels}")
        if self.d_model % self.nhead:
            raise ValueError(f"{where}: d_model {self.d_model} is not a multiple of nhead {self.nhead}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"{where}: activation {self.activation!r} is not one of {sorted(_ACTIVATIONS)}")
        if self.normalization not in ("sentence", "global", "none"):
            raise ValueError(f"{where}: normalization {self.normalization!r} is not 'sentence', 'global' or 'none'")

    @property
    def cnn_frequency_sizes(self) -> List[int]:
        """Frequency bins after every CNN block."""
        sizes, f = [], self.n_mels
        for k, s in zip(self.cnn_kernels, self.cnn_strides):
            for j in range(self.cnn_layers_per_block):
                f = _same_out(f, k, s if j == self.cnn_layers_per_block - 1 else 1)
            sizes.append(f)
        return sizes


def _same_out(n, k: int, s: int):
    """Output size of SpeechBrain's 'same'-padded convolution (pad ``k // 2`` on both sides)."""
    pad = k // 2
    if isinstance(n, torch.Tensor):
        return torch.div(n + 2 * pad - k, s, rounding_mode="floor") + 1
    return (n + 2 * pad - k) // s + 1


# ------------------------------------------------------------------------------------------------
# features
# ------------------------------------------------------------------------------------------------


def speechbrain_mel_filters(n_mels: int, n_fft: int, f_min: float, f_max: float, sr: int = 16000) -> torch.Tensor:
    """SpeechBrain's triangular filters ``[n_fft // 2 + 1, n_mels]``: centres equally spaced on
    the mel scale, each triangle symmetric with half-width equal to its lower band."""
    def to_mel(hz):
        return 2595 * math.log10(1 + hz / 700)

    mel = torch.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    band = (hz[1:] - hz[:-1])[:-1]
    centre = hz[1:-1]
    freqs = torch.linspace(0, sr // 2, n_fft // 2 + 1)
    slope = (freqs[None, :] - centre[:, None]) / band[:, None]
    return torch.clamp(torch.minimum(slope + 1.0, 1.0 - slope), min=0.0).transpose(0, 1)


class _Fbank(nn.Module):
    def __init__(self, cfg: BestRQConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hamming_window(cfg.win_length), persistent=False)
        self.register_buffer("filters", speechbrain_mel_filters(cfg.n_mels, cfg.n_fft, cfg.f_min, cfg.f_max),
                             persistent=False)

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        spec = torch.stft(wavs, c.n_fft, c.hop_length, c.win_length, self.window, center=True,
                          pad_mode="constant", normalized=False, onesided=True, return_complex=True)
        power = torch.view_as_real(spec).pow(2).sum(-1).transpose(1, 2)  # [B, T, F]
        db = 10 * torch.log10(torch.clamp(torch.matmul(power, self.filters), min=1e-10))
        keep = valid_mask(lengths, db.shape[1])
        peak = db.masked_fill(~keep[:, :, None], float("-inf")).amax(dim=(1, 2))
        return torch.maximum(db, (peak - c.top_db)[:, None, None])


# ------------------------------------------------------------------------------------------------
# convolutional front end
# ------------------------------------------------------------------------------------------------


def _reflect_time(x: torch.Tensor, lengths: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last (time) axis of ``x [B, C, F, T]`` by reflection at each utterance's own ends."""
    if pad == 0:
        return x
    T = x.shape[-1]
    t = torch.arange(-pad, T + pad, device=x.device)[None, :]  # [1, T + 2 pad]
    last = (lengths[:, None] - 1).clamp(min=0)
    idx = torch.where(t < 0, -t, t)
    idx = torch.where(idx > last, 2 * last - idx, idx).clamp(min=0, max=T - 1)  # [B, T + 2 pad]
    B, C, Fq, _ = x.shape
    return torch.gather(x, 3, idx[:, None, None, :].expand(B, C, Fq, -1))


class _ConvLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, f_out: int, activation: bool = True):
        super().__init__()
        self.k, self.stride, self.activation = k, stride, activation
        self.conv = nn.Conv2d(c_in, c_out, k, stride=stride)
        self.norm = nn.LayerNorm((f_out, c_out))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        pad = self.k // 2
        if pad:
            x = F.pad(x, (0, 0, pad, pad), mode="reflect")  # frequency
        x = self.conv(_reflect_time(x, lengths, pad))  # [B, C, F, T]
        x = self.norm(x.permute(0, 3, 2, 1))  # [B, T, F, C]
        if self.activation:
            x = F.leaky_relu(x, 0.01)
        return x.permute(0, 3, 2, 1), _same_out(lengths, self.k, self.stride)


class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, n_layers: int, f_in: int, residual: bool):
        super().__init__()
        self.layers = nn.ModuleList()
        f = f_in
        for j in range(n_layers):
            s = stride if j == n_layers - 1 else 1
            f = _same_out(f, k, s)
            self.layers.append(_ConvLayer(c_in if j == 0 else c_out, c_out, k, s, f))
        self.reduce = _ConvLayer(c_in, c_out, 1, stride, f, activation=False) if residual else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        y, n = x, lengths
        for layer in self.layers:
            y, n = layer(y, n)
        if self.reduce is not None:
            y = y + self.reduce(x, lengths)[0]
        return y, n


# ------------------------------------------------------------------------------------------------
# Conformer
# ------------------------------------------------------------------------------------------------


def relative_position_table(length: int, dim: int, device=None) -> torch.Tensor:
    """SpeechBrain's ``RelPosEncXL`` embedding of the distance ``|i - j| = 0..length-1``
    (``sin`` on even, ``cos`` on odd dimensions; the same for past and future)."""
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / dim))
    pos = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(-1)
    table = torch.empty(length, dim, device=device)
    table[:, 0::2] = torch.sin(pos * inv_freq)
    table[:, 1::2] = torch.cos(pos * inv_freq)
    return table


class _RelPosAttention(nn.Module):
    def __init__(self, d: int, nhead: int):
        super().__init__()
        self.nhead, self.hd = nhead, d // nhead
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        # stored (head_dim, heads) and read as (heads, head_dim), as SpeechBrain does
        self.pos_bias_u = nn.Parameter(torch.empty(self.hd, nhead))
        self.pos_bias_v = nn.Parameter(torch.empty(self.hd, nhead))
        self.out_proj = nn.Linear(d, d)
        self.linear_pos = nn.Linear(d, d, bias=False)
        self.scale = 1 / math.sqrt(d)
        for p in (self.in_proj_weight, self.pos_bias_u, self.pos_bias_v):
            nn.init.xavier_uniform_(p)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        H, hd = self.nhead, self.hd
        # the projection is laid out per head as [q | k | v]
        q, k, v = F.linear(x, self.in_proj_weight).view(B, T, H, 3 * hd).chunk(3, dim=-1)
        p = self.linear_pos(rel).view(T, H, hd)  # distance 0..T-1
        qu = (q + self.pos_bias_u.reshape(H, hd)).transpose(1, 2) * self.scale  # [B, H, T, hd]
        qv = (q + self.pos_bias_v.reshape(H, hd)).transpose(1, 2) * self.scale
        ac = torch.matmul(qu, k.permute(0, 2, 3, 1))  # [B, H, T, T]
        bd = torch.matmul(qv, p.permute(1, 2, 0))  # [B, H, T, distance]
        dist = (torch.arange(T, device=x.device)[:, None] - torch.arange(T, device=x.device)[None, :]).abs()
        bd = torch.gather(bd, 3, dist[None, None].expand(B, H, T, T))
        scores = (ac + bd).masked_fill(~keep[:, None, None, :], float("-inf"))
        ctx = torch.matmul(torch.softmax(scores.float(), dim=-1).to(v.dtype), v.transpose(1, 2))
        return self.out_proj(ctx.transpose(1, 2).reshape(B, T, D))


class _FeedForward(nn.Module):
    def __init__(self, d: int, d_ffn: int, act):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, d_ffn)
        self.act = act()
        self.fc2 = nn.Linear(d_ffn, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class _ConvModule(nn.Module):
    def __init__(self, d: int, kernel: int, act):
        super().__init__()
        self.norm_in = nn.LayerNorm(d)
        self.pointwise = nn.Conv1d(d, 2 * d, 1)
        self.depthwise = nn.Conv1d(d, d, kernel, padding=(kernel - 1) // 2, groups=d)
        self.norm_out = nn.LayerNorm(d)
        self.act = act()
        self.linear = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        y = F.glu(self.pointwise(self.norm_in(x).transpose(1, 2)), dim=1)  # [B, D, T]
        y = self.depthwise(y * keep[:, None, :].to(y.dtype))  # zeros after each utterance
        return self.linear(self.act(self.norm_out(y.transpose(1, 2))))


class _ConformerLayer(nn.Module):
    def __init__(self, cfg: BestRQConfig):
        super().__init__()
        act = _ACTIVATIONS[cfg.activation]
        d = cfg.d_model
        self.ffn1 = _FeedForward(d, cfg.d_ffn, act)
        self.attn_norm = nn.LayerNorm(d)
        self.attn = _RelPosAttention(d, cfg.nhead)
        self.conv = _ConvModule(d, cfg.conv_kernel, act)
        self.ffn2 = _FeedForward(d, cfg.d_ffn, act)
        self.final_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(x)
        x = x + self.attn(self.attn_norm(x), keep, rel)
        x = x + self.conv(x, keep)
        return self.final_norm(x + 0.5 * self.ffn2(x))


# ------------------------------------------------------------------------------------------------
# the upstream
# ------------------------------------------------------------------------------------------------


class BestRQUpstream(Upstream):
    """BEST-RQ upstream (see module docstring)."""

    def __init__(self, cfg: BestRQConfig, where: str = "best_rq config"):
        super().__init__()
        cfg.validate(where)
        self.config = cfg
        self.fbank = _Fbank(cfg)
        self.register_buffer("glob_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("glob_std", torch.ones(cfg.n_mels))
        self.cnn = nn.ModuleList()
        c_in, f = 1, cfg.n_mels
        for c, k, s, r, f_out in zip(cfg.cnn_channels, cfg.cnn_kernels, cfg.cnn_strides, cfg.cnn_residuals,
                                     cfg.cnn_frequency_sizes):
            self.cnn.append(_ConvBlock(c_in, c, k, s, cfg.cnn_layers_per_block, f, bool(r)))
            c_in, f = c, f_out
        self.cnn_out_dim = c_in * f
        self.input_proj = nn.Linear(self.cnn_out_dim, cfg.d_model)
        self.layers = nn.ModuleList([_ConformerLayer(cfg) for _ in range(cfg.num_layers)])
        self.encoder_norm = nn.LayerNorm(cfg.d_model, eps=1e-6)
        # pretraining parts: frozen random-projection quantizer and the prediction head
        proj = torch.empty(cfg.stack_frames * cfg.n_mels, cfg.codebook_dim)
        self.register_buffer("quantizer_P", nn.init.xavier_uniform_(proj))
        self.register_buffer("quantizer_CB", F.normalize(torch.randn(cfg.codebook_size, cfg.codebook_dim)))
        self.head = nn.Linear(cfg.d_model, cfg.codebook_size)
        self.downsample_rate = cfg.hop_length * math.prod(cfg.cnn_strides)
        self.eval()

    @property
    def hidden_sizes(self) -> List[int]:
        return [self.config.d_model] * (self.config.num_layers + 1)

    def feature_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        return centered_stft_frame_lengths(wav_lens, self.config.hop_length)

    def frame_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        n = self.feature_lengths(wav_lens)
        for k, s in zip(self.config.cnn_kernels, self.config.cnn_strides):
            for j in range(self.config.cnn_layers_per_block):
                n = _same_out(n, k, s if j == self.config.cnn_layers_per_block - 1 else 1)
        return n

    def features(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Normalised log-mel features ``[B, T0, n_mels]`` (zero after each utterance) and ``T0``."""
        lengths = self.feature_lengths(wav_lens).to(wavs.device)
        feats = self.fbank(zero_padding(wavs.float(), wav_lens), lengths)
        keep = valid_mask(lengths, feats.shape[1])[:, :, None].to(feats.dtype)
        mode = self.config.normalization
        if mode == "sentence":
            n = lengths.clamp(min=1).to(feats.dtype)[:, None, None]
            mean = (feats * keep).sum(1, keepdim=True) / n
            var = (((feats - mean) * keep) ** 2).sum(1, keepdim=True) / n
            feats = (feats - mean) / var.sqrt().clamp(min=1e-10)
        elif mode == "global":
            feats = (feats - self.glob_mean) / self.glob_std.clamp(min=1e-10)
        return feats * keep, lengths

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        x = feats.transpose(1, 2).unsqueeze(1)  # [B, 1, F, T]
        n = lengths
        for block in self.cnn:
            x, n = block(x, n)
        B, C, Fq, T = x.shape
        x = x.permute(0, 3, 2, 1).reshape(B, T, Fq * C)  # (frequency, channel) planes, frequency-major
        h = self.input_proj(x)
        keep = valid_mask(n, T)
        rel = relative_position_table(T, self.config.d_model, device=h.device).to(h.dtype)
        states = []
        for layer in self.layers:
            states.append(h)
            h = layer(h, keep, rel)
        states.append(self.encoder_norm(h))
        return states, n

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        self.check_input(wavs, wav_lens)
        feats, lengths = self.features(wavs, wav_lens)
        states, n = self.encode(feats, lengths)
        return UpstreamOutput(hidden_states=states, lengths=n.long())

    # -- pretraining targets ------------------------------------------------------------------
    def targets(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Quantizer targets ``[B, ceil(T0 / 4)]`` (codebook indices) and their lengths: stacks of
        ``stack_frames`` normalised feature frames (zero-padded to a multiple), projected by ``P``,
        L2-normalised, nearest codeword of ``CB``."""
        feats, lengths = self.features(wavs, wav_lens)
        s = self.config.stack_frames
        B, T, D = feats.shape
        feats = F.pad(feats, (0, 0, 0, (-T) % s))
        x = F.normalize(feats.reshape(B, -1, s * D) @ self.quantizer_P, dim=-1)
        idx = torch.cdist(x, self.quantizer_CB.unsqueeze(0).expand(B, -1, -1)).argmin(dim=-1)
        return idx, torch.div(lengths + s - 1, s, rounding_mode="floor")

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Prediction-head logits over the codebook for the last hidden state."""
        return self.head(hidden)


# ================================================================================================
# checkpoint import: SpeechBrain checkpoint folders, superb's own file
# ================================================================================================

#: SpeechBrain ``model.ckpt`` name -> ours (``0.`` = ConvolutionFrontEnd, ``1.`` = EncoderWrapper)
SPEECHBRAIN_KEY_MAP: Tuple[Tuple[str, str], ...] = (
    (r"0\.convblock_(\d+)\.convs\.conv_(\d+)\.conv\.(weight|bias)", r"cnn.\1.layers.\2.conv.\3"),
    (r"0\.convblock_(\d+)\.convs\.norm_(\d+)\.norm\.(weight|bias)", r"cnn.\1.layers.\2.norm.\3"),
    (r"0\.convblock_(\d+)\.reduce_conv\.conv\.conv\.(weight|bias)", r"cnn.\1.reduce.conv.\2"),
    (r"0\.convblock_(\d+)\.reduce_conv\.norm\.norm\.(weight|bias)", r"cnn.\1.reduce.norm.\2"),
    (r"1\.transformer\.custom_src_module\.layers\.0\.w\.(weight|bias)", r"input_proj.\1"),
    (r"1\.transformer\.encoder\.norm\.norm\.(weight|bias)", r"encoder_norm.\1"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.mha_layer\.(in_proj_weight|pos_bias_u|pos_bias_v)", r"layers.\1.attn.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.mha_layer\.(out_proj|linear_pos)\.(weight|bias)", r"layers.\1.attn.\2.\3"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.convolution_module\.layer_norm\.(weight|bias)", r"layers.\1.conv.norm_in.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.convolution_module\.bottleneck\.0\.(weight|bias)", r"layers.\1.conv.pointwise.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.convolution_module\.conv\.(weight|bias)", r"layers.\1.conv.depthwise.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.convolution_module\.after_conv\.0\.(weight|bias)", r"layers.\1.conv.norm_out.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.convolution_module\.after_conv\.2\.(weight|bias)", r"layers.\1.conv.linear.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.ffn_module([12])\.0\.(weight|bias)", r"layers.\1.ffn\2.norm.\3"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.ffn_module([12])\.1\.ffn\.0\.(weight|bias)", r"layers.\1.ffn\2.fc1.\3"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.ffn_module([12])\.1\.ffn\.3\.(weight|bias)", r"layers.\1.ffn\2.fc2.\3"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.norm1\.norm\.(weight|bias)", r"layers.\1.attn_norm.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.norm2\.norm\.(weight|bias)", r"layers.\1.final_norm.\2"),
)
#: deterministic buffers and decoder-side parts of TransformerASR, not used by the encoder
SPEECHBRAIN_DROP = (r"1\.transformer\.positional_encoding\.", r"1\.transformer\.positional_encoding_decoder\.",
                    r"1\.transformer\.decoder\.", r"1\.transformer\.custom_tgt_module\.")

OWN_FORMAT = "superb.best_rq"


def _find_speechbrain_folder(path: Path) -> Optional[Path]:
    if path.is_dir() and (path / "CKPT.yaml").is_file() and (path / "model.ckpt").is_file():
        return path
    if path.is_file() and path.name == "model.ckpt" and (path.parent / "CKPT.yaml").is_file():
        return path.parent
    return None


def detect_path(path: Path) -> bool:
    """True for a SpeechBrain BEST-RQ checkpoint folder (or its ``model.ckpt``)."""
    return _find_speechbrain_folder(Path(path)) is not None


def detect(obj: Any) -> bool:
    """True for superb's own BEST-RQ file, or a SpeechBrain BEST-RQ ``model.ckpt`` state dict."""
    if isinstance(obj, Mapping) and obj.get("format") == OWN_FORMAT:
        return True
    return isinstance(obj, Mapping) and any(str(k).startswith("1.transformer.encoder.layers.") for k in obj) \
        and any(str(k).startswith("0.convblock_") for k in obj)


class _TagLoader:
    """A ``yaml.SafeLoader`` that reads hyperpyyaml files as plain data: every ``!tag`` node
    becomes ``{'__tag__': tag, 'value': ...}``; nothing is imported or called."""

    @staticmethod
    def load(text: str):
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def tagged(loader, suffix, node):
            if isinstance(node, yaml.MappingNode):
                value = loader.construct_mapping(node, deep=True)
            elif isinstance(node, yaml.SequenceNode):
                value = loader.construct_sequence(node, deep=True)
            else:
                value = loader.construct_scalar(node)
            return {"__tag__": "!" + suffix, "value": value}

        Loader.add_multi_constructor("!", tagged)
        return yaml.load(text, Loader=Loader)  # noqa: S506 - SafeLoader subclass


def _hparams(folder: Path) -> Dict[str, Any]:
    """Settings of a SpeechBrain ``hyperparams.yaml`` found in ``folder`` or up to two levels up."""
    for d in (folder, folder.parent, folder.parent.parent):
        f = d / "hyperparams.yaml"
        if f.is_file():
            try:
                data = _TagLoader.load(f.read_text())
            except Exception as exc:  # noqa: BLE001 - a broken yaml must not block loading weights
                raise ValueError(f"{f}: cannot read it as YAML ({exc})") from None
            return data if isinstance(data, dict) else {}
    return {}


def _resolve(value: Any, top: Mapping[str, Any]) -> Any:
    if isinstance(value, dict) and value.get("__tag__") == "!ref":
        m = re.fullmatch(r"<([\w.]+)>", str(value["value"]).strip())
        if m and m.group(1) in top:
            return _resolve(top[m.group(1)], top)
    return value


def _tuple_of_ints(value: Any) -> Optional[Tuple[int, ...]]:
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    if isinstance(value, str):
        nums = re.findall(r"-?\d+", value)
        return tuple(int(v) for v in nums) if nums else None
    return None


def _settings_from_hparams(hp: Mapping[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if "n_mels" in hp:
        out["n_mels"] = int(_resolve(hp["n_mels"], hp))
    cnn = hp.get("CNN")
    if isinstance(cnn, dict) and isinstance(cnn.get("value"), dict):
        strides = _tuple_of_ints(_resolve(cnn["value"].get("strides"), hp))
        if strides:
            out["cnn_strides"] = strides
    tr = hp.get("Transformer")
    if isinstance(tr, dict) and isinstance(tr.get("value"), dict):
        act = _resolve(tr["value"].get("conformer_activation"), hp)
        # "!name:torch.nn.GELU" puts the class in the tag; "!new:..." likewise
        name = f"{act.get('__tag__', '')}{act.get('value') or ''}" if isinstance(act, dict) else act
        if isinstance(name, str):
            low = name.lower()
            out["activation"] = "gelu" if "gelu" in low else "swish" if ("swish" in low or "silu" in low) else \
                "relu" if low.endswith("relu") else None
            if out["activation"] is None:
                raise ValueError(f"hyperparams.yaml: conformer_activation {name!r} is not supported")
        elif act is None and "conformer_activation" not in tr["value"]:
            out["activation"] = "swish"  # TransformerASR's default conformer activation
    norm = hp.get("normalize")
    if isinstance(norm, dict) and isinstance(norm.get("value"), dict) and "norm_type" in norm["value"]:
        out["normalization"] = str(_resolve(norm["value"]["norm_type"], hp))
    return out


def config_from_speechbrain(state: Mapping[str, torch.Tensor], hp: Mapping[str, Any], where: str) -> BestRQConfig:
    """Architecture from ``model.ckpt`` shapes (+ hyperparams.yaml settings)."""
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"0\.convblock_(\d+)\.", k))})
    if not blocks or blocks != list(range(len(blocks))):
        raise ValueError(f"{where}: model.ckpt has no ConvolutionFrontEnd weights 0.convblock_N.*")
    per_block = len({k for k in state if re.fullmatch(r"0\.convblock_0\.convs\.conv_\d+\.conv\.weight", k)})
    channels, kernels, residuals = [], [], []
    for b in blocks:
        w = state.get(f"0.convblock_{b}.convs.conv_0.conv.weight")
        if w is None:
            raise ValueError(f"{where}: 0.convblock_{b}.convs.conv_0.conv.weight is missing")
        channels.append(int(w.shape[0]))
        kernels.append(int(w.shape[-1]))
        residuals.append(f"0.convblock_{b}.reduce_conv.conv.conv.weight" in state)
    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"1\.transformer\.encoder\.layers\.(\d+)\.", k))})
    if not layers:
        raise ValueError(f"{where}: model.ckpt has no Conformer layers 1.transformer.encoder.layers.N.*")
    proj = state.get("1.transformer.custom_src_module.layers.0.w.weight")
    if proj is None:
        raise ValueError(f"{where}: 1.transformer.custom_src_module.layers.0.w.weight is missing")
    p0 = "1.transformer.encoder.layers.0."
    for key in ("mha_layer.pos_bias_u", "ffn_module1.1.ffn.0.weight", "convolution_module.conv.weight"):
        if p0 + key not in state:
            raise ValueError(f"{where}: {p0 + key} is missing (not a RelPosMHAXL Conformer)")
    values = dict(
        cnn_channels=tuple(channels), cnn_kernels=tuple(kernels), cnn_residuals=tuple(residuals),
        cnn_strides=(2,) * len(blocks), cnn_layers_per_block=per_block, d_model=int(proj.shape[0]),
        num_layers=len(layers), nhead=int(state[p0 + "mha_layer.pos_bias_u"].shape[1]),
        d_ffn=int(state[p0 + "ffn_module1.1.ffn.0.weight"].shape[0]),
        conv_kernel=int(state[p0 + "convolution_module.conv.weight"].shape[-1]),
    )
    values.update(_settings_from_hparams(hp))
    return dataclasses.replace(BestRQConfig(), **values)


def _speechbrain_extras(folder: Path, cfg: BestRQConfig) -> Tuple[Dict[str, torch.Tensor], BestRQConfig]:
    """Our buffers / head from ``normalize.ckpt``, ``quantizer.ckpt`` and ``linear.ckpt``."""
    from .checkpoint_io import safe_load

    extra: Dict[str, torch.Tensor] = {}
    norm_file = folder / "normalize.ckpt"
    if norm_file.is_file():
        stats = safe_load(norm_file)
        if not isinstance(stats, Mapping) or "count" not in stats:
            raise ValueError(f"{norm_file}: expected InputNormalization statistics {{'count', 'glob_mean', 'glob_std'}}")
        count = int(stats["count"])
        if count > 0:
            mean, std = stats.get("glob_mean"), stats.get("glob_std")
            if not isinstance(mean, torch.Tensor) or mean.numel() != cfg.n_mels:
                raise ValueError(f"{norm_file}: glob_mean must have {cfg.n_mels} values")
            extra["glob_mean"], extra["glob_std"] = mean.reshape(-1).float(), std.reshape(-1).float()
            cfg = dataclasses.replace(cfg, normalization="global")
    q_file = folder / "quantizer.ckpt"
    if q_file.is_file():
        q = safe_load(q_file)
        if not isinstance(q, Mapping) or "P" not in q or "CB" not in q:
            raise ValueError(f"{q_file}: expected the RandomProjectionQuantizer buffers 'P' and 'CB', found "
                             f"{sorted(q) if isinstance(q, Mapping) else type(q).__name__}")
        P, CB = q["P"], q["CB"]
        if P.shape[0] % cfg.n_mels:
            raise ValueError(f"{q_file}: P has {P.shape[0]} inputs, not a multiple of n_mels={cfg.n_mels}")
        cfg = dataclasses.replace(cfg, stack_frames=P.shape[0] // cfg.n_mels, codebook_size=int(CB.shape[0]),
                                  codebook_dim=int(CB.shape[1]))
        extra["quantizer_P"], extra["quantizer_CB"] = P, CB
    lin_file = folder / "linear.ckpt"
    if lin_file.is_file():
        lin = safe_load(lin_file)
        if not isinstance(lin, Mapping) or "w.weight" not in lin:
            raise ValueError(f"{lin_file}: expected a speechbrain Linear state dict with 'w.weight'")
        extra["head.weight"], extra["head.bias"] = lin["w.weight"], lin["w.bias"]
        cfg = dataclasses.replace(cfg, codebook_size=int(lin["w.weight"].shape[0]))
    return extra, cfg


def load_speechbrain_folder(folder: Path, **options) -> BestRQUpstream:
    from .checkpoint_io import safe_load

    state = safe_load(folder / "model.ckpt")
    if not detect(state):
        raise ValueError(f"{folder / 'model.ckpt'}: not a SpeechBrain BEST-RQ model (expected 0.convblock_* and "
                         "1.transformer.encoder.layers.* weights)")
    cfg = config_from_speechbrain(state, _hparams(folder), str(folder))
    cfg = config_from_options(BestRQConfig, cfg, options, str(folder))
    extra, cfg = _speechbrain_extras(folder, cfg)
    cfg = config_from_options(BestRQConfig, cfg, options, str(folder))  # explicit options win
    model = BestRQUpstream(cfg, str(folder))
    expected_cnn = model.cnn_out_dim
    if state["1.transformer.custom_src_module.layers.0.w.weight"].shape[1] != expected_cnn:
        raise ValueError(
            f"{folder}: the CNN front end gives {expected_cnn} values per frame with n_mels={cfg.n_mels} and "
            f"cnn_strides={cfg.cnn_strides}, but the projection expects "
            f"{state['1.transformer.custom_src_module.layers.0.w.weight'].shape[1]}; pass n_mels=... / "
            "cnn_strides=... options (or keep hyperparams.yaml next to the checkpoint)")
    weights = map_keys(state, SPEECHBRAIN_KEY_MAP)
    own = model.state_dict()
    for key in ("glob_mean", "glob_std", "quantizer_P", "quantizer_CB", "head.weight", "head.bias"):
        weights[key] = extra.get(key, own[key])  # parts the folder does not hold keep their initial values
    load_strict(model, weights, folder / "model.ckpt", drop_patterns=SPEECHBRAIN_DROP)
    model.eval()
    return model


def save_checkpoint(model: BestRQUpstream, path) -> Path:
    """Write superb's own BEST-RQ file: ``{'format': 'superb.best_rq', 'version': 1, 'config':
    {...}, 'state_dict': {...}}`` (plain data and tensors; the quantizer and head included)."""
    path = Path(path)
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model.config).items()}
    torch.save({"format": OWN_FORMAT, "version": 1, "config": cfg, "state_dict": model.state_dict()}, path)
    return path


def load_own(path: Path, obj: Mapping[str, Any], **options) -> BestRQUpstream:
    if int(obj.get("version", 0)) != 1:
        raise ValueError(f"{path}: unsupported {OWN_FORMAT} version {obj.get('version')!r} (this superb reads 1)")
    raw = to_plain(obj.get("config"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: 'config' is missing or not a mapping")
    fields = {f.name: f for f in dataclasses.fields(BestRQConfig)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(f"{path}: config has unknown key(s) {unknown}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    cfg = config_from_options(BestRQConfig, dataclasses.replace(BestRQConfig(), **values), options, str(path))
    model = BestRQUpstream(cfg, str(path))
    load_strict(model, obj["state_dict"], path)
    model.eval()
    return model


def describe_path(path: Path) -> Dict[str, Any]:
    folder = _find_speechbrain_folder(Path(path))
    from .checkpoint_io import safe_load

    state = safe_load(folder / "model.ckpt")
    cfg = config_from_speechbrain(state, _hparams(folder), str(folder))
    _, cfg = _speechbrain_extras(folder, cfg)
    return {"family": "best_rq", "format": "SpeechBrain BEST-RQ checkpoint folder", "upstreams": ["best_rq"],
            "num_hidden_states": cfg.num_layers + 1, "d_model": cfg.d_model, "nhead": cfg.nhead,
            "normalization": cfg.normalization,
            "files": sorted(p.name for p in folder.iterdir() if p.is_file()),
            "downsample_rate": cfg.hop_length * math.prod(cfg.cnn_strides)}


def describe(obj: Any) -> Dict[str, Any]:
    if obj.get("format") == OWN_FORMAT:
        cfg = to_plain(obj.get("config")) or {}
        return {"family": "best_rq", "format": "superb BEST-RQ file", "upstreams": ["best_rq"],
                "num_hidden_states": int(cfg.get("num_layers", 0)) + 1, "d_model": cfg.get("d_model")}
    cfg = config_from_speechbrain(obj, {}, "model.ckpt")
    return {"family": "best_rq", "format": "SpeechBrain BEST-RQ model.ckpt (load its CKPT folder)",
            "upstreams": ["best_rq"], "num_hidden_states": cfg.num_layers + 1, "d_model": cfg.d_model}


FORMATS = ("SpeechBrain checkpoint folder CKPT+*/ (CKPT.yaml, model.ckpt, normalize.ckpt, quantizer.ckpt, linear.ckpt)",
           "superb .pt {'format': 'superb.best_rq', 'config', 'state_dict'}")


def factory(ckpt: Optional[Path] = None, **options) -> BestRQUpstream:
    if ckpt is None:
        return BestRQUpstream(config_from_options(BestRQConfig, None, options, "random-init"))
    path = Path(ckpt)
    folder = _find_speechbrain_folder(path)
    if folder is not None:
        return load_speechbrain_folder(folder, **options)
    if path.is_dir():
        inner = sorted(p.name for p in path.iterdir() if p.is_dir() and p.name.startswith("CKPT"))
        hint = f"; it contains checkpoint folders {inner}: pass one of them" if inner else ""
        raise ValueError(f"{path}: not a SpeechBrain checkpoint folder (needs CKPT.yaml and model.ckpt){hint}")
    from .checkpoint_io import safe_load

    obj = safe_load(path)
    if isinstance(obj, Mapping) and obj.get("format") == OWN_FORMAT:
        return load_own(path, obj, **options)
    raise ValueError(f"{path}: not a BEST-RQ checkpoint: pass a SpeechBrain CKPT+* folder (CKPT.yaml, model.ckpt, "
                     f"...) or a superb file with format {OWN_FORMAT!r}")


def _inspector(path) -> Optional[Dict[str, Any]]:
    """``superb inspect``: SpeechBrain checkpoint folders and superb's own BEST-RQ files."""
    path = Path(path)
    if _find_speechbrain_folder(path) is not None:
        info = describe_path(path)
    else:
        obj = load_for_inspection(path)
        if not (isinstance(obj, Mapping) and obj.get("format") == OWN_FORMAT):
            return None
        info = describe(obj)
    return inspection_record(path, info, FORMATS)


def _register_inspector() -> None:
    from .inspection import register_inspector

    register_inspector(_inspector)


_register_inspector()

register_upstream(UpstreamSpec(
    name="best_rq", factory=factory,
    description="BEST-RQ Conformer (SpeechBrain recipe: 12 x 576, RelPos attention, 4x conv subsampling); "
                "Google released no weights",
    downsample_rate=640, layers="L+1",
    formats=FORMATS, family="best_rq"))
