"""Objective ``cpc``: contrastive predictive coding (van den Oord et al. 2018, arXiv 1807.03748) in
the modified-CPC architecture of Rivière et al. 2020 ("Unsupervised pretraining transfers well
across languages", arXiv 2002.02848).

The model is the ``modified_cpc`` upstream itself (:class:`superb.upstream.cpc.CPCUpstream`):
the five-convolution encoder on the raw 16 kHz waveform gives ``z_t`` (10 ms frames), the
recurrent context network gives ``c_t``. ``K`` (``n_predicts``) prediction heads ``W_k``, one per
step, map ``c_t`` to a prediction of ``z_{t+k}``; the score of a candidate ``z`` is
``mean_d(W_k c_t * z)`` (the *mean* over the ``D`` encoder channels, CPC_audio's scale); each
prediction is contrasted with ``n_negatives`` negatives. The loss (:func:`cpc_loss`) is the
InfoNCE cross-entropy with the positive at index 0 of the candidates, averaged over the valid
query frames, then averaged over the steps ``k = 1 .. K``.

Facts used (no code copied) from CPC_audio (facebookresearch/CPC_audio ``cpc/criterion/criterion.py``,
the criterion s3prl's ``modified_cpc`` checkpoint was trained with) and s3prl 0.4.18's
``upstream/cpc/cpc_default_config.py`` (CPC_audio's argparse defaults): ``nPredicts`` 12,
``negativeSamplingExt`` 128, ``learningRate`` 2e-4 (Adam 0.9 / 0.999 / 1e-8), ``sizeWindow``
20480 samples (128 frames), ``hiddenEncoder`` = ``hiddenGar`` = 256, LSTM context network of
``nLevelsGRU`` 1 layer; the prediction network ``wPrediction.predictors.{k}`` is one module per
step, with ``rnnMode`` choosing its kind (``nn.Linear(dimAR, dimEnc, bias=False)`` for the
plain mode, a 1-layer transformer for ``'transformer'``), optionally followed by dropout 0.5
(``--dropout``); the score is the mean over channels of prediction x candidate; the negatives,
shared by all ``k``, are drawn anywhere in the batch (a uniform utterance index and a position
offset 1 .. S-1 from the query's); ``nn.CrossEntropyLoss`` with label 0 per step.

Deliberate differences, each documented: (1) only the linear predictor (``rnnMode='linear'``, the
original CPC's ``W_k``) is implemented, not CPC_audio's recommended transformer predictor; the
heads are not part of the upstream (extraction never uses them); (2) the loop's batches are
padded utterances, not fixed windows: a query frame ``t`` of utterance ``b`` counts when
``t + K < length_b``, and the negatives are drawn uniformly from every valid encoder frame of the
batch (any utterance, any position: a negative can coincide with the positive with probability
about ``1 / (valid frames)``); (3) the per-step losses are averaged (CPC_audio's training script
sums the ``K`` per-step losses, ``totLoss = allLosses.sum()`` in ``cpc/train.py`` -- a
constant factor ``K`` that Adam largely absorbs; the logged loss here stays on the ``log(1 + N)``
scale); (4) the encoder sees each utterance alone (the upstream zeroes padding per layer), and
the context network always starts from a zero state (no ``keepHidden``); (5) the loop clips the
gradient norm (``grad_clip`` 5; CPC_audio's ``train.py`` does not clip).

Initialisation: PyTorch's defaults (as CPC_audio), except that the five encoder convolutions
start with **zero biases**: with PyTorch's uniform bias init the biases dominate the response to
quiet speech, every frame looks the same after channel norm, and the loss sat on its
``log(1 + N)`` plateau for hundreds of steps on the mini corpus (measured; with zero biases it
falls from the first steps).

Presets: ``base`` = CPC_audio's defaults named above (256 / 256, 1-layer LSTM, 12 steps, 128
negatives, Adam 2e-4, crops of 128 frames = ``sizeWindow`` 20480) with channel norm
(``normMode='layerNorm'``, modified CPC) and prediction dropout 0.5 (``--dropout``, as in the
modified-CPC training command of CPC_audio-derived repositories, e.g. chorowski-lab/hCPC's
README: ``--normMode layerNorm --dropout --rnnMode transformer --nLevelsGRU 2``; that command's
transformer predictor and 2-layer LSTM are not the base preset: ``--set model.nLevelsGRU=2``
gives the latter); batches of 64 windows (82 s: CPC_audio's ``batchSizeGPU`` default 8 x 8 GPUs
-- the GPU count is our assumption). ``tiny`` = 64 / 64 channels, 1-layer LSTM, 12 steps, 32
negatives, Adam 1e-3, no dropout, 600 steps of 8 s batches: on the default mini corpus (1000 files) on one CPU thread
the loss falls from 3.50 (= log 33) to about 2.4 in about 4.5 minutes (measured).

Export: CPC_audio's hub / s3prl file ``{'config': CPC_audio args, 'weights': state_dict}``
(weights ``gEncoder.conv{i}.*``, ``gEncoder.batchNorm{i}.*``, ``gAR.baseNet.*``: the inverse of
:data:`superb.upstream.cpc.CPC_AUDIO_KEY_MAP`), which :mod:`superb.upstream.cpc.import_cpc_audio`
(``build_upstream("cpc", ckpt=...)``) and s3prl's CPC expert load, plus ``'cpcCriterion'``: the
prediction heads under CPC_audio's criterion names ``wPrediction.predictors.{k}.weight`` (the
key CPC_audio's training checkpoints use; both loaders ignore it) and ``'Step'``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..cpc.model import CPCConfig, CPCUpstream
from ..state_dict import map_keys
from .loop import LoopConfig, Objective
from .masked import frames_to_waveform, waveform_frames

#: samples per encoder frame (the five convolutions' total stride)
HOP = 160
#: our weight names -> CPC_audio's (the inverse of superb.upstream.cpc.CPC_AUDIO_KEY_MAP)
TO_CPC_AUDIO_KEY_MAP = (
    (r"convs\.(\d)\.(weight|bias)", r"gEncoder.conv\1.\2"),
    (r"norms\.(\d)\.(.+)", r"gEncoder.batchNorm\1.\2"),
    (r"ar\.(.+)", r"gAR.baseNet.\1"),
)
PREDICTORS = ("linear",)


def _base_model() -> CPCConfig:
    return CPCConfig(hiddenEncoder=256, hiddenGar=256, arMode="LSTM", nLevelsGRU=1, normMode="layerNorm")


@dataclass
class CPCPretrainConfig:
    """What to pretrain: the upstream's architecture (``model``, CPC_audio names) plus the
    criterion's settings (CPC_audio names in the comments)."""

    model: CPCConfig = field(default_factory=_base_model)
    #: nPredicts: future steps predicted (one head each)
    n_predicts: int = 12
    #: negativeSamplingExt: negatives per query frame
    n_negatives: int = 128
    #: rnnMode of the prediction heads (only 'linear')
    predictor: str = "linear"
    #: --dropout of CPC_audio's prediction network (p = 0.5 there); 0 disables
    prediction_dropout: float = 0.5

    def validate(self, where: str = "cpc") -> None:
        if int(self.n_predicts) < 1:
            raise ValueError(f"{where}: n_predicts must be >= 1, got {self.n_predicts}")
        if int(self.n_negatives) < 1:
            raise ValueError(f"{where}: n_negatives must be >= 1, got {self.n_negatives}")
        if self.predictor not in PREDICTORS:
            raise ValueError(f"{where}: predictor {self.predictor!r} is not implemented (implemented: "
                             f"{', '.join(PREDICTORS)}; CPC_audio's 'transformer' predictor is not)")
        if not 0.0 <= float(self.prediction_dropout) < 1.0:
            raise ValueError(f"{where}: prediction_dropout must be in [0, 1), got {self.prediction_dropout}")
        if self.model.normMode == "batchNorm":
            raise ValueError(f"{where}: model.normMode 'batchNorm' cannot be pretrained here (the upstream "
                             "uses fixed running statistics); use 'layerNorm', 'instanceNorm' or 'ID'")
        self.model.validate(f"{where}: model")


