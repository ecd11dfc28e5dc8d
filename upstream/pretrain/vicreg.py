"""Objective ``vicreg``: variance-invariance-covariance regularisation of a wav2vec 2.0 encoder's frames.

VICReg (Bardes, Ponce, LeCun 2022, arXiv 2105.04906) learns from two views of each input: the
**invariance** term pulls the two views' embeddings together, the **variance** term keeps every
embedding dimension's standard deviation over the batch above ``gamma`` (so the embeddings cannot
collapse to a constant) and the **covariance** term decorrelates the dimensions (so they cannot
collapse onto a few directions). Facts used (the paper, sec. 3 and its Algorithm 1; described, no
code copied):

* loss (:func:`vicreg_loss`) ``= lambda * s(Z, Z') + mu * [v(Z) + v(Z')] + nu * [c(Z) + c(Z')]``
  over ``n`` embeddings ``Z, Z'`` of dimension ``d``: ``s`` the mean squared error over all
  ``n * d`` elements (Algorithm 1's ``F.mse_loss``; eq. 4 writes the sum over ``d``, but the
  published coefficients belong to the mean); ``v(Z) = mean_j relu(gamma - sqrt(Var(z_j) + eps))``
  with the unbiased variance over the ``n`` rows, ``gamma = 1``, ``eps = 1e-4``; ``c(Z) = (1 / d)
  sum_{i != j} C(Z)_ij^2`` with ``C`` the unbiased covariance matrix; ``lambda = mu = 25``,
  ``nu = 1``.
* expander: ``Linear -> BatchNorm -> ReLU`` twice, then ``Linear`` (the paper: three layers of
  8192 on ResNet-50's 2048-d output), applied to each view separately (own batch statistics).

Why VICReg rather than Barlow Twins (our reasoning): Barlow Twins drives the cross-correlation
matrix of the two views, each dimension standardised over the batch, to the identity, so its
invariance and redundancy terms both pass through per-batch normalisation. Our batches are a few
hundred frames drawn from a handful of utterances (frames of one utterance are strongly
correlated, so the effective batch is small), and that standardisation divides by noisy
per-dimension standard deviations. VICReg's invariance is a plain frame-by-frame distance that
does not depend on the rest of the batch; variance and covariance are regularisers of each view
alone, the variance one only a hinge (inactive once a dimension's std exceeds ``gamma``), and its
coefficients do not have to be retuned with the embedding width (Barlow Twins' off-diagonal weight
5e-3 is tied to 8192 dimensions). The per-dimension std it bounds is also a direct collapse
diagnostic, which we report.

The views (ours, :func:`make_views`): each utterance's waveform, twice, each copy with its own
additive white Gaussian noise at an SNR drawn uniformly in ``[snr_min_db, snr_max_db]`` (relative
to the utterance's RMS over its valid samples), then its own span mask over the CNN frames
(:func:`~superb.upstream.pretrain.masked.span_mask`, ``mask_prob``, ``mask_length``) replaced by
the learned ``mask_emb`` (:func:`~superb.upstream.pretrain.masked.masked_forward`). Noise and
masking change no length, so the two views share the time axis: frame ``t`` of view A is paired
with frame ``t`` of view B. The embeddings are the encoder's last hidden state at every **valid**
frame of the batch (padding excluded), pooled over the batch into ``n`` rows, then expanded.

Observed (tiny, 250 steps on the default mini corpus): the expanded embeddings keep every
dimension's std over frames at 0.49-0.91 (no collapse), but the encoder's last hidden state --
what is exported -- varies little from frame to frame (per-dimension std 0.01-0.06 around a
common vector, against 0.7-1.2 at initialisation; effective rank 31 of 128, 71 at
initialisation): the expander's first BatchNorm makes the loss blind to that scale. A variance
term on the encoder output itself would bound it; not done.

Presets: ``base`` -- a wav2vec 2.0 Base encoder
(:data:`superb.upstream.wav2vec2.model.PRESETS` ``wav2vec2``: 7-layer group-norm CNN, 12 post-LN
layers of 768) with the paper's coefficients (25, 25, 1, ``gamma`` 1, ``eps`` 1e-4); ours: the
expander 3072-3072-3072 (the paper's 4x expansion of the representation width), views (mask 0.4
in spans of 5, SNR 5-20 dB), and wav2vec 2.0 Base's schedule as the loop allows it (Adam 5e-4,
32k warm-up steps then constant, 400k updates, crops of 250k samples, ~1.5 h of audio per
batch). ``tiny``: :func:`~superb.upstream.pretrain.masked.tiny_config` ("wav2vec2"; no feature
projection, as fairseq builds none when the CNN and encoder widths are equal, 128), expander
512-512-512, Adam 1e-3 with 20 warm-up steps, 250 steps of 12 s
batches cropped to 3 s (about 5 min on one CPU thread).

Export: a fairseq wav2vec 2.0 pretraining checkpoint holding the encoder only (no quantizer,
``project_q`` or ``final_proj``; the expander is not exported), in the format of
:mod:`superb.upstream.pretrain.fairseq_export` (and ``mask_emb``), what ``superb run --upstream wav2vec2
--upstream-ckpt FILE`` reads (:attr:`VICRegObjective.upstream_name` is ``wav2vec2``), as does
s3prl's fairseq-equivalent ``Wav2Vec2Model`` (its quantizer left at initialisation).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..base import valid_mask
from ..wav2vec2.model import PRESETS as W2V2_PRESETS
from ..wav2vec2.model import Wav2Vec2Config, Wav2Vec2Model
from .fairseq_export import (audio_pretraining_task, check_post_extract_proj, fairseq_checkpoint, fairseq_model_cfg,
                             fairseq_state, prepare_waveforms)
from .loop import LoopConfig, Objective
from .masked import HOP, masked_forward, span_mask, tiny_config, waveform_frames


def _tiny_model() -> Wav2Vec2Config:
    return tiny_config("wav2vec2")


@dataclass
class VICRegPretrainConfig:
    """What to pretrain: the encoder (``model``, a wav2vec2-family :class:`Wav2Vec2Config`, what
    the exported file describes), the expander widths, the loss coefficients and the views."""

    model: Wav2Vec2Config = field(default_factory=_tiny_model)
    #: output widths of the expander's three linear layers
    expander: Tuple[int, ...] = (512, 512, 512)
    sim_coeff: float = 25.0  # lambda
    std_coeff: float = 25.0  # mu
    cov_coeff: float = 1.0  # nu
    gamma: float = 1.0
    eps: float = 1e-4
    mask_prob: float = 0.4
    mask_length: int = 5
    snr_min_db: float = 5.0
    snr_max_db: float = 20.0

    def validate(self, where: str = "vicreg") -> None:
        m = self.model
        if m.family != "wav2vec2":
            raise ValueError(f"{where}: model.family must be 'wav2vec2' (exported as a wav2vec 2.0 checkpoint), "
                             f"got {m.family!r}")
        if m.padding != "exact" or m.padding_mask != "conv":
            raise ValueError(f"{where}: model.padding must be 'exact' and model.padding_mask 'conv' for "
                             f"training, got {m.padding!r} / {m.padding_mask!r}")
        check_post_extract_proj(m, where)
        if len(self.expander) < 1 or any(int(w) < 1 for w in self.expander):
            raise ValueError(f"{where}: expander must be one or more positive widths, got {self.expander!r}")
        for key in ("sim_coeff", "std_coeff", "cov_coeff"):
            if float(getattr(self, key)) < 0:
                raise ValueError(f"{where}: {key} must be >= 0, got {getattr(self, key)}")
        for key in ("gamma", "eps"):
            if not float(getattr(self, key)) > 0:
                raise ValueError(f"{where}: {key} must be > 0, got {getattr(self, key)}")
        if not 0.0 <= float(self.mask_prob) <= 1.0:
            raise ValueError(f"{where}: mask_prob must be in [0, 1], got {self.mask_prob}")
        if int(self.mask_length) < 1:
            raise ValueError(f"{where}: mask_length must be >= 1, got {self.mask_length}")
        if float(self.snr_min_db) > float(self.snr_max_db):
            raise ValueError(f"{where}: snr_min_db ({self.snr_min_db}) must be <= snr_max_db ({self.snr_max_db})")


PRESETS: Dict[str, Tuple[VICRegPretrainConfig, LoopConfig]] = {
    "tiny": (VICRegPretrainConfig(),
             LoopConfig(max_steps=250, lr=1e-3, batch_seconds=12.0, max_frames=150, grad_clip=5.0,
                        save_every=50, warmup_steps=20)),
    "base": (VICRegPretrainConfig(model=W2V2_PRESETS["wav2vec2"], expander=(3072, 3072, 3072)),
             LoopConfig(max_steps=400_000, lr=5e-4, batch_seconds=5600.0, max_frames=781, grad_clip=5.0,
                        save_every=5_000, warmup_steps=32_000)),
}


# -- the loss -----------------------------------------------------------------------------------------


def _off_diagonal_sq_sum(c: torch.Tensor) -> torch.Tensor:
    return (c ** 2).sum() - (torch.diagonal(c) ** 2).sum()


def vicreg_terms(za: torch.Tensor, zb: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(invariance, variance, covariance)`` of two ``[n, d]`` embeddings (rows paired): the mean
    squared error; ``v(Z) + v(Z')``; ``c(Z) + c(Z')`` (module docstring)."""
    if za.shape != zb.shape or za.dim() != 2:
        raise ValueError(f"vicreg_terms: expected two [n, d] embeddings of one shape, got "
                         f"{tuple(za.shape)} and {tuple(zb.shape)}")
    n, d = za.shape
    if n < 2:
        raise ValueError(f"vicreg_terms: variance and covariance need at least 2 embeddings, got {n}")
    inv = F.mse_loss(za, zb)
    var = za.new_zeros(())
    cov = za.new_zeros(())
    for z in (za, zb):
        z = z - z.mean(0)
        std = torch.sqrt(z.var(0) + eps)
        var = var + F.relu(gamma - std).mean()
        c = (z.T @ z) / (n - 1)
        cov = cov + _off_diagonal_sq_sum(c) / d
    return inv, var, cov


