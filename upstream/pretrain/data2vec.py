"""Objective ``data2vec``: bootstrapped regression of an EMA teacher's averaged layers.

data2vec (Baevski et al. 2022, arXiv 2202.03555), audio: a student encoder reads the waveform
with spans of its CNN frames masked; a teacher -- an exponential moving average (EMA) of the
student -- reads the same utterance unmasked; the student regresses, at the masked frames, the
average of the teacher's top ``K`` layers, each instance-normalised. Facts used (the paper, secs.
3-4, and fairseq's ``Data2VecAudioModel`` as carried by s3prl 0.4.18,
``s3prl/upstream/data2vec/data2vec_model.py``; described, no code copied):

* Student: a data2vec-family :class:`~superb.upstream.wav2vec2.model.Wav2Vec2Model` (layer-norm
  CNN, post-LN transformer, stacked positional convolutions; waveform normalised per utterance)
  on the input masked by :func:`~superb.upstream.pretrain.masked.span_mask` (``mask_prob`` 0.65,
  spans of ``mask_length`` 10 frames: the paper's "p = 0.065 of the time-steps as starts, the
  next ten masked") and :func:`~superb.upstream.pretrain.masked.masked_forward` (learned
  ``mask_emb``). Prediction: ``final_proj`` (``Linear(H, H)``) of the encoder output.
* Teacher: fairseq's audio defaults ``ema_transformer_only`` and ``ema_layers_only``. Only the
  transformer encoder (positional convolutions, encoder LayerNorm, layers) has an EMA copy,
  :attr:`Data2VecObjective.teacher`; it reads the **student's** unmasked projected CNN frames
  (the CNN, its LayerNorm and the projection are shared, not averaged; no gradient reaches them
  through the teacher). The positional convolutions are copied from the student at every update
  instead of averaged (``ema_layers_only``). The teacher is a registered submodule whose
  parameters have ``requires_grad=False``, so it lives in the objective's ``state_dict`` and
  ``--resume`` continues exactly.
* EMA (:func:`ema_decay_at`, :meth:`Data2VecObjective.after_step`): after optimiser update
  ``n`` (1-based), ``teacher = tau_n * teacher + (1 - tau_n) * student`` with ``tau_n`` rising
  linearly from ``ema_decay`` to ``ema_end_decay`` over ``ema_anneal_end_step`` updates, then
  constant (fairseq's ``get_annealed_rate``: ``end - (end - start) * (1 - n / N)``); the teacher
  starts as a copy of the initial student.
* Targets (:func:`instance_norm_valid`, :meth:`Data2VecObjective.targets`): the paper's
  "output of the feed-forward network, before the last residual connection" of each of the top
  ``K = average_top_k_layers`` (8) teacher layers -- fairseq's ``layer_results[i][2]``, the
  ``fc2`` output of a post-LN layer before the residual add and ``final_layer_norm``. We take
  exactly that tensor (a forward hook on each layer's ``feed_forward``), not the layer output
  that SUPERB's hidden states carry: the normalised layer outputs would be dominated by the
  LayerNorm and are not what data2vec regresses. Each is instance-normalised over time, per
  utterance and channel (``instance_norm_target_layer``: biased variance, eps 1e-5), over the
  **valid** frames only (fairseq's ``F.instance_norm`` over the padded time axis lets padding
  enter the statistics; here a target does not depend on its batch), then the ``K`` are averaged.
* Loss (:func:`regression_loss`): at the masked (valid) frames, ``sum_d (pred - target)^2 /
  sqrt(D)`` (fairseq: ``loss_beta = 0`` is L2, ``loss_scale = None`` is ``1 / sqrt(D)``), averaged
  over the masked frames (fairseq returns the sum with ``sample_size`` = the number of masked
  frames, and its trainer divides by it). A batch without a masked frame (every utterance shorter
  than a span) gives a zero loss.

Presets: ``base`` -- the paper's audio Base: data2vec Base encoder (12 layers of 768, 12 heads,
FFN 3072, 5 positional convolutions of kernel 19, waveform normalisation), mask 0.65 / 10,
``K = 8``, ``tau`` 0.999 -> 0.9999 over 30k updates, Adam peak 5e-4, 400k updates (the paper's
sec. 5.2 values); ~63 min of audio per batch and crops of 320k samples (20 s, fairseq's
``max_sample_size``) as we recall the paper and fairseq's ``base_librispeech`` config (unverified
here). Ours (the shared loop's simplifications): a linear
warm-up of 12k updates (the paper's 3 %) then a constant rate instead of the tri-stage schedule;
no weight decay, layer drop (0.05, recalled) or Adam betas (0.9, 0.98) -- the loop's plain Adam. ``tiny``:
:func:`~superb.upstream.pretrain.masked.tiny_config` ("data2vec": 4 CNN layers of 128, 4
transformer layers of 128), ``K = 3`` of its 4 layers, ``tau`` 0.99 -> 0.999 over 100 updates (a
short run would otherwise keep the teacher at its random initialisation), Adam 1e-3 with 20
warm-up steps, 400 steps of 12 s batches cropped to 3 s (about 5 min on one CPU thread).

Export: a fairseq data2vec audio pretraining checkpoint (``_name`` ``data2vec_audio``, task
``audio_pretraining``; names, fields and layout: :mod:`superb.upstream.pretrain.fairseq_export`)
with the pretraining-only ``mask_emb`` and ``final_proj.*``, the objective's fields (``mask_*``,
``average_top_k_layers``, ``ema_*``, ...), and ``_ema`` (the teacher's weights, named relative to
the encoder as fairseq's ``EMAModule`` of ``self.encoder`` stores them). ``superb run --upstream
data2vec --upstream-ckpt FILE`` reads the student (as fairseq's released files are read), and so
do s3prl's fairseq-equivalent ``Data2VecAudioModel`` (``_ema`` aside).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

import torch
from torch import nn

from ..base import valid_mask
from ..wav2vec2.model import Wav2Vec2Config, Wav2Vec2Model
from ..wav2vec2.model import PRESETS as W2V2_PRESETS
from .fairseq_export import (audio_pretraining_task, fairseq_checkpoint, fairseq_conv_pos, fairseq_model_cfg,
                             fairseq_state, fairseq_weights, module_state, prepare_waveforms)
from .loop import LoopConfig, Objective
from .masked import HOP, masked_forward, span_mask, tiny_config, waveform_frames


def _tiny_model() -> Wav2Vec2Config:
    return tiny_config("data2vec")


@dataclass
class Data2VecPretrainConfig:
    """What to pretrain: the student's architecture (``model``, a data2vec-family
    :class:`Wav2Vec2Config`, what the exported file describes) plus the objective's settings
    (fairseq ``Data2VecAudioConfig`` names)."""

    model: Wav2Vec2Config = field(default_factory=_tiny_model)
    mask_prob: float = 0.65
    mask_length: int = 10
    average_top_k_layers: int = 8
    ema_decay: float = 0.999
    ema_end_decay: float = 0.9999
    ema_anneal_end_step: int = 30_000
    #: positional convolutions copied from the student instead of averaged (fairseq default)
    ema_layers_only: bool = True

    def validate(self, where: str = "data2vec") -> None:
        m = self.model
        if m.family != "data2vec":
            raise ValueError(f"{where}: model.family must be 'data2vec', got {m.family!r}")
        if m.layer_norm_first:
            raise ValueError(f"{where}: model.layer_norm_first must be false (data2vec's targets are the FFN "
                             "outputs of post-LN layers)")
        if m.padding != "exact" or m.padding_mask != "conv":
            raise ValueError(f"{where}: model.padding must be 'exact' and model.padding_mask 'conv' for "
                             f"training, got {m.padding!r} / {m.padding_mask!r}")
        if not 0.0 <= float(self.mask_prob) <= 1.0:
            raise ValueError(f"{where}: mask_prob must be in [0, 1], got {self.mask_prob}")
        if int(self.mask_length) < 1:
            raise ValueError(f"{where}: mask_length must be >= 1, got {self.mask_length}")
        if not 1 <= int(self.average_top_k_layers) <= m.num_layers:
            raise ValueError(f"{where}: average_top_k_layers must be in [1, model.num_layers={m.num_layers}], "
                             f"got {self.average_top_k_layers}")
        for key in ("ema_decay", "ema_end_decay"):
            v = float(getattr(self, key))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{where}: {key} must be in [0, 1], got {v}")
        if int(self.ema_anneal_end_step) < 1:
            raise ValueError(f"{where}: ema_anneal_end_step must be >= 1, got {self.ema_anneal_end_step}")
        fairseq_conv_pos(m, where)


_BASE_MODEL = W2V2_PRESETS["data2vec"]
PRESETS: Dict[str, Tuple[Data2VecPretrainConfig, LoopConfig]] = {
    "tiny": (Data2VecPretrainConfig(average_top_k_layers=3, ema_decay=0.99, ema_end_decay=0.999,
                                    ema_anneal_end_step=100),
             LoopConfig(max_steps=400, lr=1e-3, batch_seconds=12.0, max_frames=150, grad_clip=5.0,
                        save_every=50, warmup_steps=20)),
    "base": (Data2VecPretrainConfig(model=_BASE_MODEL),
             LoopConfig(max_steps=400_000, lr=5e-4, batch_seconds=3780.0, max_frames=1000, grad_clip=5.0,
                        save_every=5_000, warmup_steps=12_000)),
}


# -- pure functions ------------------------------------------------------------------------------------


def ema_decay_at(step: int, start: float, end: float, anneal_end_step: int) -> float:
    """The EMA decay used after optimiser update ``step`` (1-based): linear from ``start`` (step 0)
    to ``end`` (step ``anneal_end_step``), then ``end``."""
    if step >= anneal_end_step:
        return float(end)
    return float(end) - (float(end) - float(start)) * (1.0 - step / anneal_end_step)


def instance_norm_valid(x: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``[B, T, D]`` -> each utterance's channels normalised over its valid frames (``lengths``):
    zero mean, ``/ sqrt(biased var + eps)``; padding frames are 0."""
    valid = valid_mask(lengths.to(x.device), x.shape[1]).to(x.dtype)[..., None]
    n = lengths.to(x.device, x.dtype).clamp(min=1)[:, None, None]
    mean = (x * valid).sum(1, keepdim=True) / n
    var = (((x - mean) * valid) ** 2).sum(1, keepdim=True) / n
    return (x - mean) / torch.sqrt(var + eps) * valid


