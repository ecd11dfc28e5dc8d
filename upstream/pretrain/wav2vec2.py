"""Objective ``wav2vec2``: masked contrastive learning over quantized latents (wav2vec 2.0,
Baevski, Zhou, Mohamed, Auli 2020, arXiv 2006.11477).

The CNN turns the waveform into latent frames ``z``; spans of them are masked (replaced by the
learned ``mask_emb`` after the feature projection) and the transformer reads the result. The
unmasked latents (after the CNN LayerNorm, before the projection) of the masked frames go
through a Gumbel-softmax product quantizer; for every masked frame the transformer output
(``final_proj``) must pick its own quantized latent (``project_q``) among ``K`` distractors,
the quantized latents of other masked frames of the same utterance. Features: the waveform
itself, as rows of 320 samples (:func:`superb.upstream.pretrain.masked.waveform_frames`); the
model trained is :class:`superb.upstream.wav2vec2.model.Wav2Vec2Model`, the network
``superb run --upstream wav2vec2`` extracts from.

Loss (:func:`wav2vec2_loss`; the paper's eq. 2-4 and fairseq's ``wav2vec`` criterion with
``infonce``, described, not copied):

* contrastive: ``logits[n, k] = cos(c_n, q_k) / kappa`` over the positive ``q_n`` (index 0) and
  the ``K`` negatives; a negative identical to the positive gets ``-inf`` (fairseq's
  ``neg_is_pos``; here "identical" means the same codeword in every group, decided from the code
  indices, which is the same as fairseq's exact vector equality without its float
  coincidences); cross-entropy with target 0, averaged over the masked frames (fairseq sums and
  divides the gradient by the number of masked frames: the same);
* diversity: ``(G V - sum_g exp(H(p_g))) / (G V)`` with ``p_g`` the mean, over the batch's masked
  frames, of the softmax of the quantizer logits of group ``g`` (no Gumbel noise, no
  temperature; ``log(p + 1e-7)`` as fairseq), weight ``alpha``;
* feature penalty: the mean of the squared CNN outputs, weight 10. fairseq averages over the
  padded batch; here over the valid frames only, so the loss does not depend on the padding.

Negatives (:func:`sample_negatives`): ``K`` per masked frame, uniformly with replacement among
the *other* masked frames of the same utterance (fairseq's rule: a draw from ``M - 1`` indices
shifted past the positive). Utterances with fewer than 2 masked frames add no contrastive terms.
Masks: :func:`superb.upstream.pretrain.masked.span_mask` (``mask_prob`` 0.65, spans of 10, at
least 2 spans; per utterance, fairseq trims every row to the batch's smallest count).

Quantizer (:class:`GumbelQuantizer`, fairseq's ``GumbelVectorQuantizer`` layout): a linear map
``weight_proj`` (C -> G V; weights N(0, 1), zero bias) gives per-group logits; training draws
hard Gumbel-softmax one-hots at temperature ``tau`` (straight-through: the forward value is the
exact one-hot, the gradient that of the soft sample); evaluation takes the arg-max. The chosen
entries of ``vars`` ``[1, G V, final_dim / G]`` (uniform [0, 1) init) are concatenated and
``project_q`` maps them to ``final_dim``. ``tau = max(2.0 * 0.999995 ** updates, 0.5)``
(fairseq ``latent_temp``), with ``updates`` a buffer set in :meth:`Wav2Vec2Objective.after_step`
(so a resumed run continues the schedule exactly). Gumbel noise, masks and negatives are all
drawn from the loop's generator.

Initialisation (fairseq's): CNN convolutions Kaiming-normal; transformer linear layers N(0, 0.02)
with zero biases (``init_bert_params``); positional convolution as the upstream model
initialises it; ``mask_emb`` uniform [0, 1). ``feature_grad_mult`` scales the CNN's gradient
(fairseq ``GradMultiply``; Base 0.1). Not done: dropout (fairseq Base: 0.1 in the transformer,
``dropout_input`` / ``dropout_features`` 0.1) and LayerDrop 0.05: the upstream model has no
dropout; the exported config says 0.

Facts and sources: fairseq's ``examples/wav2vec/config/pretraining/wav2vec2_base_librispeech.yaml``
(criterion ``loss_weights [0.1, 10]``, ``final_dim`` 256, ``feature_grad_mult`` 0.1, Adam
``lr`` 5e-4, betas (0.9, 0.98), eps 1e-6, weight decay 0.01, 32k warm-up updates of 400k,
polynomial decay, ``max_sample_size`` 250000, 1.4M samples per GPU x 64 GPUs) and the model
config defaults in s3prl 0.4.18's copy of fairseq's model,
``s3prl/upstream/wav2vec2/wav2vec2_model.py`` (``mask_prob`` 0.65, ``mask_length`` 10,
``latent_vars`` 320, ``latent_groups`` 2, ``num_negatives`` 100, ``logit_temp`` 0.1,
``latent_temp`` (2, 0.5, 0.999995)); the paper (sec. 3.2, 4.2: G = 2, V = 320, K = 100,
kappa = 0.1, alpha = 0.1, p = 0.065 starts x M = 10 frames: the same 65 % as ``mask_prob``).

Presets: ``base`` = the paper's Base (:data:`superb.upstream.wav2vec2.model.PRESETS`
``wav2vec2``: 7-layer 512-channel CNN, 12 x 768 post-LN transformer) with the values above;
its loop: Adam 5e-4, 32k linear warm-up steps of 400k -- the shared loop has only linear
warm-up then a constant rate (no polynomial decay, plain Adam: default betas, no weight
decay), 96 s of padded audio per batch (our choice for one device; the published batch is
~1.6 h: 89.6M samples) and crops of 781 frames (250000 samples, fairseq ``max_sample_size``). ``tiny`` = :func:`~superb.upstream.pretrain.masked.tiny_config`
(4-layer 128-channel CNN, 4 x 128 transformer; no ``post_extract_proj``, as fairseq builds a
model whose CNN is as wide as its transformer) with a small quantizer (G = 2, V = 32,
``final_dim`` 64), 20 negatives, the temperature falling 2.0 -> 0.5 within its 400 steps
(decay 0.995 per step, the floor from step 277: our choice), ``feature_grad_mult`` 0.1 (as
Base), Adam 1e-3 with 40 warm-up steps, 16 s of audio per batch, crops of 250 frames (5 s);
on the default mini corpus (1000 files, 43 min) on one CPU thread it takes about 5 minutes
(measured 4 min 47 s, 400 steps; the loss of steps 51-100 3.08 -> 2.85 over 351-400).

Export: a fairseq wav2vec 2.0 checkpoint (weight names, common model fields and layout:
:mod:`superb.upstream.pretrain.fairseq_export`) plus the pretraining weights ``quantizer.vars``,
``quantizer.weight_proj.*``, ``project_q.*``, ``final_proj.*`` and ``mask_emb``, and the
objective's model fields (``quantize_targets``, ``latent_vars``, ``latent_groups``,
``final_dim``, ...). ``superb run --upstream wav2vec2
--upstream-ckpt FILE`` and fairseq's (s3prl's) ``Wav2Vec2Model`` read it unchanged (tested).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..base import valid_mask
from ..wav2vec2.model import PRESETS as MODEL_PRESETS
from ..wav2vec2.model import Wav2Vec2Config, Wav2Vec2Model, normalize_waveforms
from .fairseq_export import (audio_pretraining_task, check_post_extract_proj, fairseq_checkpoint, fairseq_model_cfg,
                             fairseq_state, module_state, receptive_field, register_grad_multiply)
from .loop import LoopConfig, Objective
from .masked import HOP, frames_to_waveform, masked_forward, span_mask, tiny_config, waveform_frames


def _base_model() -> Wav2Vec2Config:
    return MODEL_PRESETS["wav2vec2"].replace()


@dataclass
class Wav2Vec2PretrainConfig:
    """What to pretrain: the upstream's architecture (``model``; the family ``wav2vec2``, conv
    attention mask) and the objective's settings (fairseq's names where one exists; defaults:
    the paper's Base, see the module docstring)."""

    model: Wav2Vec2Config = field(default_factory=_base_model)
    mask_prob: float = 0.65
    mask_length: int = 10
    #: G [latent_groups], V [latent_vars], codevector size [final_dim]
    latent_groups: int = 2
    latent_vars: int = 320
    final_dim: int = 256
    #: Gumbel temperature (start, floor, decay per update) [latent_temp]
    latent_temp: Tuple[float, float, float] = (2.0, 0.5, 0.999995)
    #: K distractors per masked frame, from the same utterance [num_negatives]
    num_negatives: int = 100
    #: kappa [logit_temp]
    logit_temp: float = 0.1
    #: alpha: weight of the diversity loss [loss_weights[0]]
    diversity_weight: float = 0.1
    #: weight of the L2 feature penalty [loss_weights[1]]
    feature_penalty_weight: float = 10.0
    #: gradient scale of the CNN [feature_grad_mult]
    feature_grad_mult: float = 0.1

    def validate(self, where: str = "wav2vec2") -> None:
        if not 0.0 < float(self.mask_prob) <= 1.0:
            raise ValueError(f"{where}: mask_prob must be in (0, 1], got {self.mask_prob}")
        for key in ("mask_length", "latent_groups", "latent_vars", "final_dim", "num_negatives"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{where}: {key} must be a positive integer, got {v!r}")
        if self.latent_vars < 2:
            raise ValueError(f"{where}: latent_vars must be >= 2, got {self.latent_vars}")
        if self.final_dim % self.latent_groups:
            raise ValueError(f"{where}: final_dim {self.final_dim} is not divisible by latent_groups "
                             f"{self.latent_groups}")
        temp = tuple(self.latent_temp)
        if len(temp) != 3:
            raise ValueError(f"{where}: latent_temp must be (start, floor, decay), got {self.latent_temp!r}")
        start, floor, decay = (float(t) for t in temp)
        if not (0.0 < floor <= start and 0.0 < decay <= 1.0):
            raise ValueError(f"{where}: latent_temp needs 0 < floor <= start and 0 < decay <= 1, "
                             f"got {self.latent_temp!r}")
        for key in ("logit_temp", "feature_grad_mult"):
            v = float(getattr(self, key))
            if not math.isfinite(v) or v <= 0:
                raise ValueError(f"{where}: {key} must be a positive number, got {getattr(self, key)!r}")
        for key in ("diversity_weight", "feature_penalty_weight"):
            v = float(getattr(self, key))
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{where}: {key} must be a number >= 0, got {getattr(self, key)!r}")
        m = self.model
        if not isinstance(m, Wav2Vec2Config):
            raise ValueError(f"{where}: model must be a Wav2Vec2Config, got {type(m).__name__}")
        if m.family != "wav2vec2":
            raise ValueError(f"{where}: model.family must be 'wav2vec2', got {m.family!r}")
        if m.padding_mask != "conv":
            raise ValueError(f"{where}: model.padding_mask must be 'conv' (fairseq wav2vec 2.0), got {m.padding_mask!r}")
        if m.pos_conv_depth != 1 or not m.feature_layer_norm:
            raise ValueError(f"{where}: wav2vec 2.0 has one positional convolution and the CNN LayerNorm; got "
                             f"model.pos_conv_depth={m.pos_conv_depth}, model.feature_layer_norm={m.feature_layer_norm}")
        if m.downsample_rate != HOP:
            raise ValueError(f"{where}: the CNN's total stride must be {HOP} samples (the loop's rows), got "
                             f"{m.downsample_rate} for model.conv_layers={m.conv_layers}")
        check_post_extract_proj(m, where)


_TINY = Wav2Vec2PretrainConfig(model=tiny_config("wav2vec2"), latent_groups=2, latent_vars=32, final_dim=64,
                               latent_temp=(2.0, 0.5, 0.995), num_negatives=20)
_TINY_LOOP = LoopConfig(max_steps=400, lr=1e-3, batch_seconds=16.0, max_frames=250, grad_clip=5.0, save_every=50,
                        warmup_steps=40)
_BASE_LOOP = LoopConfig(max_steps=400_000, lr=5e-4, batch_seconds=96.0, max_frames=781, grad_clip=5.0,
                        save_every=5_000, warmup_steps=32_000)

PRESETS: Dict[str, Tuple[Wav2Vec2PretrainConfig, LoopConfig]] = {
    "tiny": (_TINY, _TINY_LOOP),
    "base": (Wav2Vec2PretrainConfig(), _BASE_LOOP),
}


# -- the loss -------------------------------------------------------------------------------------


class LossTerms(NamedTuple):
    """:func:`wav2vec2_loss`'s result: ``total`` and its three terms (unweighted)."""

    total: torch.Tensor
    contrastive: torch.Tensor
    diversity: torch.Tensor
    penalty: torch.Tensor


def contrastive_logits(pred: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, logit_temp: float,
                       neg_is_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[N, 1 + K]``: cosine similarity of ``pred`` [N, D] with the positive [N, D] (column 0)
    and the negatives [N, K, D], divided by ``logit_temp``; negatives flagged in ``neg_is_pos``
    [N, K] (default: exactly equal to the positive) are ``-inf``."""
    if neg_is_pos is None:
        neg_is_pos = (negatives == positive[:, None, :]).all(-1)
    targets = torch.cat([positive[:, None, :], negatives], dim=1).float()
    logits = F.cosine_similarity(pred.float()[:, None, :], targets, dim=-1) / logit_temp
    flags = torch.cat([torch.zeros_like(neg_is_pos[:, :1]), neg_is_pos], dim=1)
    return logits.masked_fill(flags, float("-inf"))


def diversity_loss(code_logits: torch.Tensor) -> torch.Tensor:
    """``(G V - sum_g exp(H(mean_n softmax(code_logits[n, g])))) / (G V)`` of ``[N, G, V]``."""
    _, G, V = code_logits.shape
    avg = torch.softmax(code_logits.float(), dim=-1).mean(0)
    perplexity = torch.exp(-(avg * torch.log(avg + 1e-7)).sum(-1)).sum()
    return (G * V - perplexity) / (G * V)


def wav2vec2_loss(pred: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, code_logits: torch.Tensor,
                  features: torch.Tensor, logit_temp: float = 0.1, diversity_weight: float = 0.1,
                  penalty_weight: float = 10.0, neg_is_pos: Optional[torch.Tensor] = None) -> LossTerms:
    """wav2vec 2.0's loss of ``N`` masked frames: ``pred`` (``final_proj`` of the transformer
    output) [N, D], ``positive`` (``project_q`` of the frame's quantized latent) [N, D],
    ``negatives`` [N, K, D], the quantizer logits ``code_logits`` [N, G, V] of the same frames
    and the valid CNN outputs ``features`` [M, C]: mean cross-entropy of
    :func:`contrastive_logits` with target 0 + ``diversity_weight`` * :func:`diversity_loss` +
    ``penalty_weight`` * mean(``features`` ** 2). With ``N = 0`` the first two terms are 0."""
    if pred.shape != positive.shape or negatives.shape[0] != pred.shape[0] or negatives.shape[2:] != pred.shape[1:]:
        raise ValueError(f"wav2vec2_loss: shapes pred {tuple(pred.shape)}, positive {tuple(positive.shape)}, "
                         f"negatives {tuple(negatives.shape)} do not fit ([N, D], [N, D], [N, K, D])")
    penalty = features.float().pow(2).mean()
    if pred.shape[0] == 0:
        zero = pred.sum() * 0.0 + code_logits.sum() * 0.0
        return LossTerms(zero + penalty_weight * penalty, zero, zero, penalty)
    logits = contrastive_logits(pred, positive, negatives, logit_temp, neg_is_pos)
    contrastive = F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
    diversity = diversity_loss(code_logits)
    total = contrastive + diversity_weight * diversity + penalty_weight * penalty
    return LossTerms(total, contrastive, diversity, penalty)


def sample_negatives(counts, num: int, generator: torch.Generator) -> torch.Tensor:
    """``[sum(counts), num]`` indices into the concatenated masked frames of the utterances
    (``counts[b]`` frames each, in order): for each frame, ``num`` uniform draws, with
    replacement, among the other frames of its utterance. Every count must be >= 2."""
    counts = torch.as_tensor(counts, dtype=torch.long)
    if bool((counts < 2).any()):
        raise ValueError(f"sample_negatives: every utterance needs >= 2 masked frames, got counts {counts.tolist()}")
    offsets = torch.cumsum(counts, 0) - counts
    owner = torch.repeat_interleave(torch.arange(len(counts)), counts)
    position = torch.arange(int(counts.sum())) - offsets[owner]
    others = (counts[owner] - 1)[:, None]
    u = torch.rand(len(owner), num, generator=generator, dtype=torch.float64)
    draw = torch.minimum((u * others).long(), others - 1)
    draw = draw + (draw >= position[:, None]).long()  # skip the frame itself
    return draw + offsets[owner][:, None]


# -- the quantizer --------------------------------------------------------------------------------


class GumbelQuantizer(nn.Module):
    """Product quantizer with Gumbel-softmax selection (fairseq ``GumbelVectorQuantizer``'s
    weights: ``vars`` [1, G V, D / G], ``weight_proj`` C -> G V)."""

    def __init__(self, input_dim: int, groups: int, num_vars: int, vq_dim: int):
        super().__init__()
        self.groups, self.num_vars = groups, num_vars
        self.vars = nn.Parameter(torch.empty(1, groups * num_vars, vq_dim // groups).uniform_())
        self.weight_proj = nn.Linear(input_dim, groups * num_vars)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C]`` -> ``[N, G, V]``."""
        return self.weight_proj(x).view(x.shape[0], self.groups, self.num_vars)

    def select(self, logits: torch.Tensor, tau: Optional[float], generator: Optional[torch.Generator]) -> torch.Tensor:
        """One-hot ``[N, G, V]``: the arg-max (``tau`` None), else a hard Gumbel-softmax sample at
        temperature ``tau`` with a straight-through gradient (value exactly one-hot)."""
        if tau is None:
            index = logits.argmax(-1)
            return F.one_hot(index, self.num_vars).to(logits.dtype)
        gumbel = -torch.empty(logits.shape, dtype=torch.float32).exponential_(generator=generator).log()
        soft = torch.softmax((logits.float() + gumbel.to(logits.device)) / tau, dim=-1)
        hard = F.one_hot(soft.argmax(-1), self.num_vars).to(soft.dtype)
        return (hard + (soft - soft.detach())).to(logits.dtype)

    def quantize(self, onehot: torch.Tensor) -> torch.Tensor:
        """``[N, G, V]`` one-hots -> the concatenated chosen entries ``[N, G * D / G]``."""
        table = self.vars.view(self.groups, self.num_vars, -1)
        return torch.einsum("ngv,gvd->ngd", onehot, table).reshape(onehot.shape[0], -1)


def code_perplexity(onehot: torch.Tensor) -> float:
    """Sum over groups of ``exp(entropy)`` of the codeword frequencies of ``[N, G, V]`` one-hots
    (fairseq's ``code_perplexity``; at most ``G V``)."""
    freq = onehot.detach().float().mean(0)
    return float(torch.exp(-(freq * torch.log(freq + 1e-7)).sum(-1)).sum())


# -- the objective --------------------------------------------------------------------------------


class Wav2Vec2Objective(Objective):
    name = upstream_name = "wav2vec2"

    def __init__(self, cfg: Wav2Vec2PretrainConfig):
        super().__init__()
        cfg.validate("wav2vec2")
        self.cfg = cfg
        m = cfg.model
        self.model = Wav2Vec2Model(m)
        self._init_like_fairseq()
        cnn_dim = self.model.feature_extractor.output_dim
        self.quantizer = GumbelQuantizer(cnn_dim, cfg.latent_groups, cfg.latent_vars, cfg.final_dim)
        self.project_q = nn.Linear(cfg.final_dim, cfg.final_dim)
        self.final_proj = nn.Linear(m.hidden_size, cfg.final_dim)
        self.mask_emb = nn.Parameter(torch.empty(m.hidden_size).uniform_())
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.hop = HOP
        self.min_samples = max(400, receptive_field(m.conv_layers))
        if float(cfg.feature_grad_mult) != 1.0:
            register_grad_multiply(self.model.feature_extractor, float(cfg.feature_grad_mult))
        #: statistics of the last :meth:`loss` call (floats): the terms, temperature, perplexities
        self.last_stats: Dict[str, float] = {}

    def _init_like_fairseq(self) -> None:
        for block in self.model.feature_extractor.conv_layers:
            nn.init.kaiming_normal_(block.conv.weight)
        for module in self.model.encoder.layers.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                nn.init.zeros_(module.bias)

    @property
    def temperature(self) -> float:
        start, floor, decay = (float(t) for t in self.cfg.latent_temp)
        return max(start * decay ** int(self.num_updates), floor)

    def after_step(self, step: int) -> None:
        self.num_updates.fill_(int(step))

    def features(self, wavs, wav_lens):
        return waveform_frames(wavs, wav_lens, HOP)

    def loss(self, feats, lengths, generator):
        return self.loss_terms(feats, lengths, generator).total

    def loss_terms(self, feats: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> LossTerms:
        cfg = self.cfg
        wavs, wav_lens = frames_to_waveform(feats.float(), lengths.to(feats.device))
        if cfg.model.normalize:
            wavs = normalize_waveforms(wavs, wav_lens, eps=cfg.model.normalize_eps)
        frame_lens = self.model.output_lengths(wav_lens).cpu()
        mask = span_mask(frame_lens, int(frame_lens.max()), cfg.mask_prob, cfg.mask_length, generator)
        counts = mask.sum(1)
        mask &= (counts >= 2)[:, None]  # an utterance needs a negative
        out = masked_forward(self.model, wavs, wav_lens, mask, self.mask_emb)
        cnn = out.frames.features
        valid = valid_mask(out.frames.lengths, cnn.shape[1])
        m = out.mask
        unmasked = self.model.feature_projection.layer_norm(cnn[m])
        code_logits = self.quantizer.logits(unmasked)
        tau = self.temperature if self.training else None
        onehot = self.quantizer.select(code_logits, tau, generator)
        positive = self.project_q(self.quantizer.quantize(onehot))
        pred = self.final_proj(out.states[-1][m])
        counts = m.sum(1).cpu()
        counts = counts[counts > 0]
        if len(counts):
            neg_idx = sample_negatives(counts, cfg.num_negatives, generator).to(pred.device)
            codes = onehot.argmax(-1)
            neg_is_pos = (codes[neg_idx] == codes[:, None, :]).all(-1)
            negatives = positive[neg_idx]
        else:
            negatives = positive.new_zeros(0, cfg.num_negatives, positive.shape[-1])
            neg_is_pos = torch.zeros(0, cfg.num_negatives, dtype=torch.bool, device=pred.device)
        terms = wav2vec2_loss(pred, positive, negatives, code_logits, cnn[valid], cfg.logit_temp,
                              cfg.diversity_weight, cfg.feature_penalty_weight, neg_is_pos)
        self.last_stats = {"contrastive": float(terms.contrastive.detach()), "diversity": float(terms.diversity.detach()),
                           "penalty": float(terms.penalty.detach()), "temperature": float(tau or 0.0),
                           "code_perplexity": code_perplexity(onehot) if len(onehot) else 0.0,
                           "prob_perplexity": float(cfg.latent_groups * cfg.latent_vars * (1 - float(terms.diversity.detach()))),
                           "masked_frames": float(len(pred))}
        return terms

    def export(self, step: int, loop: LoopConfig) -> Dict[str, Any]:
        cfg, m = self.cfg, self.cfg.model
        state = fairseq_state(self.model)
        state.update(module_state([("quantizer.", self.quantizer), ("project_q.", self.project_q),
                                   ("final_proj.", self.final_proj)]))
        state["mask_emb"] = self.mask_emb.detach().cpu().clone()
        model_cfg = fairseq_model_cfg(
            m, layer_type="transformer",
            final_dim=cfg.final_dim, quantize_targets=True, quantize_input=False,
            latent_vars=cfg.latent_vars, latent_groups=cfg.latent_groups, latent_dim=0,
            latent_temp=[float(t) for t in cfg.latent_temp],
            mask_prob=float(cfg.mask_prob), mask_length=cfg.mask_length,
            num_negatives=cfg.num_negatives, cross_sample_negatives=0, codebook_negatives=0,
            logit_temp=float(cfg.logit_temp), feature_grad_mult=float(cfg.feature_grad_mult))
        sections = {"criterion": {"_name": "wav2vec", "infonce": True,
                                  "loss_weights": [float(cfg.diversity_weight), float(cfg.feature_penalty_weight)]},
                    "lr_scheduler": {"_name": "superb_linear_warmup_constant",
                                     "warmup_updates": int(loop.warmup_steps)}}
        return fairseq_checkpoint(model_cfg, audio_pretraining_task(m, loop), state, step, loop, sections=sections,
                                  criterion_name="Wav2vecCriterion", optimizer_name=None,
                                  extra_state={"superb_pretrain": {"objective": "wav2vec2", "step": int(step)}})


def preset(name: str, preset_name: str):
    cfg, loop = PRESETS[preset_name]
    return copy.deepcopy(cfg), copy.deepcopy(loop)


def build(name: str, cfg: Wav2Vec2PretrainConfig) -> Wav2Vec2Objective:
    return Wav2Vec2Objective(cfg)