PRESETS: Dict[str, Tuple[CPCPretrainConfig, LoopConfig]] = {
    "tiny": (CPCPretrainConfig(model=CPCConfig(hiddenEncoder=64, hiddenGar=64, arMode="LSTM", nLevelsGRU=1,
                                               normMode="layerNorm"),
                               n_predicts=12, n_negatives=32, prediction_dropout=0.0),
             LoopConfig(max_steps=600, lr=1e-3, batch_seconds=8.0, max_frames=128, grad_clip=5.0, save_every=100)),
    "base": (CPCPretrainConfig(),
             LoopConfig(max_steps=200_000, lr=2e-4, batch_seconds=82.0, max_frames=128, grad_clip=5.0,
                        save_every=5_000)),
}


def cpc_loss(predictions: torch.Tensor, z: torch.Tensor, negatives: torch.Tensor,
             window: torch.Tensor) -> torch.Tensor:
    """InfoNCE of CPC, averaged over the steps.

    ``predictions`` ``[K, B, W, D]``: step ``k``'s (1-based) prediction made at query frame ``t``;
    ``z`` ``[B, T, D]`` the encoder frames, ``W = T - K``; ``negatives`` ``[B, W, N]`` indices into
    ``z.reshape(B * T, D)`` (shared by all steps); ``window`` ``[B]`` the number of valid query
    frames of each utterance (``length - K``, clamped at 0). For step ``k`` and query ``(b, t)``
    the candidates are ``[z[b, t + k], z[negatives[b, t, 0]], ...]``, their scores
    ``mean_d(prediction * candidate)``, the term ``-log softmax(scores)[0]``; each step's loss is
    the mean over the valid queries, the result the mean over the ``K`` steps."""
    K, B, W, D = predictions.shape
    T = z.shape[1]
    if z.shape != (B, T, D) or W != T - K:
        raise ValueError(f"cpc_loss: predictions {tuple(predictions.shape)} do not match z {tuple(z.shape)} "
                         f"(expected [K, B, T - K, D])")
    if negatives.shape[:2] != (B, W):
        raise ValueError(f"cpc_loss: negatives shape {tuple(negatives.shape)}, expected [{B}, {W}, N]")
    valid = torch.arange(W, device=z.device)[None, :] < window.to(z.device)[:, None]
    if int(valid.sum()) == 0:
        raise ValueError(f"cpc_loss: no utterance of the batch has more than n_predicts={K} frames "
                         f"(query windows {window.tolist()})")
    negs = z.reshape(B * T, D)[negatives]  # [B, W, N, D]
    total = z.new_zeros(())
    for k in range(1, K + 1):
        cand = torch.cat([z[:, k:k + W, None, :], negs], dim=2)  # [B, W, 1 + N, D]
        scores = (predictions[k - 1][:, :, None, :] * cand).mean(dim=-1)
        nll = -F.log_softmax(scores, dim=-1)[..., 0]
        total = total + nll[valid].mean()
    return total / K


