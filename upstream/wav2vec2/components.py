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
  lengths, the statistics are taken over each utterance's valid frames only (the unpadded
  convolutions' valid frames never read padding frames), so a padded batch gives each utterance
  exactly what it gets alone; without lengths (the peers' behaviour: fairseq, s3prl, torchaudio,
  Hugging Face) the statistics include the padding.
* :class:`FeatureProjection` - LayerNorm over the CNN channels followed by a linear projection.
* :class:`ConvPositionalEmbedding` - one grouped convolution with weight normalisation (``g``
  over the kernel axis), "same" padding that drops the last frame for even kernels, then GELU.
* :class:`StackedConvPositionalEmbedding` - data2vec's stack of grouped convolutions, each
  followed by a non-affine LayerNorm and GELU (padding frames optionally re-zeroed between them).
* :class:`SelfAttention` (one fused q/k/v product, ``F.scaled_dot_product_attention``),
  :class:`FeedForward`, :class:`TransformerLayer` (post-LN or layer-norm-first) and
  :class:`TransformerEncoder`.

Weights derived from parameters (the weight-normalised positional kernel, the concatenated q/k/v
projection) are computed once and reused while the parameters are unchanged
(:func:`superb.upstream.masking.derived`); the state-dict keys are the parameters' own.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..masking import derived, masked_group_norm

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

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x`` [B, C, T] -> [B, C', T'].

        ``lengths`` ([B], each utterance's valid *output* frames) makes the block padding-exact:
        group-norm statistics over the valid frames only. ``None`` normalises over every frame,
        padding included (the reference behaviour, and the same thing when there is no padding).
        Padding frames are not zeroed: an unpadded convolution's valid output frames never read
        its input's padding frames (frame ``t < floor((n - k) / s) + 1`` reads samples
        ``s t .. s t + k - 1 <= n - 1``), so only statistics across time need the lengths.
        """
        x = self.conv(x)
        if self.norm_kind == "group":
            if lengths is None:
                x = F.group_norm(x.float(), self.norm.num_groups, self.norm.weight.float(),
                                 self.norm.bias.float(), self.norm.eps).type_as(x)
            else:
                x = masked_group_norm(x, lengths, self.norm.num_groups, self.norm.weight,
                                      self.norm.bias, self.norm.eps).type_as(x)
        elif self.norm_kind == "layer":
            x = x.transpose(1, 2)
            x = F.layer_norm(x.float(), self.norm.normalized_shape, self.norm.weight.float(),
                             self.norm.bias.float(), self.norm.eps).type_as(x)
            x = x.transpose(1, 2)
        return F.gelu(x)


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
        group-norm layer takes its statistics over each utterance's valid frames only (the conv
        arithmetic gives them). Without it - or when no utterance is padded - every frame counts,
        as in the reference implementations. Frames beyond an utterance's valid length are left
        as computed (valid frames never read them; see :meth:`ConvBlock.forward`).
        """
        x = wavs.unsqueeze(1)
        lens = wav_lens
        if lens is not None and bool((lens >= wavs.shape[-1]).all()):
            lens = None  # nothing is padded: the plain statistics are the exact ones
        for block in self.conv_layers:
            valid = None
            if lens is not None:
                lens = torch.div(lens - block.kernel, block.stride, rounding_mode="floor").add(1).clamp(min=0)
                if block.norm_kind == "group":
                    valid = lens
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
        """The effective weight ``g * v / ||v||`` (recomputed from the parameters)."""
        norm = self.weight_v.norm(dim=(0, 1), keepdim=True)
        return self.weight_v * (self.weight_g / norm)

    def _conv_weight(self) -> torch.Tensor:
        """The effective weight as a channels-last ``[D, D / groups, 1, kernel]`` conv2d kernel,
        computed once while ``weight_g`` / ``weight_v`` stay unchanged (frozen model; the
        state-dict keys are still ``weight_g``, ``weight_v``, ``bias``)."""
        return derived(self, "conv_weight", (self.weight_v, self.weight_g),
                       lambda: self.weight().unsqueeze(2).contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> [B, T, D]
        # [B, T, D] read as a channels-last [B, D, 1, T] image: oneDNN's channels-last grouped
        # convolution is ~1.8x faster on CPU than conv1d's layout for this kernel (128 taps,
        # 16 groups), and the result comes back as [B, T, D] without a copy.
        y = F.conv2d(x.transpose(1, 2).unsqueeze(2), self._conv_weight(), self.bias,
                     padding=(0, self.kernel // 2), groups=self.groups).squeeze(2)
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
    """Multi-head scaled dot-product self-attention with separate q/k/v/out projections.

    Inference computes ``q``, ``k`` and ``v`` with one matrix product (the three projections'
    weights concatenated once and cached while they do not change; the parameters and their
    state-dict keys stay ``q_proj``, ``k_proj``, ``v_proj``) and the attention itself with
    ``F.scaled_dot_product_attention`` (scale ``head_dim ** -0.5``, the key-padding mask as a
    boolean ``attn_mask``, no dropout): the same softmax(q k^T / sqrt(d)) v as the matmul +
    softmax it replaces, within float rounding.
    """

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

    def _qkv(self):
        parts = (self.q_proj, self.k_proj, self.v_proj)
        sources = tuple(p for m in parts for p in (m.weight, m.bias))
        w = derived(self, "qkv_weight", sources, lambda: torch.cat([m.weight for m in parts], 0))
        b = derived(self, "qkv_bias", sources, lambda: torch.cat([m.bias for m in parts], 0))
        return w, b

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        b, t, d = x.shape
        h, hd = self.num_heads, self.head_dim
        w, bias = self._qkv()
        q, k, v = F.linear(x, w, bias).view(b, t, 3, h, hd).permute(2, 0, 3, 1, 4)  # 3 x [B, H, T, hd]
        mask = None if padding_mask is None else padding_mask.logical_not()[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=hd ** -0.5)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


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
