"""Objective ``hubert``: masked prediction of k-means cluster labels (HuBERT; Hsu et al. 2021,
arXiv 2106.07447).

A wav2vec 2.0-style encoder (the ``hubert`` upstream's own :class:`Wav2Vec2Model`) reads the
waveform with spans of its CNN frames replaced by a learned ``mask_emb``; at every frame a linear
``final_proj`` maps the last hidden state to ``final_dim`` and the logits over the ``K`` clusters
are the cosine similarities with the learned cluster embeddings ``label_embs`` divided by the
temperature ``logit_temp`` (0.1). The loss is the cross-entropy of the frame's cluster label on
the masked frames (weight ``pred_masked_weight`` = 1) and on the unmasked ones (weight
``pred_nomask_weight`` = 0 in the paper's setting), summed and divided by the number of counted
frames (the frames of the terms with a non-zero weight) -- :func:`masked_prediction_loss`; plus
fairseq's feature penalty ``feature_pen_weight * mean(CNN output ** 2)`` (fairseq's HuBERT Base
config: ``loss_weights: [10]``).

Facts used (paper; fairseq's HuBERT as copied in s3prl 0.4.18, ``s3prl/upstream/hubert/
hubert_model.py``; fairseq's ``examples/hubert/simple_kmeans`` recipe and torchaudio's HuBERT
example that follows it; no code copied):

* **Iteration 1 targets** (:func:`mfcc39`): ``torchaudio.compliance.kaldi.mfcc`` of the waveform
  (float in [-1, 1], 16 kHz, Kaldi defaults: 25 ms / 10 ms frames, ``snip_edges``, no dither) with
  ``use_energy=False`` (13 coefficients), then ``torchaudio.functional.compute_deltas`` of them
  and of the deltas: 39 dimensions at 100 Hz, no normalisation; k-means with K = 100 (paper).
* **Iteration 2 targets** (``targets_ckpt``): the hidden states of layer ``targets_layer`` of a
  previous HuBERT checkpoint (``build_upstream("hubert", ckpt=...)``, frozen, eval mode; index as
  the upstream's ``hidden_states``: 0 = the transformer's input, L = the output of transformer
  layer L, which is what fairseq's ``dump_hubert_feature.py --layer L`` dumps); the paper's Base
  iteration 2 clusters layer 6 of the iteration-1 model into K = 500 clusters; 50 Hz.
* **k-means** (:meth:`HuBERTObjective.prepare`, once, before a fresh run): scikit-learn
  ``MiniBatchKMeans`` with the recipe's ``learn_kmeans.py`` settings (``k-means++``,
  ``batch_size`` 10000, ``max_iter`` 100, ``n_init`` 20, ``tol`` 0, ``max_no_improvement`` 100,
  ``reassignment_ratio`` 0), ``random_state = kmeans_seed``, fitted on the frames of the
  training files taken in an order drawn from the loop's generator until ``kmeans_max_frames``
  frames are collected (then subsampled to exactly that many; the recipe's ``--percent``).
  The centroids are the buffer ``centroids`` of the objective (so ``checkpoints/last.pt`` holds
  them and ``--resume`` restores them; ``prepare`` is not re-run). A frame's label is its nearest
  centroid (squared Euclidean distance, ties to the lowest index).
* **Labels of a batch** are computed from the (cropped) waveform rows the loop hands over, per
  utterance, so a crop gets the labels of its own audio.
* **Alignment** (fairseq's ``forward_targets``): with label rate ``r`` (100 Hz MFCC, 50 Hz HuBERT
  features), CNN stride ``s`` samples and ``ratio = r * s / 16000`` (2 for MFCC with the 320-sample
  CNN), CNN frame ``t`` gets label ``labels[int(t * ratio)]``; when ``ratio * T' > M`` (``T'`` CNN
  frames, ``M`` label frames) only the first ``int(M / ratio)`` CNN frames have labels. fairseq
  trims those frames off the features of the whole (padded) batch; here the frames stay in the
  encoder input and only their loss terms are dropped (per utterance). With the Base CNN
  (receptive field 400, stride 320) and ``n`` samples, ``T' = 1 + (n - 400) // 320`` and
  ``M = 1 + (n - 400) // 160``: the last CNN frame loses its label when ``(n - 400) % 320 < 160``.
* **Masking** (:func:`~superb.upstream.pretrain.masked.span_mask`): ``mask_prob`` 0.8 of the
  frames as span starts, spans of ``mask_length`` 10 (the paper's p = 8 %, l = 10 with fairseq's
  ``compute_mask_indices`` counting); frames are masked after the feature projection.
* **Logits** (fairseq's ``compute_nce``): cosine similarity between ``final_proj(x_t)`` and every
  cluster embedding, divided by ``logit_temp``; fairseq's softmax also runs over the 4 special
  symbols of its label dictionary (never targets); here it runs over the ``K`` clusters only.
* ``feature_grad_mult`` (fairseq Base: 0.1) scales the gradient that reaches the CNN.
* Not done: dropout / layerdrop (the encoder is :mod:`superb.upstream.wav2vec2`'s inference
  model), fairseq's batch-wide cropping and ``untie_final_proj`` / ``target_glu``.

Presets: ``base`` = HuBERT Base iteration 1 (paper sec. IV-C and fairseq's
``hubert_base_librispeech.yaml`` as published): the ``hubert`` upstream's Base architecture
(12 x 768, group-norm CNN), K = 100 MFCC clusters, ``final_dim`` 256, peak learning rate 5e-4,
250k steps, warm-up 8 % (20k steps) -- the paper then decays linearly to 0 and uses Adam betas
(0.9, 0.98); :class:`~superb.upstream.pretrain.loop.LoopConfig` has only a linear warm-up, then a
constant rate, and torch's default Adam betas -- 87.5 s of audio per GPU on 32 GPUs (2800 s per
step), crops of 250k samples (781 frames of 320 samples), gradient clipping 10 (fairseq's
``clip_norm``). ``tiny``: :func:`~superb.upstream.pretrain.masked.tiny_config` (4 x 128, 4-layer
128-channel CNN, no projection as the widths are equal), K = 50, ``final_dim`` 64,
``feature_grad_mult`` 1, k-means on 50k frames with ``n_init`` 3 and ``max_iter`` 50, iteration-2
``targets_layer`` 2 (half-way, as the paper's 6 of 12), Adam 1e-3 after 30 warm-up steps (2e-3
learnt less in our runs), 300 steps of 16 s batches cropped to 5 s: about 6 minutes on one CPU
thread on the default mini corpus, k-means included (masked-prediction accuracy 5 % -> 13 %).

Export (:meth:`HuBERTObjective.export`): a fairseq HuBERT pretraining checkpoint (weight names,
common fields and layout: :mod:`superb.upstream.pretrain.fairseq_export`; ``conv_feature_layers``
in runs, ``'[(...)] + ...'``, and no ``pos_conv_depth``, as fairseq's ``HubertConfig``) with the
model fields ``final_dim``, ``label_rate``, ``logit_temp``, ``mask_*``, ..., the task
``{'_name': 'hubert_pretraining', 'labels': ['km'], 'label_rate', 'normalize', ...}``, plus ``mask_emb``,
``final_proj.*`` and ``label_embs_concat`` -- ``K + 4`` rows, the order of fairseq's label
dictionary (``<s>``, ``<pad>``, ``</s>``, ``<unk>``, then clusters ``0 .. K-1`` as the recipe's
``dict.km.txt`` lists them; the 4 special rows are zeros). ``build_upstream("hubert", ckpt=FILE)``
and fairseq's / s3prl's ``HubertModel`` read it unchanged. The k-means centroids travel with it
under the extra top-level key ``superb_kmeans`` (``centroids`` [K, D], ``features``,
``label_rate``); the loaders read only ``cfg`` / ``args`` / ``model`` / ``task_state`` and ignore
it. fairseq's ``task_state`` (a pickled fairseq ``Dictionary``) is not written: fairseq rebuilds
the dictionary from the label directory.
"""
from __future__ import annotations