def draw_negatives(lengths: torch.Tensor, num_frames: int, window: int, n_negatives: int,
                   generator: torch.Generator) -> torch.Tensor:
    """``[B, window, n_negatives]`` indices into the flattened ``[B * num_frames]`` frames, each
    drawn uniformly from the valid frames (``t < lengths[b]``) of the whole batch."""
    B = len(lengths)
    flat = torch.nonzero(torch.arange(num_frames)[None, :] < lengths.cpu()[:, None])
    pool = flat[:, 0] * num_frames + flat[:, 1]
    pick = torch.randint(0, len(pool), (B, window, int(n_negatives)), generator=generator)
    return pool[pick]


class CPCObjective(Objective):
    name = "cpc"
    upstream_name = "modified_cpc"
    hop = HOP

    def __init__(self, cfg: CPCPretrainConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.model = CPCUpstream(cfg.model, "cpc pretraining")
        with torch.no_grad():  # zero conv biases: see "Initialisation" in the module docstring
            for conv in self.model.convs:
                conv.bias.zero_()
        m = cfg.model
        self.heads = nn.ModuleList(nn.Linear(m.hiddenGar, m.hiddenEncoder, bias=False)
                                   for _ in range(cfg.n_predicts))
        # a 25 ms window plus n_predicts + 1 more frames: at least one query with all its steps
        self.min_samples = 400 + (cfg.n_predicts + 1) * HOP

    def features(self, wavs, wav_lens):
        return waveform_frames(wavs, wav_lens, HOP)

    def loss(self, feats, lengths, generator):
        wavs, wav_lens = frames_to_waveform(feats, lengths)
        out = self.model(wavs, wav_lens)
        z, c = out.hidden_states
        flen = out.lengths
        K = self.cfg.n_predicts
        T = z.shape[1]
        if T <= K:
            raise ValueError(f"cpc: the batch's longest utterance has {T} frames, n_predicts={K} needs more")
        W = T - K
        negatives = draw_negatives(flen, T, W, self.cfg.n_negatives, generator).to(z.device)
        preds = []
        for head in self.heads:
            p = head(c[:, :W])
            preds.append(F.dropout(p, self.cfg.prediction_dropout, self.training))
        return cpc_loss(torch.stack(preds), z, negatives, (flen - K).clamp(min=0))

    def cpc_audio_args(self, loop: LoopConfig) -> Dict[str, Any]:
        """The ``config`` of the export: CPC_audio's argument names."""
        cfg, m = self.cfg, self.cfg.model
        return {"hiddenEncoder": m.hiddenEncoder, "hiddenGar": m.hiddenGar, "arMode": m.arMode,
                "nLevelsGRU": m.nLevelsGRU, "normMode": m.normMode, "encoder_type": m.encoder_type,
                "cpc_mode": m.cpc_mode, "nPredicts": cfg.n_predicts, "negativeSamplingExt": cfg.n_negatives,
                "rnnMode": cfg.predictor, "dropout": cfg.prediction_dropout > 0, "samplingType": "uniform",
                "learningRate": float(loop.lr), "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
                "sizeWindow": int(loop.max_frames) * HOP, "speakerEmbedding": 0, "abspos": False}

    def export(self, step: int, loop: LoopConfig) -> Dict[str, Any]:
        def plain(sd):
            return {k: v.detach().cpu().clone() for k, v in sd.items()}

        criterion = {f"wPrediction.predictors.{k}.weight": h.weight for k, h in enumerate(self.heads)}
        return {"config": self.cpc_audio_args(loop),
                "weights": plain(map_keys(self.model.state_dict(), TO_CPC_AUDIO_KEY_MAP)),
                "cpcCriterion": plain(criterion), "Step": int(step)}


def preset(name: str, preset_name: str):
    cfg, loop = PRESETS[preset_name]
    return copy.deepcopy(cfg), copy.deepcopy(loop)


def build(name: str, cfg: CPCPretrainConfig) -> CPCObjective:
    return CPCObjective(cfg)
