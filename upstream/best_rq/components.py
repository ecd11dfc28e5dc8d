"""BEST-RQ building blocks (see :mod:`superb.upstream.best_rq.model` for the architecture): SpeechBrain's
fbank, the convolutional front end with per-utterance reflect padding, and the Conformer layer
with Transformer-XL relative-position attention."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..base import SAMPLE_RATE, valid_mask

if TYPE_CHECKING:  # pragma: no cover
    from .model import BestRQConfig

ACTIVATIONS = {"gelu": nn.GELU, "swish": nn.SiLU, "relu": nn.ReLU}


def _same_out(n, k: int, s: int):
    """Output size of SpeechBrain's 'same'-padded convolution (pad ``k // 2`` on both sides)."""
    pad = k // 2
    if isinstance(n, torch.Tensor):
        return torch.div(n + 2 * pad - k, s, rounding_mode="floor") + 1
    return (n + 2 * pad - k) // s + 1


# ------------------------------------------------------------------------------------------------
# features
# ------------------------------------------------------------------------------------------------


def speechbrain_mel_filters(n_mels: int, n_fft: int, f_min: float, f_max: float, sr: int = SAMPLE_RATE) -> torch.Tensor:
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
        qu = (q + self.pos_bias_u.reshape(H, hd)).transpose(1, 2)  # [B, H, T, hd]
        qv = (q + self.pos_bias_v.reshape(H, hd)).transpose(1, 2) * self.scale
        bd = torch.matmul(qv, p.permute(1, 2, 0))  # [B, H, T, distance]
        dist = (torch.arange(T, device=x.device)[:, None] - torch.arange(T, device=x.device)[None, :]).abs()
        bd = torch.gather(bd, 3, dist[None, None].expand(B, H, T, T))
        # the position term is an additive attention bias: softmax(scale qu k^T + bd) v, padding
        # keys at -inf, in one fused kernel (the content term qu k^T is not materialised apart)
        bias = bd.masked_fill(~keep[:, None, None, :], float("-inf"))
        ctx = F.scaled_dot_product_attention(qu, k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias,
                                             dropout_p=0.0, scale=self.scale)
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
        act = ACTIVATIONS[cfg.activation]
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