def vicreg_loss(za: torch.Tensor, zb: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """``lambda * invariance + mu * variance + nu * covariance`` (:func:`vicreg_terms`)."""
    inv, var, cov = vicreg_terms(za, zb, gamma, eps)
    return sim_coeff * inv + std_coeff * var + cov_coeff * cov


# -- the views ----------------------------------------------------------------------------------------


def add_noise(wavs: torch.Tensor, wav_lens: torch.Tensor, snr_min_db: float, snr_max_db: float,
              g: torch.Generator) -> torch.Tensor:
    """White Gaussian noise at an SNR uniform in ``[snr_min_db, snr_max_db]`` per utterance (power
    relative to its valid samples); padding stays 0."""
    B, N = wavs.shape
    valid = valid_mask(wav_lens, N).to(wavs.dtype)
    n = wav_lens.to(wavs.dtype).clamp(min=1)
    rms = torch.sqrt(((wavs * valid) ** 2).sum(1) / n)
    snr = snr_min_db + (snr_max_db - snr_min_db) * torch.rand(B, generator=g)
    scale = rms * 10.0 ** (-snr.to(wavs.dtype) / 20.0)
    noise = torch.randn(B, N, generator=g).to(wavs)
    return (wavs + noise * scale[:, None]) * valid


def make_views(cfg: VICRegPretrainConfig, wavs: torch.Tensor, wav_lens: torch.Tensor, frame_lens: torch.Tensor,
               g: torch.Generator):
    """Two ``(noisy waveforms, CNN-frame mask)`` views of a batch (module docstring)."""
    views = []
    for _ in range(2):
        noisy = add_noise(wavs.cpu(), wav_lens.cpu(), cfg.snr_min_db, cfg.snr_max_db, g).to(wavs.device)
        mask = span_mask(frame_lens.cpu(), int(frame_lens.max()), cfg.mask_prob, cfg.mask_length, g)
        views.append((noisy, mask))
    return views


class Expander(nn.Module):
    """``(Linear -> BatchNorm1d -> ReLU) x (k - 1) -> Linear`` (widths ``widths``)."""

    def __init__(self, dim: int, widths: Tuple[int, ...]):
        super().__init__()
        layers = []
        for i, w in enumerate(widths):
            layers.append(nn.Linear(dim, int(w)))
            if i < len(widths) - 1:
                layers += [nn.BatchNorm1d(int(w)), nn.ReLU()]
            dim = int(w)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class VICRegObjective(Objective):
    name = "vicreg"
    upstream_name = "wav2vec2"
    hop = HOP

    def __init__(self, cfg: VICRegPretrainConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        m = cfg.model
        self.model = Wav2Vec2Model(m)
        self.mask_emb = nn.Parameter(torch.rand(m.hidden_size))  # fairseq: uniform [0, 1)
        self.expander = Expander(m.hidden_size, tuple(cfg.expander))
        self.min_samples = 2 * HOP

    def features(self, wavs, wav_lens):
        return waveform_frames(wavs, wav_lens)

    def embeddings(self, feats: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator):
        """``(za, zb, ha, hb)``: the expanded embeddings ``[n, e]`` of the two views and the encoder's
        last hidden states ``[n, H]`` they come from, over every valid frame of the batch."""
        wavs, wav_lens = prepare_waveforms(self.cfg.model, feats, lengths)
        frame_lens = self.model.output_lengths(wav_lens.cpu())
        out = []
        for noisy, mask in make_views(self.cfg, wavs, wav_lens, frame_lens, generator):
            res = masked_forward(self.model, noisy, wav_lens.to(noisy.device), mask, self.mask_emb)
            last = res.states[-1]
            valid = valid_mask(res.frames.lengths, last.shape[1])
            out.append(last[valid])
        ha, hb = out
        return self.expander(ha), self.expander(hb), ha, hb

    def loss(self, feats, lengths, generator):
        c = self.cfg
        za, zb, _, _ = self.embeddings(feats, lengths, generator)
        return vicreg_loss(za, zb, c.sim_coeff, c.std_coeff, c.cov_coeff, c.gamma, c.eps)

    def export(self, step: int, loop: LoopConfig) -> Dict[str, Any]:
        c, m = self.cfg, self.cfg.model
        state: Dict[str, Any] = fairseq_state(self.model)
        state["mask_emb"] = self.mask_emb.detach().cpu().clone()
        model_cfg = fairseq_model_cfg(m, mask_prob=float(c.mask_prob), mask_length=int(c.mask_length))
        return fairseq_checkpoint(model_cfg, audio_pretraining_task(m, loop), state, step, loop,
                                  sections={"common": {"seed": 1}})


def preset(name: str, preset_name: str):
    cfg, loop = PRESETS[preset_name]
    return copy.deepcopy(cfg), copy.deepcopy(loop)


def build(name: str, cfg: VICRegPretrainConfig) -> VICRegObjective:
    return VICRegObjective(cfg)
