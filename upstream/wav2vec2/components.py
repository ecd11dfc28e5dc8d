"""Building blocks of the wav2vec 2.0 family (wav2vec 2.0, HuBERT, data2vec audio).

The modules here are inference-only re-implementations written from the published architecture
descriptions (Baevski et al. 2020; Hsu et al. 2021; Baevski et al. 2022) and the hyper-parameter
names used by fairseq / Hugging Face configs. There is no dropout, no layerdrop and no masking:
SUPERB extracts features from a frozen model in eval mode, where all of these are inactive.

Shapes: waveforms ``[B, T]``; frame sequences ``[B, T', D]``; ``padding_mask`` is True on padding.

Components:

* :class:`ConvFeatureExtractor` - the CNN feature encoder, in ``group_norm`` mode (a single
  per-channel GroupNorm after the first convolution; wav2vec 2.0 Base / HuBERT Base) or
  ``layer_norm`` mode (a LayerNorm over channels after every convolution; Large models,
  data2vec). Group norm normalises every channel over *time*. Given the utterances' sample
  lengths, the statistics are taken over each utterance's valid frames only and every layer's
  frames beyond the valid length are re-zeroed, so a padded batch gives each utterance exactly
  what it gets alone; without lengths (the peers' behaviour: fairseq, s3prl, torchaudio,
  Hugging Face) the statistics include the padding.
* :class:`FeatureProjection` - LayerNorm over the CNN channels followed by a linear projection.
* :class:`ConvPositionalEmbedding` - one grouped convolution with weight normalisation (``g``
  over the kernel axis), "same" padding that drops the last frame for even kernels, then GELU.
* :class:`StackedConvPositionalEmbedding` - data2vec's stack of grouped convolutions, each
  followed by a non-affine LayerNorm and GELU (padding frames optionally re-zeroed between them).
* :class:`SelfAttention`, :class:`FeedForward`, :class:`TransformerLayer` (post-LN or
  layer-norm-first) and :class:`TransformerEncoder`.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..base import valid_mask

# ----------------------------------------------------------------------------------------------
# CNN feature encoder
# ----------------------------------------------------------------------------------------------


class ConvBlock(nn.Module):
    """Conv1d -> optional norm -> GELU.

    ``norm`` is ``"group"`` (GroupNorm with one group per channel, i.e. per-channel
    normalisation over time), ``"layer"`` (LayerNorm over channels at every frame) or ``None``.
    Both norms are computed in float32 with elementwise affine parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, bias: bool,
                 norm: Optional[str]):
        super().__init__()
        self.kernel = kernel
        self.stride = stride
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        if norm == "group":
            self.norm = nn.GroupNorm(out_channels, out_channels, affine=True)
        elif norm == "layer":
            self.norm = nn.LayerNorm(out_channels, elementwise_affine=True)
        elif norm is None:
            self.norm = None
        else:
            raise ValueError(f"unknown conv norm {norm!r}: expected 'group', 'layer' or None")
        self.norm_kind = norm

    def forward(self, x: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x`` [B, C, T] -> [B, C', T'].

        ``valid`` ([B, T'] bool, True on each utterance's valid output frames) makes the block
        padding-exact: group-norm statistics over valid frames only, padding frames set to 0.
        ``None`` normalises over every frame, padding included (the reference behaviour).
        """
        x = self.conv(x)
        if self.norm_kind == "group":
            if valid is None:
                x = F.group_norm(x.float(), self.norm.num_groups, self.norm.weight.float(),
                                 self.norm.bias.float(), self.norm.eps).type_as(x)
            else:
                x = masked_group_norm(x.float(), valid, self.norm.num_groups, self.norm.weight.float(),
                                      self.norm.bias.float(), self.norm.eps).type_as(x)
        elif self.norm_kind == "layer":
            x = x.transpose(1, 2)
            x = F.layer_norm(x.float(), self.norm.normalized_shape, self.norm.weight.float(),
                             self.norm.bias.float(), self.norm.eps).type_as(x)
            x = x.transpose(1, 2)
        x = F.gelu(x)
        if valid is not None:
            x = x * valid.unsqueeze(1).to(x.dtype)
        return x


def masked_group_norm(x: torch.Tensor, valid: torch.Tensor, num_groups: int, weight: torch.Tensor,
                      bias: torch.Tensor, eps: float) -> torch.Tensor:
    """``F.group_norm`` of ``x`` [B, C, T] whose mean and (biased) variance use only the frames
    where ``valid`` [B, T] is True; padding frames are normalised too (callers zero them)."""
    b, c, t = x.shape
    m = valid.to(x.dtype).unsqueeze(1)  # [B, 1, T]
    g = x.reshape(b, num_groups, c // num_groups, t)
    mg = m.unsqueeze(1)  # [B, 1, 1, T]
    count = mg.sum(dim=(2, 3), keepdim=True) * (c // num_groups)  # valid elements per group
    mean = (g * mg).sum(dim=(2, 3), keepdim=True) / count
    var = (((g - mean) * mg) ** 2).sum(dim=(2, 3), keepdim=True) / count
    g = (g - mean) * torch.rsqrt(var + eps)
    return g.reshape(b, c, t) * weight.view(1, c, 1) + bias.view(1, c, 1)


class ConvFeatureExtractor(nn.Module):
    """The CNN that turns a raw waveform into frames.

    ``conv_layers`` is a sequence of ``(channels, kernel, stride)``; ``mode`` is ``"group_norm"``
    or ``"layer_norm"``; ``conv_bias`` adds biases to the convolutions.
    """

    def __init__(self, conv_layers: Sequence[Tuple[int, int, int]], mode: str, conv_bias: bool):
        super().__init__()
        if mode not in ("group_norm", "layer_norm"):
            raise ValueError(f"extractor_mode must be 'group_norm' or 'layer_norm', got {mode!r}")
        blocks = []
        in_ch = 1
        for i, (ch, k, s) in enumerate(conv_layers):
            if mode == "group_norm":
                norm = "group" if i == 0 else None
            else:
                norm = "layer"
            blocks.append(ConvBlock(in_ch, ch, k, s, conv_bias, norm))
            in_ch = ch
        self.conv_layers = nn.ModuleList(blocks)
        self.mode = mode
        self.output_dim = in_ch

    @property
    def kernel_strides(self) -> List[Tuple[int, int]]:
        return [(b.kernel, b.stride) for b in self.conv_layers]

    def forward(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``wavs`` [B, T] -> features [B, T', C].

        With ``wav_lens`` (valid samples per utterance) the extractor is padding-exact: every
        layer knows each utterance's valid frames (the conv arithmetic), group-norm statistics
        use only those and padding frames are re-zeroed before the next convolution. Without it,
        padding takes part in the statistics as in the reference implementations.
        """
        x = wavs.unsqueeze(1)
        lens = wav_lens
        for block in self.conv_layers:
            valid = None
            if lens is not None:
                lens = torch.div(lens - block.kernel, block.stride, rounding_mode="floor").add(1).clamp(min=0)
                out_frames = (x.shape[-1] - block.kernel) // block.stride + 1
                valid = valid_mask(lens.to(x.device), out_frames)
            x = block(x, valid)
        return x.transpose(1, 2)


class FeatureProjection(nn.Module):
    """LayerNorm over the CNN channels, then a linear map to the transformer width.

    Either part can be absent: fairseq omits the projection when the CNN width already equals
    the transformer width; Hugging Face HuBERT configs may omit the LayerNorm
    (``feat_proj_layer_norm``).
    """

    def __init__(self, in_dim: int, out_dim: int, eps: float = 1e-5, layer_norm: bool = True,
                 projection: bool = True):
        super().__init__()
        if not projection and in_dim != out_dim:
            raise ValueError(
                f"a model without feature projection needs CNN width ({in_dim}) == hidden_size ({out_dim})"
            )
        self.layer_norm = nn.LayerNorm(in_dim, eps=eps) if layer_norm else None
        self.projection = nn.Linear(in_dim, out_dim) if projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        if self.projection is not None:
            x = self.projection(x)
        return x


# ----------------------------------------------------------------------------------------------
# Convolutional positional embeddings
# ----------------------------------------------------------------------------------------------


def _same_pad_trim(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """A symmetric ``kernel // 2`` padding makes one extra frame when the kernel is even."""
    return x[..., :-1] if kernel % 2 == 0 else x


class ConvPositionalEmbedding(nn.Module):
    """Grouped convolution with weight normalisation, same-length output, GELU.

    The weight is ``g * v / ||v||`` where the norm of ``v`` is taken over every axis except the
    kernel axis (dim 2), i.e. ``g`` has shape ``[1, 1, kernel]``. The module returns only the
    positional term; the encoder adds it to its input.
    """

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        if dim % groups:
            raise ValueError(f"hidden_size {dim} is not divisible by pos_conv_groups {groups}")
        self.kernel = kernel
        self.groups = groups
        self.weight_v = nn.Parameter(torch.empty(dim, dim // groups, kernel))
        self.weight_g = nn.Parameter(torch.empty(1, 1, kernel))
        self.bias = nn.Parameter(torch.zeros(dim))
        # initialisation in the spirit of the original (normal with std sqrt(4 / (k * dim)))
        std = math.sqrt(4.0 / (kernel * dim))
        nn.init.normal_(self.weight_v, mean=0.0, std=std)
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.norm(dim=(0, 1), keepdim=True))

    def weight(self) -> torch.Tensor:
        norm = self.weight_v.norm(dim=(0, 1), keepdim=True)
        return self.weight_v * (self.weight_g / norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> [B, T, D]
        y = F.conv1d(x.transpose(1, 2), self.weight(), self.bias, padding=self.kernel // 2,
                     groups=self.groups)
        y = _same_pad_trim(y, self.kernel)
        return F.gelu(y).transpose(1, 2)


class StackedConvPositionalEmbedding(nn.Module):
    """data2vec's positional encoder: ``depth`` x (grouped conv -> non-affine LN -> GELU).

    The reference implementations zero padding frames only at the input, so from the second
    convolution on the last valid frames read the previous layer's activations of the padding
    (in a batch) instead of zeros (alone) and the output depends on the amount of padding.
    Given ``padding_mask``, :meth:`forward` re-zeroes padding frames after every layer, which
    makes each utterance's valid frames what it gets alone.
    """

    def __init__(self, dim: int, kernel: int, groups: int, depth: int, eps: float = 1e-5):
        super().__init__()
        if dim % groups:
            raise ValueError(f"hidden_size {dim} is not divisible by pos_conv_groups {groups}")
        self.kernel = kernel
        self.groups = groups
        self.eps = eps
        self.layers = nn.ModuleList()
        for _ in range(depth):
            layer = nn.Module()
            layer.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
            self.layers.append(layer)

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """[B, T, D] -> [B, T, D]; ``padding_mask`` [B, T] (True on padding) re-zeroes padding
        frames between the convolutions (``None``: the reference behaviour)."""
        y = x.transpose(1, 2)
        keep = None if padding_mask is None else padding_mask.logical_not().unsqueeze(1).to(y.dtype)
        for layer in self.layers:
            y = _same_pad_trim(layer.conv(y), self.kernel)
            y = F.layer_norm(y.transpose(1, 2), (y.shape[1],), eps=self.eps).transpose(1, 2)
            y = F.gelu(y)
            if keep is not None:
                y = y * keep
        return y.transpose(1, 2)


# ----------------------------------------------------------------------------------------------
# Transformer
# ----------------------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention with separate q/k/v/out projections."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden_size {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        b, t, d = x.shape
        h, hd = self.num_heads, self.head_dim

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, h, hd).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        scores = torch.matmul(q * (hd ** -0.5), k.transpose(-1, -2))  # [B, H, T, T]
        if padding_mask is not None:
            scores = scores.masked_fill(padding_mask[:, None, None, :], float("-inf"))
        attn = torch.softmax(scores.float(), dim=-1).type_as(scores)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, t, d)
        return self.out_proj(out)


class FeedForward(nn.Module):
    def __init__(self, dim: int, ffn_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class TransformerLayer(nn.Module):
    """One encoder layer.

    post-LN (``layer_norm_first=False``): ``x = LN(x + Attn(x)); x = LN(x + FFN(x))``.
    layer-norm-first: ``x = x + Attn(LN(x)); x = x + FFN(LN(x))``.
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, layer_norm_first: bool,
                 eps: float = 1e-5):
        super().__init__()
        self.layer_norm_first = layer_norm_first
        self.attention = SelfAttention(dim, num_heads)
        self.attention_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.feed_forward = FeedForward(dim, ffn_dim)
        self.final_layer_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.attention(self.attention_layer_norm(x), padding_mask)
            x = x + self.feed_forward(self.final_layer_norm(x))
        else:
            x = self.attention_layer_norm(x + self.attention(x, padding_mask))
            x = self.final_layer_norm(x + self.feed_forward(x))
        return x


class TransformerEncoder(nn.Module):
    """Positional convolution + transformer layers.

    :meth:`forward` returns the SUPERB hidden states: the input of every layer (after the
    positional convolution, and after the encoder LayerNorm for post-LN models) followed by the
    encoder output (after the final LayerNorm for layer-norm-first models) - ``num_layers + 1``
    tensors ``[B, T', D]``.
    """

    def __init__(self, dim: int, num_layers: int, num_heads: int, ffn_dim: int,
                 layer_norm_first: bool, pos_conv_kernel: int, pos_conv_groups: int,
                 pos_conv_depth: int = 1, eps: float = 1e-5):
        super().__init__()
        self.layer_norm_first = layer_norm_first
        if pos_conv_depth == 1:
            self.pos_conv = ConvPositionalEmbedding(dim, pos_conv_kernel, pos_conv_groups)
        elif pos_conv_depth > 1:
            self.pos_conv = StackedConvPositionalEmbedding(dim, pos_conv_kernel, pos_conv_groups,
                                                           pos_conv_depth)
        else:
            raise ValueError(f"pos_conv_depth must be >= 1, got {pos_conv_depth}")
        self.layer_norm = nn.LayerNorm(dim, eps=eps)
        self.layers = nn.ModuleList(
            TransformerLayer(dim, num_heads, ffn_dim, layer_norm_first, eps=eps)
            for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor],
                frame_padding: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """``padding_mask`` [B, T] (True on padding) is the attention mask and, without
        ``frame_padding``, also the frames zeroed before the positional convolution (the
        reference behaviour). ``frame_padding`` (the exact padding frames) makes the encoder
        padding-exact: those frames are zeroed before the positional convolution and, for
        data2vec's stacked convolutions, again between them."""
        zero = padding_mask if frame_padding is None else frame_padding
        if zero is not None:
            x = x.masked_fill(zero.unsqueeze(-1), 0.0)
        if isinstance(self.pos_conv, StackedConvPositionalEmbedding):
            x = x + self.pos_conv(x, frame_padding)
        else:
            x = x + self.pos_conv(x)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        states = []
        for layer in self.layers:
            states.append(x)
            x = layer(x, padding_mask)
        if self.layer_norm_first:
            x = self.layer_norm(x)
        states.append(x)
        return states
