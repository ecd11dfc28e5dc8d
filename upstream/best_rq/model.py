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
(:func:`superb.upstream.masking.repeat_frames`, factor ``640 // label_rate``).

Batching: SpeechBrain convolves the padded batch (the reflect padding of a short utterance then
reads the batch's padding, and the Conformer's depthwise convolution reads padding frames), and
takes the fbank's 80 dB floor over the padded spectrogram. Here every utterance is computed as
SpeechBrain computes it alone (reflection at its own last frame, zeros after it in the
convolution module, statistics over its own frames), whatever the batch.

Checkpoints: :mod:`.import_speechbrain` (SpeechBrain folders) and :mod:`.import_superb`
(superb's own file). SpeechBrain stores no architecture description in the checkpoint: it is read from the weight
shapes (CNN channels and kernels, ``d_model``, layers, heads from ``pos_bias_u``, feed-forward
width, convolution kernel) and, when a ``hyperparams.yaml`` sits in the folder or up to two
levels above it (SpeechBrain's experiment layout), from that file (read as plain YAML, tags
ignored, nothing executed) for what shapes cannot tell: ``n_mels``, CNN strides, the Conformer
activation. Otherwise the recipe's values are used (80 mels, strides 2, GELU); options override
any of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Upstream, UpstreamOutput, valid_mask
from ..frontends import centered_stft_frame_lengths
from ..masking import forward_in_groups, zero_padding
from .components import (ACTIVATIONS as _ACTIVATIONS, _ConformerLayer, _ConvBlock, _Fbank, _same_out,
                         relative_position_table)


#: default ``group_padding`` of the transformer upstreams (see superb.upstream.wav2vec2.model)
GROUP_PADDING = 0.1


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


# ------------------------------------------------------------------------------------------------
# the upstream
# ------------------------------------------------------------------------------------------------


class BestRQUpstream(Upstream):
    """BEST-RQ upstream (see module docstring)."""

    @classmethod
    def rate_for(cls, config: Optional[BestRQConfig] = None) -> int:
        """``hop_length * prod(cnn_strides)`` (640 samples = 40 ms for the recipe)."""
        cfg = config or BestRQConfig()
        return cfg.hop_length * math.prod(cfg.cnn_strides)

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
        self.downsample_rate = self.rate_for(cfg)
        #: padding a length group may carry (fraction of its audio); None: the batch as given
        self.group_padding: Optional[float] = GROUP_PADDING
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
        """All hidden states; a padded batch is computed as length groups
        (:func:`~superb.upstream.masking.forward_in_groups`, ``self.group_padding``): every
        utterance is computed as it is alone (see "Batching" above), so this changes no value."""
        self.check_input(wavs, wav_lens)
        return forward_in_groups(self._forward, wavs, wav_lens.to(wavs.device).long(), self.group_padding)

    def _forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
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