def regression_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the frames where ``mask`` ([B, T]) is true of ``sum_d (pred - target)^2 / sqrt(D)``
    (``pred``, ``target``: [B, T, D]); 0 (with a graph) when no frame is masked."""
    if pred.shape != target.shape or mask.shape != pred.shape[:2]:
        raise ValueError(f"regression_loss: shapes {tuple(pred.shape)}, {tuple(target.shape)}, "
                         f"{tuple(mask.shape)} do not match ([B, T, D], [B, T, D], [B, T])")
    if not bool(mask.any()):
        return pred.sum() * 0.0
    err = ((pred[mask].float() - target[mask].float()) ** 2).sum(-1)
    return err.mean() / math.sqrt(pred.shape[-1])


# -- the objective -------------------------------------------------------------------------------------


class Data2VecObjective(Objective):
    name = "data2vec"
    upstream_name = "data2vec"
    hop = HOP

    def __init__(self, cfg: Data2VecPretrainConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        m = cfg.model
        self.model = Wav2Vec2Model(m)
        self.mask_emb = nn.Parameter(torch.rand(m.hidden_size))  # fairseq: uniform [0, 1)
        self.final_proj = nn.Linear(m.hidden_size, m.hidden_size)
        self.teacher = copy.deepcopy(self.model.encoder)
        self.teacher.requires_grad_(False)
        # two whole rows: at least one CNN frame for every supported CNN (receptive field <= 400)
        self.min_samples = 2 * HOP

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # fairseq: the EMA model always runs in eval mode
        return self

    def features(self, wavs, wav_lens):
        return waveform_frames(wavs, wav_lens)

    @torch.no_grad()
    def targets(self, projected: torch.Tensor, frames) -> torch.Tensor:
        """The teacher's targets for the unmasked projected frames ``projected`` [B, T', H]: the
        instance-normalised FFN outputs of its top ``K`` layers, averaged."""
        K = int(self.cfg.average_top_k_layers)
        outputs: List[torch.Tensor] = []
        hooks = [layer.feed_forward.register_forward_hook(lambda mod, inp, out: outputs.append(out))
                 for layer in self.teacher.layers[-K:]]
        try:
            self.teacher(projected, frames.attention_mask, frames.frame_padding)
        finally:
            for h in hooks:
                h.remove()
        if len(outputs) != K:
            raise AssertionError(f"data2vec targets: captured {len(outputs)} layer outputs, expected {K}")
        return sum(instance_norm_valid(o.float(), frames.lengths) for o in outputs) / K

    def loss(self, feats, lengths, generator):
        cfg = self.cfg
        wavs, wav_lens = prepare_waveforms(cfg.model, feats, lengths)
        frame_lens = self.model.output_lengths(wav_lens.cpu())
        mask = span_mask(frame_lens, int(frame_lens.max()), cfg.mask_prob, cfg.mask_length, generator)
        out = masked_forward(self.model, wavs, wav_lens.to(wavs.device), mask, self.mask_emb)
        pred = self.final_proj(out.states[-1])
        target = self.targets(out.projected.detach(), out.frames)
        valid = valid_mask(out.frames.lengths, pred.shape[1])
        return regression_loss(pred, target, out.mask & valid)

    def decay(self, step: int) -> float:
        c = self.cfg
        return ema_decay_at(step, c.ema_decay, c.ema_end_decay, c.ema_anneal_end_step)

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """``teacher = tau * teacher + (1 - tau) * student`` (the positional convolutions copied
        when ``ema_layers_only``), ``tau = ema_decay_at(step)``; nothing when ``tau == 1``."""
        tau = self.decay(step)
        if tau >= 1.0:
            return
        student = dict(self.model.encoder.named_parameters())
        for name, p in self.teacher.named_parameters():
            s = student[name].detach()
            if self.cfg.ema_layers_only and name.startswith("pos_conv."):
                p.copy_(s)
            else:
                p.mul_(tau).add_(s, alpha=1.0 - tau)

    def export(self, step: int, loop: LoopConfig) -> Dict[str, Any]:
        c, m = self.cfg, self.cfg.model
        state: Dict[str, Any] = fairseq_state(self.model)
        state["mask_emb"] = self.mask_emb.detach().cpu().clone()
        state.update(module_state([("final_proj.", self.final_proj)]))
        # the teacher named relative to the encoder, as fairseq's EMAModule of self.encoder stores it
        state["_ema"] = fairseq_weights(self.teacher.state_dict(), m.extractor_mode, prefix="encoder.")
        model_cfg = fairseq_model_cfg(
            m, mask_prob=float(c.mask_prob), mask_length=int(c.mask_length), mask_selection="static",
            loss_beta=0.0, loss_scale=None, average_top_k_layers=int(c.average_top_k_layers),
            instance_norm_target_layer=True, ema_decay=float(c.ema_decay), ema_end_decay=float(c.ema_end_decay),
            ema_anneal_end_step=int(c.ema_anneal_end_step), ema_transformer_only=True,
            ema_layers_only=bool(c.ema_layers_only), max_update=int(loop.max_steps))
        return fairseq_checkpoint(model_cfg, audio_pretraining_task(m, loop), state, step, loop,
                                  sections={"common": {"seed": 1}})


def preset(name: str, preset_name: str):
    cfg, loop = PRESETS[preset_name]
    return copy.deepcopy(cfg), copy.deepcopy(loop)


def build(name: str, cfg: Data2VecPretrainConfig) -> Data2VecObjective:
    return Data2VecObjective(cfg)
