"""Objective ``apc``: autoregressive predictive coding (Chung et al. 2019, arXiv 1904.03240).

A causal residual GRU stack reads the features up to frame ``t`` and a linear ``postnet``
predicts frame ``t + n`` (``n_future``); the loss is the L1 distance (mean absolute error over
every predicted element) between the prediction and the true frame. Features: the ``apc``
upstream's own front end, Kaldi fbank 80 (25 ms / 10 ms, Hamming, no dither) + per-utterance
CMVN, computed by :class:`superb.upstream.apc.APCUpstream`, whose weights (``layers.N``,
``postnet``) are the ones trained here.

Facts used (no code copied): s3prl 0.4.18's ``pretrain/apc/pretrain_expert.py`` feeds
``feats[:, :-n]`` to the model and compares its output with ``feats[:, n:]`` under
``torch.nn.L1Loss``; the APC model applies dropout to each GRU layer's output, then adds that
layer's input when ``residual`` is set (layers after the first). One deliberate difference:
s3prl averages over the padded batch (the model's outputs on padding are compared with the zero
padding of the targets and counted); here only the valid pairs ``t + n < length`` count, so the loss of a batch does not
depend on how it was padded (:func:`apc_loss`).

Presets: ``base`` = 3-layer GRU 512, residual, ``n_future`` 3, dropout 0.1, Adam 1e-3 -- the
APC paper's model (3 layers, 512 units, residual connections; n = 3 among the shifts it reports)
and the released s3prl APC's ``hidden_size`` 512 / ``num_layers`` 3; the dropout 0.1 and the
learning rate 1e-3 are the APC paper's / s3prl config values as we recall them (unverified
against the exact s3prl ``config_model.yaml``). ``tiny`` = 3 layers of 128 (3 layers: s3prl's
APC expert hard-codes three hooks), no dropout, 1,000 steps: minutes on the mini corpus (the
tests shrink it with ``--set model.hidden_size=32``).

Export: s3prl's APC file ``{'config': {'data': {'audio'}, 'model': {'paras'}, 'task':
{'n_future'}}, 'model': state_dict}`` with keys ``rnn_layers.N.*`` and ``postnet.*`` -- what
:mod:`superb.upstream.apc.import_s3prl` and s3prl's APC expert load.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F

from ..apc.model import APCConfig, APCUpstream
from ..state_dict import map_keys
from .loop import LoopConfig, Objective

#: our weight names -> s3prl's (the inverse of superb.upstream.apc.S3PRL_KEY_MAP)
TO_S3PRL_KEY_MAP = ((r"layers\.(\d+)\.(.+)", r"rnn_layers.\1.\2"),)

#: the Kaldi arguments written to data.audio (and read back by the apc loader)
KALDI_ARGS = {"frame_length": 25, "frame_shift": 10, "dither": 0.0}


def _plain_apc() -> APCConfig:
    return APCConfig(kaldi_kwargs=dict(KALDI_ARGS))


@dataclass
class APCPretrainConfig:
    """What to pretrain: the upstream's own architecture config (``model``: feature size, GRU
    width and depth, residuals, front end; plain APC, no VQ) plus the objective's settings."""

    model: APCConfig = field(default_factory=_plain_apc)
    dropout: float = 0.1
    n_future: int = 3

    def validate(self, where: str = "apc") -> None:
        if self.n_future < 1:
            raise ValueError(f"{where}: n_future must be >= 1, got {self.n_future}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{where}: dropout must be in [0, 1), got {self.dropout}")
        if self.model.vq_codebook_size:
            raise ValueError(f"{where}: VQ-APC pretraining is not implemented (model.vq_codebook_size must be empty)")


PRESETS: Dict[str, Tuple[APCPretrainConfig, LoopConfig]] = {
    # tiny: learns from the default mini corpus (50 min) on 1-2 CPU threads in ~4 minutes (1,000 steps)
    "tiny": (APCPretrainConfig(model=APCConfig(hidden_size=128, kaldi_kwargs=dict(KALDI_ARGS)), dropout=0.0),
             LoopConfig(max_steps=1000, lr=3e-3, batch_seconds=12.0, max_frames=300, grad_clip=5.0, save_every=250)),
    "base": (APCPretrainConfig(),
             LoopConfig(max_steps=100_000, lr=1e-3, batch_seconds=160.0, max_frames=1500, grad_clip=5.0,
                        save_every=5_000)),
}


def apc_loss(pred: torch.Tensor, feats: torch.Tensor, lengths: torch.Tensor, n_future: int) -> torch.Tensor:
    """Mean ``|pred[b, t] - feats[b, t + n]|`` over every feature of every valid pair
    ``t + n < lengths[b]``. ``pred`` is ``[B, T - n, D]`` (the model's output on ``feats[:, :-n]``)."""
    B, T, D = feats.shape
    n = int(n_future)
    if pred.shape != (B, T - n, D):
        raise ValueError(f"apc_loss: prediction shape {tuple(pred.shape)}, expected {(B, T - n, D)}")
    valid = torch.arange(T - n, device=feats.device)[None, :] < (lengths.to(feats.device) - n)[:, None]
    count = valid.sum() * D
    if int(count) == 0:
        raise ValueError(f"apc_loss: no utterance of the batch has more than n_future={n} frames "
                         f"(lengths {lengths.tolist()})")
    err = (pred - feats[:, n:]).abs() * valid[..., None]
    return err.sum() / count


class APCObjective(Objective):
    name = "apc"
    upstream_name = "apc"

    def __init__(self, cfg: APCPretrainConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.model = APCUpstream(cfg.model, "apc pretraining")
        self.hop = int(self.model.downsample_rate)
        # a 25 ms window plus n_future + 1 more frames: at least one (input, target) pair
        self.min_samples = 400 + (cfg.n_future + 1) * self.hop

    def features(self, wavs, wav_lens):
        return self.model.front_end(wavs.float(), wav_lens)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The postnet's prediction at every frame of ``x`` (causal: frame t sees frames <= t)."""
        for i, gru in enumerate(self.model.layers):
            y, _ = gru(x)
            y = F.dropout(y, self.cfg.dropout, self.training)
            if self.cfg.model.residual and i > 0:
                y = y + x
            x = y
        return self.model.postnet(x)

    def loss(self, feats, lengths, generator):
        n = self.cfg.n_future
        return apc_loss(self.predict(feats[:, :-n]), feats, lengths, n)

    def export(self, step: int, loop: LoopConfig) -> Dict[str, Any]:
        cfg, m = self.cfg, self.cfg.model
        paras = {"hidden_size": m.hidden_size, "num_layers": m.num_layers, "dropout": cfg.dropout,
                 "residual": m.residual}
        audio = {"feat_type": "fbank", "feat_dim": m.feat_dim, **KALDI_ARGS, "cmvn": True}
        config = {"data": {"audio": audio}, "model": {"paras": paras}, "task": {"n_future": cfg.n_future},
                  "hparas": {"optimizer": "Adam", "lr": float(loop.lr), "grad_clip": float(loop.grad_clip)}}
        state = {k: v.detach().cpu().clone() for k, v in map_keys(self.model.state_dict(), TO_S3PRL_KEY_MAP).items()}
        return {"config": config, "model": state, "Step": int(step)}


def preset(name: str, preset_name: str):
    import copy

    cfg, loop = PRESETS[preset_name]
    return copy.deepcopy(cfg), copy.deepcopy(loop)


def build(name: str, cfg: APCPretrainConfig) -> APCObjective:
    return APCObjective(cfg)
