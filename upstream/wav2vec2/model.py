"""Configuration, assembled model and SUPERB upstream of the wav2vec 2.0 family.

:class:`Wav2Vec2Config` describes every supported variant with one dataclass. The family
presets (:data:`PRESETS`) give the published base / large hyper-parameters (fairseq configs of
wav2vec 2.0, HuBERT and data2vec audio):

============== ========= ======= ======= ============== ========= ================ ==========
preset         layers    width   heads   CNN mode       conv bias transformer      pos. conv
============== ========= ======= ======= ============== ========= ================ ==========
wav2vec2       12        768     12      group_norm     no        post-LN          128 / 16
wav2vec2_large 24        1024    16      layer_norm     yes       layer-norm-first 128 / 16
hubert         12        768     12      group_norm     no        post-LN          128 / 16
hubert_large   24        1024    16      layer_norm     no        layer-norm-first 128 / 16
data2vec       12        768     12      layer_norm     no        post-LN          5 x 19 / 16
data2vec_large 24        1024    16      layer_norm     no        post-LN          5 x 19 / 16
============== ========= ======= ======= ============== ========= ================ ==========

Parameter counts of the first five equal torchaudio's ``wav2vec2_base``,
``wav2vec2_large_lv60k``, ``hubert_base``, ``hubert_large`` and transformers' default
``Data2VecAudioConfig`` (tests/test_wav2vec2_presets.py); ``data2vec_large``'s conv bias is
unverified (only random-init uses a preset: checkpoints bring their own configuration).

Hidden states follow SUPERB: ``num_layers + 1`` tensors (the input of each transformer layer,
then the encoder output, after the final LayerNorm for layer-norm-first models), one frame per
320 samples, exact per-utterance lengths from the CNN's kernel/stride arithmetic, and attention
masks over padding frames.

Padding (option ``padding``): by default (``"exact"``) an utterance's valid frames do not
depend on what it is batched with: the group-norm CNN (Base models) takes its statistics over
each utterance's valid frames only (valid frames of the unpadded convolutions never read padding
frames), padding frames are zeroed before the positional convolution and, in data2vec's stack of positional
convolutions, again after every one of them. A padded batch then equals every utterance run
alone (within float rounding). ``padding="peer"`` reproduces the reference implementations
(fairseq, s3prl, Hugging Face, torchaudio) on padded batches bit for bit: group-norm statistics
include the padding and data2vec's positional stack is zeroed only at its input, so padding
changes the short utterances' frames (up to ~2 with random weights). Layer-norm-CNN models with
a single positional convolution (``wav2vec2_large``, ``hubert_large``) give the same valid
frames under both settings. fairseq's HuBERT uses a different attention-mask rule, available as
``padding_mask="fairseq_hubert"``; together with ``padding="peer"`` it matches fairseq / s3prl
HuBERT on padded batches (that rule attends to some padding frames, so it is not
padding-invariant).

Speed: a padded batch of a batch-invariant configuration (``padding="exact"``, conv attention
mask) is computed as length-sorted groups whose padding is at most ``group_padding`` (default
10 %) of their audio, and re-padded (:func:`superb.upstream.masking.forward_in_groups`): the same
values within float rounding, without computing most of the padding. ``group_padding = None``
computes the batch as given.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..base import Upstream, UpstreamOutput, conv_output_lengths, lengths_to_padding_mask, valid_mask
from ..masking import forward_in_groups
from .components import ConvFeatureExtractor, FeatureProjection, TransformerEncoder

DEFAULT_CONV_LAYERS: Tuple[Tuple[int, int, int], ...] = (
    ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
)

FAMILIES = ("wav2vec2", "hubert", "data2vec")
#: values of the ``padding`` option
PADDING_MODES = ("exact", "peer")
#: default ``Wav2Vec2Upstream.group_padding``: the padding a length group may carry (fraction of
#: its audio). Measured on CPU (benchmark/perf/extraction.py, docs/performance.md).
GROUP_PADDING = 0.1


class UnknownOptionError(TypeError, ValueError):
    """An upstream option that is not a configuration field (or not allowed with a checkpoint)."""


@dataclass
class Wav2Vec2Config:
    """Architecture of a wav2vec 2.0-family model (inference only).

    Field names follow fairseq where one exists (fairseq name in brackets).
    """

    family: str = "wav2vec2"
    #: CNN layers as (channels, kernel, stride) [conv_feature_layers]
    conv_layers: Tuple[Tuple[int, int, int], ...] = DEFAULT_CONV_LAYERS
    #: "group_norm" or "layer_norm" [extractor_mode]
    extractor_mode: str = "group_norm"
    conv_bias: bool = False
    hidden_size: int = 768  # [encoder_embed_dim]
    num_layers: int = 12  # [encoder_layers]
    num_heads: int = 12  # [encoder_attention_heads]
    ffn_dim: int = 3072  # [encoder_ffn_embed_dim]
    layer_norm_first: bool = False
    #: kernel of each positional convolution [conv_pos when pos_conv_depth == 1; fairseq
    #: data2vec derives each layer's kernel as max(3, conv_pos // pos_conv_depth)]
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16  # [conv_pos_groups]
    pos_conv_depth: int = 1  # [pos_conv_depth]
    layer_norm_eps: float = 1e-5
    #: linear projection CNN -> transformer [post_extract_proj; absent when the widths match]
    post_extract_proj: bool = True
    #: LayerNorm over the CNN output before the projection [HF: feat_proj_layer_norm]
    feature_layer_norm: bool = True
    #: which frames the attention ignores: "conv" (frames beyond the exact conv-arithmetic
    #: length; wav2vec 2.0 / data2vec in fairseq, Hugging Face and torchaudio for every family)
    #: or "fairseq_hubert" (fairseq HuBERT's rule: the sample mask is cut into
    #: T' equal groups and a frame is padding when its whole group is)
    padding_mask: str = "conv"
    #: "exact" (a padded batch gives every utterance's valid frames the values it gets alone:
    #: masked group-norm statistics, padding zeroed before the positional convolutions) or "peer" (the
    #: reference implementations' padded behaviour, bit for bit: statistics include padding)
    padding: str = "exact"
    #: per-utterance zero-mean unit-variance normalisation of the waveform [task.normalize]
    normalize: bool = False
    #: epsilon added to the variance in that normalisation (fairseq 1e-5, Hugging Face 1e-7)
    normalize_eps: float = 1e-5

    def __post_init__(self) -> None:
        self.conv_layers = tuple(tuple(int(v) for v in layer) for layer in self.conv_layers)
        for layer in self.conv_layers:
            if len(layer) != 3:
                raise ValueError(f"conv_layers entries must be (channels, kernel, stride), got {layer}")
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}: expected one of {FAMILIES}")
        if self.padding_mask not in ("conv", "fairseq_hubert"):
            raise ValueError(f"padding_mask must be 'conv' or 'fairseq_hubert', got {self.padding_mask!r}")
        if self.padding not in PADDING_MODES:
            raise ValueError(f"padding must be 'exact' or 'peer', got {self.padding!r}")
        if self.extractor_mode not in ("group_norm", "layer_norm"):
            raise ValueError(f"extractor_mode must be 'group_norm' or 'layer_norm', got {self.extractor_mode!r}")
        for name in ("hidden_size", "num_layers", "num_heads", "ffn_dim", "pos_conv_kernel",
                     "pos_conv_groups", "pos_conv_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "num_layers" else 1):
                raise ValueError(f"config field {name} must be a positive integer, got {value!r}")
        for name in ("conv_bias", "layer_norm_first", "post_extract_proj", "feature_layer_norm", "normalize"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"config field {name} must be true or false, got {getattr(self, name)!r}")
        for name in ("layer_norm_eps", "normalize_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"config field {name} must be a positive number, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.hidden_size % self.pos_conv_groups:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by pos_conv_groups {self.pos_conv_groups}"
            )

    @property
    def downsample_rate(self) -> int:
        rate = 1
        for _, _, stride in self.conv_layers:
            rate *= stride
        return rate

    def to_dict(self) -> Dict:
        d = dataclasses.asdict(self)
        d["conv_layers"] = [list(x) for x in self.conv_layers]
        return d

    @classmethod
    def field_names(cls) -> List[str]:
        return [f.name for f in fields(cls)]

    def replace(self, **overrides) -> "Wav2Vec2Config":
        unknown = sorted(set(overrides) - set(self.field_names()))
        if unknown:
            raise UnknownOptionError(
                f"unknown wav2vec2-family option(s): {', '.join(unknown)}. "
                f"Known options: {', '.join(self.field_names())}"
            )
        return dataclasses.replace(self, **overrides)


_BASE = dict(hidden_size=768, num_layers=12, num_heads=12, ffn_dim=3072)
_LARGE = dict(hidden_size=1024, num_layers=24, num_heads=16, ffn_dim=4096)

PRESETS: Dict[str, Wav2Vec2Config] = {
    "wav2vec2": Wav2Vec2Config(family="wav2vec2", extractor_mode="group_norm", conv_bias=False,
                               layer_norm_first=False, normalize=False, **_BASE),
    "wav2vec2_large": Wav2Vec2Config(family="wav2vec2", extractor_mode="layer_norm", conv_bias=True,
                                     layer_norm_first=True, normalize=True, **_LARGE),
    "hubert": Wav2Vec2Config(family="hubert", extractor_mode="group_norm", conv_bias=False,
                             layer_norm_first=False, normalize=False, **_BASE),
    "hubert_large": Wav2Vec2Config(family="hubert", extractor_mode="layer_norm", conv_bias=False,
                                   layer_norm_first=True, normalize=True, **_LARGE),
    "data2vec": Wav2Vec2Config(family="data2vec", extractor_mode="layer_norm", conv_bias=False,
                               layer_norm_first=False, pos_conv_kernel=19, pos_conv_depth=5,
                               normalize=True, **_BASE),
    "data2vec_large": Wav2Vec2Config(family="data2vec", extractor_mode="layer_norm", conv_bias=False,
                                     layer_norm_first=False, pos_conv_kernel=19, pos_conv_depth=5,
                                     normalize=True, **_LARGE),
}


class Wav2Vec2Model(nn.Module):
    """CNN feature encoder + feature projection + transformer encoder."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.config = config
        self.feature_extractor = ConvFeatureExtractor(config.conv_layers, config.extractor_mode,
                                                      config.conv_bias)
        self.feature_projection = FeatureProjection(
            self.feature_extractor.output_dim, config.hidden_size, eps=config.layer_norm_eps,
            layer_norm=config.feature_layer_norm, projection=config.post_extract_proj,
        )
        self.encoder = TransformerEncoder(
            config.hidden_size, config.num_layers, config.num_heads, config.ffn_dim,
            config.layer_norm_first, config.pos_conv_kernel, config.pos_conv_groups,
            config.pos_conv_depth, eps=config.layer_norm_eps,
        )

    def output_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(wav_lens, self.feature_extractor.kernel_strides)

    def forward(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None
                ) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Return ``(hidden_states, lengths)``; see :class:`TransformerEncoder`."""
        frames = self.extract(wavs, wav_lens)
        return self.encode(self.feature_projection(frames.features), frames), frames.lengths

    def extract(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None) -> "ConvFrames":
        """The CNN's frames of a padded batch, cut to the longest utterance, with the masks the
        encoder needs (:class:`ConvFrames`). Pretraining objectives call :meth:`extract`, project,
        replace masked frames and call :meth:`encode`; :meth:`forward` does the same unmasked."""
        if wav_lens is None:
            wav_lens = torch.full((wavs.shape[0],), wavs.shape[1], dtype=torch.long, device=wavs.device)
        lengths = self.output_lengths(wav_lens)
        if int(lengths.min()) <= 0:
            shortest = _min_samples(self)
            raise ValueError(
                f"an utterance of {int(wav_lens.min())} samples is shorter than the receptive field "
                f"of the CNN ({shortest} samples)"
            )
        exact = self.config.padding == "exact"
        features = self.feature_extractor(wavs, wav_lens if exact else None)
        frame_padding = lengths_to_padding_mask(lengths, features.shape[1])
        if self.config.padding_mask == "fairseq_hubert":
            padding_mask = _fairseq_hubert_padding_mask(wav_lens, wavs.shape[1], features.shape[1])
        else:
            padding_mask = frame_padding
        features = features[:, : int(lengths.max())]
        padding_mask = padding_mask[:, : int(lengths.max())]
        frame_padding = frame_padding[:, : int(lengths.max())]
        return ConvFrames(features, lengths, padding_mask if bool(padding_mask.any()) else None,
                          frame_padding if exact and bool(frame_padding.any()) else None)

    def encode(self, x: torch.Tensor, frames: "ConvFrames") -> List[torch.Tensor]:
        """The transformer's hidden states of projected frames ``x`` [B, T', D] (the masks of
        ``frames``, from :meth:`extract`)."""
        return self.encoder(x, frames.attention_mask, frames.frame_padding)


@dataclass
class ConvFrames:
    """What :meth:`Wav2Vec2Model.extract` returns: the CNN output ``features`` [B, T', C] (before
    the feature projection), each utterance's ``lengths`` in frames, the encoder's
    ``attention_mask`` (True on padding; None without padding) and the exact ``frame_padding``
    (padding-exact mode; None otherwise)."""

    features: torch.Tensor
    lengths: torch.Tensor
    attention_mask: Optional[torch.Tensor]
    frame_padding: Optional[torch.Tensor]


def _fairseq_hubert_padding_mask(wav_lens: torch.Tensor, num_samples: int, num_frames: int) -> torch.Tensor:
    """fairseq HuBERT's frame mask: drop ``num_samples % num_frames`` trailing samples of the
    sample mask, split the rest into ``num_frames`` equal groups, and call a frame padding when
    every sample of its group is padding (described in HuBERT's ``forward_padding_mask``)."""
    sample_mask = lengths_to_padding_mask(wav_lens, num_samples)
    extra = num_samples % num_frames
    if extra:
        sample_mask = sample_mask[:, :-extra]
    return sample_mask.view(sample_mask.shape[0], num_frames, -1).all(-1)


def _min_samples(model: Wav2Vec2Model) -> int:
    n = 1
    for kernel, stride in reversed(model.feature_extractor.kernel_strides):
        n = (n - 1) * stride + kernel
    return n


def normalize_waveforms(wavs: torch.Tensor, wav_lens: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-utterance zero mean, unit variance over the valid samples only (padding stays 0).

    Same as fairseq's ``F.layer_norm(wav, wav.shape)`` on each unpadded waveform: biased variance,
    ``eps = 1e-5`` inside the square root.
    """
    mask = valid_mask(wav_lens, wavs.shape[1]).to(wavs.dtype)
    n = wav_lens.to(wavs.dtype).unsqueeze(1)
    mean = (wavs * mask).sum(1, keepdim=True) / n
    var = (((wavs - mean) * mask) ** 2).sum(1, keepdim=True) / n
    return (wavs - mean) / torch.sqrt(var + eps) * mask


class Wav2Vec2Upstream(Upstream):
    """SUPERB upstream around :class:`Wav2Vec2Model` (frozen, eval mode)."""

    @classmethod
    def rate_for(cls, config: Optional[Wav2Vec2Config] = None) -> int:
        """The product of the CNN strides of ``config`` (320 = 20 ms for every preset)."""
        return (config or Wav2Vec2Config()).downsample_rate

    def __init__(self, config: Wav2Vec2Config, model: Optional[Wav2Vec2Model] = None,
                 source: str = "random-init", source_format: str = "random-init"):
        super().__init__()
        self.config = config
        self.model = model if model is not None else Wav2Vec2Model(config)
        self.downsample_rate = config.downsample_rate
        self.source = source
        self.source_format = source_format
        self.normalize_source = "configuration" if source_format == "random-init" else ""
        #: padded batches of a batch-invariant configuration are computed as length groups
        #: (:func:`superb.upstream.masking.forward_in_groups`) whose padding stays within this
        #: fraction of their audio; ``None`` computes the batch as given
        self.group_padding: Optional[float] = GROUP_PADDING
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @property
    def hidden_sizes(self) -> List[int]:
        return [self.config.hidden_size] * (self.config.num_layers + 1)

    def train(self, mode: bool = True):  # the backbone stays frozen in eval mode
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        self.check_input(wavs, wav_lens)
        wav_lens = wav_lens.to(wavs.device).long()
        if self.batch_invariant and self.group_padding is not None:
            return forward_in_groups(self._forward, wavs, wav_lens, self.group_padding)
        return self._forward(wavs, wav_lens)

    @property
    def batch_invariant(self) -> bool:
        """Whether an utterance's valid frames are independent of the rest of the batch: the
        default ``padding="exact"`` with the conv-arithmetic attention mask (``padding="peer"``
        and ``padding_mask="fairseq_hubert"`` reproduce the peers' batch dependence)."""
        return self.config.padding == "exact" and self.config.padding_mask == "conv"

    def _forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        wavs = wavs.float()
        if self.config.normalize:
            wavs = normalize_waveforms(wavs, wav_lens, eps=self.config.normalize_eps)
        else:
            wavs = wavs * valid_mask(wav_lens, wavs.shape[1])
        states, lengths = self.model(wavs, wav_lens)
        return UpstreamOutput(hidden_states=states, lengths=lengths)


def build_config(preset: str, **overrides) -> Wav2Vec2Config:
    if preset not in PRESETS:
        raise KeyError(f"unknown wav2vec2-family preset {preset!r}; known: {', '.join(PRESETS)}")
    return PRESETS[preset].replace(**overrides)
