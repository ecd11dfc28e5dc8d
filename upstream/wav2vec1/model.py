"""wav2vec (Schneider et al. 2019) and vq-wav2vec (Baevski et al. 2020).

Architecture (fairseq's ``wav2vec`` model; hyper-parameter and weight names as in fairseq /
s3prl's copy of it - facts only, the code is our own):

* feature extractor: 1-D convolutions without bias or padding, ``conv_feature_layers`` =
  ``[(dim, kernel, stride), ...]``, each followed by a one-group GroupNorm (normalises each
  utterance over channels *and time*, affine unless ``non_affine_group_norm``) and the activation
  (ReLU / GELU); optional scaled skip connections (``skip_connections_feat``); optional
  ``log(|x| + 1)`` compression;
* vq-wav2vec only: a quantiser between extractor and aggregator - Gumbel (``weight_proj`` MLP of
  ``vq_depth`` layers -> per-group argmax at inference -> the group's ``vars`` vector) or k-means
  (grouped 1x1 convolution + GroupNorm(groups) -> nearest ``embedding`` per group);
* aggregator: causal convolutions (left padding of ``kernel - 1`` frames, replicated or zero),
  each followed by the one-group GroupNorm and the activation, with scaled residual connections
  (``skip_connections_agg``; a bias-free 1x1 ``residual_proj`` when the width changes); or a GRU
  (``aggregator='gru'``; fairseq hands it ``[B, T, C]`` as if it were time-first, so for one
  utterance it runs one step per frame from a zero state - reproduced as such).

Hidden states (160 samples per frame): ``z`` (the extractor output, before quantisation), the
inputs of aggregator convolutions ``1..N-1`` (the outputs of convolutions ``0..N-2`` after their
residual) and ``c`` (the aggregator output) - ``N + 1`` states, what s3prl's hooks return; a GRU
aggregator gives ``z`` and ``c``.

Frames: ``floor((n - k) / s) + 1`` through every extractor convolution; for the released
extractor (kernels 10, 8, 4, 4, 4, 1, 1, 1, strides 5, 4, 2, 2, 2, 1, 1, 1: receptive field 465
samples, stride 160) that is exactly ``floor((n - 465) / 160) + 1``. The causal aggregator
convolutions (stride 1) keep the count.

Batching: fairseq and s3prl normalise over time on the zero-padded batch, so the statistics
of a short utterance include padding frames; we use each utterance's valid frames only (as
fairseq does for the utterance alone). Skip connections subsample the residual with the
utterance's own length ratio. The tests compare against the references per utterance.

Checkpoints (:mod:`.import_fairseq`): fairseq legacy ``{'args': Namespace, 'model': state_dict, ...}`` (missing arguments
take fairseq's ``base_wav2vec_architecture`` defaults), fairseq ``{'cfg': {'model': ...}, 'model'}``
and s3prl's converted ``{'task_cfg', 'model_cfg', 'model_weight'}`` (missing fields take the
``Wav2VecConfig`` dataclass defaults). Layer lists are parsed without ``eval``. Pretraining-only
weights (``wav2vec_predictions.*``, ``project_features.*``) are dropped; the task's ``normalize``
flag is not used (these models take the raw wave; s3prl ignores it too).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Upstream, UpstreamOutput, conv_output_lengths
from ..masking import masked_group_norm, zero_padding
from ..state_dict import parse_layer_spec

FEATURE_LAYERS_8 = "[(512, 10, 5), (512, 8, 4), (512, 4, 2), (512, 4, 2), (512, 4, 2), (512, 1, 1), (512, 1, 1), (512, 1, 1)]"
AGGREGATOR_LAYERS_12 = ("[(512, 2, 1), (512, 3, 1), (512, 4, 1), (512, 5, 1), (512, 6, 1), (512, 7, 1), "
                        "(512, 8, 1), (512, 9, 1), (512, 10, 1), (512, 11, 1), (512, 12, 1), (512, 13, 1)]")


@dataclass
class Wav2VecConfig:
    """fairseq argument names. Defaults: fairseq's ``Wav2VecConfig`` dataclass (wav2vec large)."""

    conv_feature_layers: str = FEATURE_LAYERS_8
    conv_aggregator_layers: str = AGGREGATOR_LAYERS_12
    aggregator: str = "cnn"
    gru_dim: int = 512
    no_conv_bias: bool = False
    agg_zero_pad: bool = False
    skip_connections_feat: bool = False
    skip_connections_agg: bool = True
    residual_scale: float = 0.5
    log_compression: bool = True
    non_affine_group_norm: bool = False
    activation: str = "relu"
    project_features: str = "none"
    vq_type: str = "none"
    vq_vars: int = 320
    vq_groups: int = 2
    vq_dim: int = 0
    vq_depth: int = 1
    combine_groups: bool = False

    def validate(self, where: str) -> None:
        if self.aggregator not in ("cnn", "gru"):
            raise ValueError(f"{where}: aggregator {self.aggregator!r} is not 'cnn' or 'gru'")
        if self.activation not in ("relu", "gelu"):
            raise ValueError(f"{where}: activation {self.activation!r} is not 'relu' or 'gelu'")
        if self.vq_type not in ("none", "gumbel", "kmeans", None):
            raise ValueError(f"{where}: vq_type {self.vq_type!r} is not 'none', 'gumbel' or 'kmeans'")
        parse_layer_spec(self.conv_feature_layers, "conv_feature_layers", where)
        if self.aggregator == "cnn":
            parse_layer_spec(self.conv_aggregator_layers, "conv_aggregator_layers", where)