import collections
import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..base import valid_mask
from ..wav2vec2.model import PRESETS as W2V2_PRESETS
from ..wav2vec2.model import Wav2Vec2Config, Wav2Vec2Model
from .fairseq_export import (SAMPLE_RATE, audio_pretraining_task, check_post_extract_proj,
                             fairseq_checkpoint, fairseq_model_cfg, fairseq_state, model_inputs, module_state,
                             receptive_field, register_grad_multiply)
from .loop import LoopConfig, Objective
from .masked import HOP, frames_to_waveform, masked_forward, span_mask, tiny_config, waveform_frames

#: MFCC targets: 100 frames per second (10 ms shift)
MFCC_RATE = 100.0
#: special symbols ahead of the clusters in fairseq's label dictionary (label_embs_concat rows)
FAIRSEQ_SPECIAL_SYMBOLS = ("<s>", "<pad>", "</s>", "<unk>")

#: fairseq's conv_feature_layers as HuBERT's published configs write it (runs of equal layers)
def _tiny_model() -> Wav2Vec2Config:
    return tiny_config("hubert")


def _base_model() -> Wav2Vec2Config:
    return copy.deepcopy(W2V2_PRESETS["hubert"])


@dataclass
class HuBERTPretrainConfig:
    """What to pretrain: the ``hubert`` upstream's architecture (``model``), the masking, the
    prediction head, the targets (MFCC, or layer ``targets_layer`` of ``targets_ckpt``) and the
    k-means settings (see the module docstring)."""

    model: Wav2Vec2Config = field(default_factory=_base_model)
    mask_prob: float = 0.8
    mask_length: int = 10
    num_clusters: int = 100
    final_dim: int = 256
    logit_temp: float = 0.1
    pred_masked_weight: float = 1.0
    pred_nomask_weight: float = 0.0
    #: fairseq's features_pen weight (mean squared CNN output); 0 switches it off
    feature_pen_weight: float = 10.0
    #: gradient scale between the CNN and the rest (fairseq Base 0.1)
    feature_grad_mult: float = 0.1
    #: iteration 2: a HuBERT checkpoint whose layer ``targets_layer`` is clustered (None: MFCC)
    targets_ckpt: Optional[str] = None
    targets_layer: int = 6
    kmeans_batch_size: int = 10000
    kmeans_n_init: int = 20
    kmeans_max_iter: int = 100
    #: frames sampled for fitting the k-means
    kmeans_max_frames: int = 100_000
    kmeans_seed: int = 0

    def validate(self, where: str = "hubert") -> None:
        if not 0.0 <= float(self.mask_prob) <= 1.0:
            raise ValueError(f"{where}: mask_prob must be in [0, 1], got {self.mask_prob}")
        for key in ("mask_length", "num_clusters", "final_dim", "kmeans_batch_size", "kmeans_n_init",
                    "kmeans_max_iter", "kmeans_max_frames"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{where}: {key} must be a positive integer, got {value!r}")
        if self.num_clusters < 2:
            raise ValueError(f"{where}: num_clusters must be >= 2, got {self.num_clusters}")
        for key in ("logit_temp", "feature_grad_mult"):
            value = float(getattr(self, key))
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{where}: {key} must be a positive number, got {getattr(self, key)!r}")
        for key in ("pred_masked_weight", "pred_nomask_weight", "feature_pen_weight"):
            value = float(getattr(self, key))
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{where}: {key} must be a number >= 0, got {getattr(self, key)!r}")
        if float(self.pred_masked_weight) == 0 and float(self.pred_nomask_weight) == 0:
            raise ValueError(f"{where}: pred_masked_weight and pred_nomask_weight are both 0 (nothing to learn)")
        if self.targets_ckpt is not None and not isinstance(self.targets_ckpt, str):
            raise ValueError(f"{where}: targets_ckpt must be a path or null, got {self.targets_ckpt!r}")
        if not isinstance(self.targets_layer, int) or isinstance(self.targets_layer, bool) or self.targets_layer < 0:
            raise ValueError(f"{where}: targets_layer must be an integer >= 0, got {self.targets_layer!r}")
        m = self.model
        if m.family != "hubert":
            raise ValueError(f"{where}: model.family must be 'hubert', got {m.family!r}")
        if m.pos_conv_depth != 1:
            raise ValueError(f"{where}: model.pos_conv_depth must be 1 (fairseq HuBERT), got {m.pos_conv_depth}")
        if not m.feature_layer_norm:
            raise ValueError(f"{where}: model.feature_layer_norm must be true (fairseq HuBERT's layer_norm)")
        check_post_extract_proj(m, where)
        if m.padding_mask != "conv" or m.padding != "exact":
            raise ValueError(f"{where}: pretraining uses the batch-invariant model (model.padding='exact', "
                             f"model.padding_mask='conv'); got padding={m.padding!r}, padding_mask={m.padding_mask!r}")


PRESETS: Dict[str, Tuple[HuBERTPretrainConfig, LoopConfig]] = {
    "tiny": (HuBERTPretrainConfig(model=_tiny_model(), num_clusters=50, final_dim=64, feature_grad_mult=1.0,
                                  targets_layer=2, kmeans_n_init=3, kmeans_max_iter=50, kmeans_max_frames=50_000),
             LoopConfig(max_steps=300, lr=1e-3, batch_seconds=16.0, max_frames=250, grad_clip=10.0, save_every=100,
                        warmup_steps=30)),
    "base": (HuBERTPretrainConfig(),
             LoopConfig(max_steps=250_000, lr=5e-4, batch_seconds=2800.0, max_frames=781, grad_clip=10.0,
                        save_every=5_000, warmup_steps=20_000)),
}


# -- targets ------------------------------------------------------------------------------------------


def mfcc39(wav: torch.Tensor) -> torch.Tensor:
    """``[M, 39]``: 13 Kaldi MFCCs (``use_energy=False``) + deltas + delta-deltas of a 1-D 16 kHz
    waveform (fairseq's ``dump_mfcc_feature.py`` recipe); ``M = 1 + (n - 400) // 160``."""
    import torchaudio

    x = wav.detach().float().cpu().reshape(1, -1)
    mfcc = torchaudio.compliance.kaldi.mfcc(x, sample_frequency=SAMPLE_RATE, use_energy=False)  # [M, 13]
    m = mfcc.transpose(0, 1)
    d = torchaudio.functional.compute_deltas(m)
    dd = torchaudio.functional.compute_deltas(d)
    return torch.cat([m, d, dd], dim=0).transpose(0, 1).contiguous()


def nearest_centroid(feats: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``[N]`` long: index of the nearest row of ``centroids`` [K, D] (squared Euclidean distance)
    for every row of ``feats`` [N, D]."""
    f, c = feats.double(), centroids.double().to(feats.device)
    dist = (f * f).sum(1, keepdim=True) - 2 * f @ c.T + (c * c).sum(1)[None, :]
    return dist.argmin(1)


def align_labels(labels: torch.Tensor, num_frames: int, ratio: float) -> torch.Tensor:
    """fairseq's ``forward_targets`` for one utterance: ``[num_frames]`` long, CNN frame ``t``
    labelled ``labels[int(t * ratio)]``; frames past ``int(len(labels) / ratio)`` (when
    ``ratio * num_frames > len(labels)``) get -1 (no label)."""
    M = int(labels.shape[0])
    T = int(num_frames)
    if ratio * T > M:
        T = int(M / ratio)
    out = torch.full((int(num_frames),), -1, dtype=torch.long, device=labels.device)
    if T > 0:
        idx = (torch.arange(T).double() * ratio).long().to(labels.device)
        out[:T] = labels[idx]
    return out


# -- loss ---------------------------------------------------------------------------------------------


def hubert_logits(proj: torch.Tensor, label_embs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``[N, K]``: cosine similarity of every projected frame [N, F] with every cluster embedding
    [K, F], divided by ``temperature``."""
    return F.cosine_similarity(proj.float()[:, None, :], label_embs.float()[None, :, :], dim=-1) / temperature


def masked_prediction_loss(proj: torch.Tensor, label_embs: torch.Tensor, targets: torch.Tensor,
                           mask: torch.Tensor, temperature: float = 0.1, masked_weight: float = 1.0,
                           nomask_weight: float = 0.0) -> Tuple[torch.Tensor, Dict[str, float]]:
    """HuBERT's loss of a batch. ``proj`` [B, T, F] (``final_proj`` of the last hidden states),
    ``label_embs`` [K, F], ``targets`` [B, T] (cluster index; < 0: no label -- padding or a frame
    past the labels), ``mask`` [B, T] (True: masked). Returns ``(loss, stats)``: ``loss =
    (masked_weight * sum CE(masked) + nomask_weight * sum CE(unmasked)) / N`` with ``N`` the number
    of masked labelled frames (when ``masked_weight > 0``) plus the unmasked labelled ones (when
    ``nomask_weight > 0``) -- fairseq's criterion normalised by its sample size; a zero loss when
    ``N`` is 0. ``stats``: counts and prediction accuracies of both kinds of frames."""
    if proj.shape[:2] != targets.shape or mask.shape != targets.shape:
        raise ValueError(f"masked_prediction_loss: shapes proj {tuple(proj.shape)}, targets {tuple(targets.shape)}, "
                         f"mask {tuple(mask.shape)} disagree")
    if targets.numel() and int(targets.max()) >= label_embs.shape[0]:
        raise ValueError(f"masked_prediction_loss: target {int(targets.max())} >= {label_embs.shape[0]} clusters")
    labelled = targets >= 0
    sel_m = labelled & mask
    sel_u = labelled & ~mask
    zero = proj.sum() * 0.0
    total, count, stats = zero, 0, {}
    for kind, sel, weight in (("m", sel_m, masked_weight), ("u", sel_u, nomask_weight)):
        n = int(sel.sum())
        stats[f"count_{kind}"] = n
        stats[f"acc_{kind}"] = float("nan")
        if n == 0:
            continue
        y = targets[sel]
        if weight > 0:
            logits = hubert_logits(proj[sel], label_embs, temperature)
            total = total + weight * F.cross_entropy(logits, y, reduction="sum")
            count += n
        else:  # not trained on: accuracy only
            with torch.no_grad():
                logits = hubert_logits(proj[sel], label_embs, temperature)
        stats[f"acc_{kind}"] = float((logits.detach().argmax(-1) == y).float().mean())
    if count == 0:
        return zero, stats
    return total / count, stats


class HuBERTObjective(Objective):
    name = "hubert"
    upstream_name = "hubert"
    hop = HOP

    def __init__(self, cfg: HuBERTPretrainConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        m = cfg.model
        if m.downsample_rate != HOP:
            raise ValueError(f"hubert: the CNN's total stride must be {HOP} samples (the loop's rows), "
                             f"got {m.downsample_rate} from model.conv_layers")
        self.model = Wav2Vec2Model(m)
        self.mask_emb = nn.Parameter(torch.empty(m.hidden_size).uniform_())
        self.final_proj = nn.Linear(m.hidden_size, cfg.final_dim)
        self.label_embs = nn.Parameter(torch.empty(cfg.num_clusters, cfg.final_dim).uniform_())
        # the shortest file: a whole row count covering the CNN's receptive field and 2 MFCC frames
        need = max(receptive_field(m.conv_layers), 400 + 160)
        self.min_samples = int(math.ceil(need / HOP) * HOP)
        self._teacher = None  # not a submodule: its weights come from targets_ckpt, not last.pt
        if cfg.targets_ckpt is None:
            self.label_rate, dim, self.target_source = MFCC_RATE, 39, "mfcc39"
        else:
            teacher = self._load_teacher()
            self.label_rate = SAMPLE_RATE / teacher.downsample_rate
            dim = teacher.hidden_sizes[cfg.targets_layer]
            self.target_source = f"layer {cfg.targets_layer} of {cfg.targets_ckpt}"
        self.ratio = self.label_rate * m.downsample_rate / SAMPLE_RATE
        self.register_buffer("centroids", torch.zeros(cfg.num_clusters, dim))
        self.register_buffer("kmeans_fitted", torch.tensor(False))
        #: statistics of the last 10000 ``loss`` calls, oldest first: ``count_m`` / ``count_u``
        #: (masked / unmasked labelled frames), ``acc_m`` / ``acc_u`` (prediction accuracy),
        #: ``features_pen`` (not saved; the loop's log.jsonl has the loss only)
        self.history: Deque[Dict[str, float]] = collections.deque(maxlen=10_000)

    # -- targets ---------------------------------------------------------------------------------------

    def _load_teacher(self):
        if self._teacher is None:
            from superb.upstream import build_upstream

            cfg = self.cfg
            try:
                teacher = build_upstream("hubert", ckpt=cfg.targets_ckpt)
            except (OSError, ValueError) as exc:
                raise ValueError(f"hubert: targets_ckpt={cfg.targets_ckpt}: {exc}") from exc
            if cfg.targets_layer > teacher.config.num_layers:
                raise ValueError(f"hubert: targets_layer={cfg.targets_layer} but targets_ckpt={cfg.targets_ckpt} has "
                                 f"hidden states 0 .. {teacher.config.num_layers}")
            teacher.eval()
            object.__setattr__(self, "_teacher", teacher)  # not registered as a submodule
        return self._teacher

    @torch.no_grad()
    def target_features(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> List[torch.Tensor]:
        """The features that are clustered, per utterance of a padded waveform batch: ``[M_b, D]``
        (39-d MFCC at 100 Hz, or the teacher layer's hidden states)."""
        if self._teacher is None and self.cfg.targets_ckpt is None:
            return [mfcc39(wavs[b, : int(n)]) for b, n in enumerate(wav_lens.tolist())]
        teacher = self._load_teacher().to(wavs.device)
        out = teacher(wavs.float(), wav_lens.to(wavs.device))
        states = out.hidden_states[self.cfg.targets_layer]
        return [states[b, : int(n)].detach().float().cpu() for b, n in enumerate(out.lengths.tolist())]

    def labels(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
        """``[B, T']`` cluster labels aligned with the CNN frames (-1: none; see :func:`align_labels`)."""
        if not bool(self.kmeans_fitted):
            raise ValueError("hubert: the k-means centroids are not fitted (prepare() has not run and no checkpoint "
                             "restored them)")
        num_frames = self.model.output_lengths(wav_lens)
        T = int(num_frames.max())
        out = torch.full((wavs.shape[0], T), -1, dtype=torch.long)
        for b, feats in enumerate(self.target_features(wavs, wav_lens)):
            codes = nearest_centroid(feats, self.centroids.cpu())
            out[b] = torch.cat([align_labels(codes, int(num_frames[b]), self.ratio),
                                torch.full((T - int(num_frames[b]),), -1, dtype=torch.long)])
        return out.to(wavs.device)

    def prepare(self, features: Callable[[int], torch.Tensor], num_files: int, generator: torch.Generator) -> None:
        """Fit the k-means on target features of the training files (module docstring)."""
        import numpy as np
        from sklearn.cluster import MiniBatchKMeans
        from threadpoolctl import threadpool_limits

        cfg = self.cfg
        order = torch.randperm(num_files, generator=generator).tolist()
        chunks, total = [], 0
        for i in order:
            rows = features(i)
            wavs, lens = frames_to_waveform(rows[None], torch.tensor([rows.shape[0]]))
            feats = self.target_features(wavs, lens)[0]
            chunks.append(feats)
            total += feats.shape[0]
            if total >= cfg.kmeans_max_frames:
                break
        data = torch.cat(chunks)
        if data.shape[0] > cfg.kmeans_max_frames:
            keep = torch.randperm(data.shape[0], generator=generator)[: cfg.kmeans_max_frames]
            data = data[keep.sort().values]
        if data.shape[0] < cfg.num_clusters:
            raise ValueError(f"hubert: only {data.shape[0]} frames of target features for num_clusters="
                             f"{cfg.num_clusters}; use more audio or fewer clusters")
        km = MiniBatchKMeans(n_clusters=cfg.num_clusters, init="k-means++", max_iter=cfg.kmeans_max_iter,
                             batch_size=cfg.kmeans_batch_size, tol=0.0, max_no_improvement=100,
                             n_init=cfg.kmeans_n_init, reassignment_ratio=0.0, random_state=cfg.kmeans_seed,
                             compute_labels=False)
        with threadpool_limits(max(1, torch.get_num_threads())):
            km.fit(data.numpy().astype(np.float32))
        with torch.no_grad():
            self.centroids.copy_(torch.from_numpy(km.cluster_centers_).float())
            self.kmeans_fitted.fill_(True)
        self.kmeans_frames = int(data.shape[0])

    # -- loop interface --------------------------------------------------------------------------------

    def features(self, wavs, wav_lens):
        return waveform_frames(wavs, wav_lens)

    def loss(self, feats, lengths, generator):
        wavs, wav_lens = frames_to_waveform(feats, lengths)
        targets = self.labels(wavs, wav_lens)
        num_frames = self.model.output_lengths(wav_lens)
        mask = span_mask(num_frames.cpu(), targets.shape[1], self.cfg.mask_prob, self.cfg.mask_length, generator)
        handle = None
        if self.cfg.feature_grad_mult != 1.0:
            handle = register_grad_multiply(self.model.feature_extractor, float(self.cfg.feature_grad_mult))
        try:
            out = masked_forward(self.model, model_inputs(self.cfg.model, wavs, wav_lens), wav_lens, mask,
                                 self.mask_emb)
        finally:
            if handle is not None:
                handle.remove()
        proj = self.final_proj(out.states[-1])
        targets = targets[:, : proj.shape[1]]
        loss, stats = masked_prediction_loss(proj, self.label_embs, targets, out.mask, self.cfg.logit_temp,
                                             self.cfg.pred_masked_weight, self.cfg.pred_nomask_weight)
        if self.cfg.feature_pen_weight > 0:
            valid = valid_mask(out.frames.lengths, out.frames.features.shape[1])
            pen = out.frames.features.float().pow(2)[valid].mean()
            stats["features_pen"] = float(pen.detach())
            loss = loss + self.cfg.feature_pen_weight * pen
        self.history.append(stats)
        return loss

    def export(self, step: int, loop: LoopConfig) -> Dict[str, Any]:
        cfg, m = self.cfg, self.cfg.model
        state = fairseq_state(self.model)
        state["mask_emb"] = self.mask_emb.detach().cpu().clone()
        state.update(module_state([("final_proj.", self.final_proj)]))
        specials = torch.zeros(len(FAIRSEQ_SPECIAL_SYMBOLS), cfg.final_dim)
        state["label_embs_concat"] = torch.cat([specials, self.label_embs.detach().cpu()])
        model_cfg = fairseq_model_cfg(
            m, conv_runs=True, pos_conv_depth=False,  # fairseq's HubertConfig has no pos_conv_depth
            label_rate=float(self.label_rate), layer_type="transformer",
            final_dim=cfg.final_dim, untie_final_proj=False,
            logit_temp=float(cfg.logit_temp), target_glu=False,
            feature_grad_mult=float(cfg.feature_grad_mult),
            mask_length=cfg.mask_length, mask_prob=float(cfg.mask_prob), mask_selection="static",
            mask_other=0.0, no_mask_overlap=False, mask_min_space=1,
            mask_channel_length=10, mask_channel_prob=0.0, mask_channel_selection="static",
            mask_channel_other=0.0, no_mask_channel_overlap=False, mask_channel_min_space=1,
            skip_masked=cfg.pred_masked_weight == 0, skip_nomask=cfg.pred_nomask_weight == 0)
        task_cfg = audio_pretraining_task(
            m, loop, name="hubert_pretraining", data="", labels=["km"], label_dir=None,
            label_rate=float(self.label_rate), enable_padding=False, max_keep_size=None,
            min_sample_size=self.min_samples, random_crop=True, pad_audio=False)
        criterion = {"_name": "hubert", "pred_masked_weight": float(cfg.pred_masked_weight),
                     "pred_nomask_weight": float(cfg.pred_nomask_weight),
                     "loss_weights": [float(cfg.feature_pen_weight)]}
        kmeans = {"centroids": self.centroids.detach().cpu().clone(), "features": self.target_source,
                  "label_rate": float(self.label_rate), "num_clusters": int(cfg.num_clusters)}
        return fairseq_checkpoint(model_cfg, task_cfg, state, step, loop, sections={"criterion": criterion},
                                  criterion_name="HubertCriterion", extra_state={"num_updates": int(step)},
                                  extra={"superb_kmeans": kmeans})


def preset(name: str, preset_name: str):
    cfg, loop = PRESETS[preset_name]
    return copy.deepcopy(cfg), copy.deepcopy(loop)


def build(name: str, cfg: HuBERTPretrainConfig) -> HuBERTObjective:
    return HuBERTObjective(cfg)