#: fairseq's base_wav2vec_architecture: defaults of arguments absent from a legacy ``args``
LEGACY_ARGS_DEFAULTS = dict(
    conv_feature_layers="[(512, 10, 5)] + [(512, 8, 4)] + [(512, 4, 2)] * 3",
    conv_aggregator_layers="[(512, 3, 1)] * 9",
    aggregator="cnn", gru_dim=512, no_conv_bias=False, agg_zero_pad=False, skip_connections_feat=False,
    skip_connections_agg=False, residual_scale=0.5, log_compression=False, non_affine_group_norm=False,
    activation="relu", project_features="none", vq_type="none", vq_vars=320, vq_groups=2, vq_dim=0,
    vq_depth=1, combine_groups=False,
)


class _GroupNorm(nn.Module):
    """One-group (or ``groups``-group) GroupNorm with masked statistics."""

    def __init__(self, groups: int, channels: int, affine: bool = True, eps: float = 1e-5):
        super().__init__()
        self.groups = groups
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return masked_group_norm(x, lengths, self.groups, self.weight, self.bias, self.eps)


class _GumbelQuantizer(nn.Module):
    def __init__(self, dim: int, cfg: Wav2VecConfig, act: nn.Module):
        super().__init__()
        vq_dim = cfg.vq_dim if cfg.vq_dim > 0 else dim
        self.groups, self.num_vars, self.combine = cfg.vq_groups, cfg.vq_vars, cfg.combine_groups
        self.var_dim = vq_dim // cfg.vq_groups
        self.vars = nn.Parameter(torch.rand(1, (1 if self.combine else self.groups) * self.num_vars, self.var_dim))
        if cfg.vq_depth > 1:
            inner = dim * 2
            blocks = [nn.Sequential(nn.Linear(dim if i == 0 else inner, inner), act) for i in range(cfg.vq_depth - 1)]
            self.weight_proj = nn.Sequential(*blocks, nn.Linear(inner, self.groups * self.num_vars))
        else:
            self.weight_proj = nn.Linear(dim, self.groups * self.num_vars)
        self.out_dim = vq_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # x [B, C, T]
        B, C, T = x.shape
        logits = self.weight_proj(x.transpose(1, 2)).view(B, T, self.groups, self.num_vars)
        idx = logits.argmax(dim=-1)  # [B, T, G]
        table = self.vars.squeeze(0)
        offset = 0 if self.combine else torch.arange(self.groups, device=x.device) * self.num_vars
        q = table[idx + offset]  # [B, T, G, var_dim]
        return q.reshape(B, T, -1).transpose(1, 2)


class _KmeansQuantizer(nn.Module):
    def __init__(self, dim: int, cfg: Wav2VecConfig):
        super().__init__()
        vq_dim = cfg.vq_dim if cfg.vq_dim > 0 else dim
        self.groups, self.combine = cfg.vq_groups, cfg.combine_groups
        self.var_dim = vq_dim // cfg.vq_groups
        self.embedding = nn.Parameter(0.01 * torch.randn(cfg.vq_vars, 1 if self.combine else self.groups, self.var_dim))
        self.proj_conv = nn.Conv1d(dim, dim, 1, groups=cfg.vq_groups, bias=False)
        self.proj_norm = _GroupNorm(cfg.vq_groups, dim)
        self.out_dim = vq_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, C, T = x.shape
        ze = self.proj_norm(self.proj_conv(x), lengths)
        ze = ze.view(B, self.groups, self.var_dim, T).permute(0, 3, 1, 2)  # [B, T, G, d]
        emb = self.embedding.expand(-1, self.groups, -1)  # [V, G, d]
        dist = (ze.unsqueeze(3) - emb.permute(1, 0, 2).unsqueeze(0).unsqueeze(0)).norm(dim=-1)  # [B,T,G,V]
        idx = dist.argmin(dim=-1)  # [B, T, G]
        q = emb.permute(1, 0, 2)[torch.arange(self.groups, device=x.device), idx]  # [B, T, G, d]
        return q.reshape(B, T, -1).transpose(1, 2)


class Wav2VecUpstream(Upstream):
    """wav2vec / vq-wav2vec upstream (see module docstring)."""

    @classmethod
    def rate_for(cls, config: Optional[Wav2VecConfig] = None) -> int:
        """The product of the feature extractor's strides (160 for the released models)."""
        layers = parse_layer_spec((config or Wav2VecConfig()).conv_feature_layers, "conv_feature_layers", "wav2vec")
        return int(math.prod(s for _, _, s in layers))

    def __init__(self, cfg: Wav2VecConfig, where: str = "wav2vec config"):
        super().__init__()
        cfg.validate(where)
        self.config = cfg
        act = nn.ReLU() if cfg.activation == "relu" else nn.GELU()
        self.act = act
        affine = not cfg.non_affine_group_norm
        self.feature_layers = parse_layer_spec(cfg.conv_feature_layers, "conv_feature_layers", where)
        self.fe_convs = nn.ModuleList()
        self.fe_norms = nn.ModuleList()
        in_d = 1
        for dim, k, s in self.feature_layers:
            self.fe_convs.append(nn.Conv1d(in_d, dim, k, stride=s, bias=False))
            self.fe_norms.append(_GroupNorm(1, dim, affine))
            in_d = dim
        embed = in_d
        self.downsample_rate = int(math.prod(s for _, _, s in self.feature_layers))  # = rate_for(cfg)
        self.quantizer: Optional[nn.Module] = None
        if cfg.vq_type == "gumbel":
            self.quantizer = _GumbelQuantizer(embed, cfg, act)
        elif cfg.vq_type == "kmeans":
            self.quantizer = _KmeansQuantizer(embed, cfg)
        self.agg_layers: List[Tuple[int, int, int]] = []
        self._sizes = [embed]
        if cfg.aggregator == "cnn":
            self.agg_layers = parse_layer_spec(cfg.conv_aggregator_layers, "conv_aggregator_layers", where)
            self.agg_convs = nn.ModuleList()
            self.agg_norms = nn.ModuleList()
            self.agg_proj = nn.ModuleDict()
            in_d = embed
            for i, (dim, k, s) in enumerate(self.agg_layers):
                if in_d != dim and cfg.skip_connections_agg:
                    self.agg_proj[str(i)] = nn.Conv1d(in_d, dim, 1, bias=False)
                self.agg_convs.append(nn.Conv1d(in_d, dim, k, stride=s, bias=not cfg.no_conv_bias))
                self.agg_norms.append(_GroupNorm(1, dim, affine))
                in_d = dim
            self._sizes += [d for d, _, _ in self.agg_layers]
        else:
            self.agg_gru = nn.GRU(embed, cfg.gru_dim, num_layers=1)
            self._sizes.append(cfg.gru_dim)
        self.residual_scale = math.sqrt(cfg.residual_scale)
        self.eval()

    @property
    def hidden_sizes(self) -> List[int]:
        return list(self._sizes)

    def frame_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        n = conv_output_lengths(wav_lens, [(k, s) for _, k, s in self.feature_layers])
        return conv_output_lengths(n, [(1, s) for _, _, s in self.agg_layers])

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        self.check_input(wavs, wav_lens)
        cfg = self.config
        x = zero_padding(wavs.float(), wav_lens).unsqueeze(1)
        n = wav_lens.to(wavs.device).long()
        for conv, norm, (_, k, s) in zip(self.fe_convs, self.fe_norms, self.feature_layers):
            residual, r_len = x, n
            n = conv_output_lengths(n, [(k, s)])
            if int(n.min()) <= 0:
                raise ValueError(f"utterances too short for the wav2vec feature extractor: {wav_lens.tolist()} samples")
            x = self.act(norm(conv(x), n))
            if cfg.skip_connections_feat and x.shape[1] == residual.shape[1]:
                x = (x + _subsample_residual(residual, r_len, n, x.shape[2])) * self.residual_scale
        if cfg.log_compression:
            x = (x.abs() + 1).log()
        z = x
        states = [z.transpose(1, 2)]
        if self.quantizer is not None:
            x = self.quantizer(x, n)
        if cfg.aggregator == "gru":
            # fairseq feeds [B, T, C] to a sequence-first GRU, so it recurs over the *batch*; for an
            # utterance on its own that is one GRU step per frame from a zero state
            B, C, T = x.shape
            c = self.agg_gru(x.transpose(1, 2).reshape(1, B * T, C))[0].view(B, T, -1)
            states.append(c)
            return UpstreamOutput(hidden_states=states, lengths=n)
        for i, (conv, norm, (_, k, s)) in enumerate(zip(self.agg_convs, self.agg_norms, self.agg_layers)):
            if i > 0:
                states.append(x.transpose(1, 2))
            residual = x
            pad = F.pad(x, (k - 1, 0)) if cfg.agg_zero_pad else F.pad(x, (k - 1, 0), mode="replicate")
            n = conv_output_lengths(n, [(1, s)])
            y = self.act(norm(conv(pad), n))
            if cfg.skip_connections_agg:
                if str(i) in self.agg_proj:
                    residual = self.agg_proj[str(i)](residual)
                y = (y + residual) * self.residual_scale
            x = y
        states.append(x.transpose(1, 2))
        return UpstreamOutput(hidden_states=states, lengths=n)


def _subsample_residual(residual: torch.Tensor, r_len: torch.Tensor, n: torch.Tensor, T: int) -> torch.Tensor:
    """fairseq's ``residual[..., ::r // t][..., :t]`` with each utterance's own lengths."""
    step = torch.div(r_len, n.clamp(min=1), rounding_mode="floor").clamp(min=1)  # [B]
    idx = (torch.arange(T, device=residual.device)[None, :] * step[:, None]).clamp(max=residual.shape[2] - 1)
    return torch.gather(residual, 2, idx.unsqueeze(1).expand(-1, residual.shape[1], -1))
