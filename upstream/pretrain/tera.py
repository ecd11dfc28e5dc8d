"""Objectives ``tera`` and ``mockingjay``: masked reconstruction of acoustic frames.

TERA (Liu, Li, Lee 2021, arXiv 2007.06028) alters the input features along three axes and
trains a transformer encoder plus a prediction head to reconstruct the **original** frames; the
loss is the L1 distance on the altered positions. Mockingjay (Liu et al. 2020, arXiv 1910.12638)
is the time alteration alone. Features: the ``tera``/``mockingjay`` upstream's online front end
(-25 dB RMS normalisation, centred 25 ms / 10 ms STFT, 80 log-mel, per-utterance CMVN), computed
by :class:`superb.upstream.mockingjay.MockingjayUpstream`, whose weights are the ones trained.

The alteration policy (:func:`alter`; facts of the TERA paper and s3prl 0.4.18's
``pretrain/mockingjay/task.py``, no code copied), per utterance of ``n`` valid frames and ``D``
features, drawing everything from the loop's generator:

* time: span width ``W`` uniform in ``[mask_consecutive_min, mask_consecutive_max]``;
  ``round(n * mask_proportion / W)`` span starts drawn without replacement from
  ``0 .. max(n - W - 1, 0)`` (spans may overlap); then with probability 0.8 the spans are set to
  zero, with 0.1 replaced by the frames of as many other random spans, with 0.1 left unchanged;
  every frame of the spans is a target (all ``D`` features);
* frequency: width uniform in ``[0, int(D * mask_frequency)]``, start uniform in
  ``[0, D - width - 1]``; those bins set to zero on every frame; every valid frame of the band is
  a target;
* magnitude: with probability ``noise_proportion`` Gaussian noise ``N(0, noise_std)`` is added
  to the valid frames (s3prl: 0.2); noise alone makes no targets;
* with no time and no frequency alteration configured, every valid frame is a target.

Loss (:func:`reconstruction_loss`): mean ``|prediction - original|`` over the target elements;
a batch without any target gives a zero loss (s3prl drops such utterances and asserts on an
empty batch).

Model: the upstream's input representation and post-LN layers (the hidden states
``superb run --upstream tera`` extracts), then s3prl's prediction head ``SpecHead``:
``Linear(H, H) -> activation -> LayerNorm -> Linear(H, D)``. Weights ``N(0, 0.02)``, zero biases,
unit LayerNorms (the published initialisation). No dropout (s3prl's configs use 0.1; not done).

Presets (``base``; s3prl 0.4.18's TERA/Mockingjay config values as recorded in our reference
sheet and tests, the mask values as the TERA paper states them): TERA 3 layers, 768 hidden,
12 heads, 3072 FFN, gelu, sequence length 1500, time masking 15 % in spans of 7, frequency masking
up to 20 % of the bins; ``noise_proportion`` 0.1 is our choice (the paper's value unverified);
Mockingjay: 12 layers, time masking only (15 %, spans of 7; unverified for the original paper,
which masked single frames). Adam 2e-4 (s3prl's TERA learning rate; its warm-up schedule is not
done), gradient clipping 5.0 (unverified). ``tiny``: 2 layers of 32, 2 heads, for tests.

Export: s3prl's native ``{'Transformer', 'SpecHead', 'Upstream_Config': {'transformer', 'task',
'audio'}, 'Config': {'runner', 'optimizer'}, 'Step'}``, keys ``input_representations.*`` / ``encoder.layer.N.*`` (the inverse of
:data:`superb.upstream.mockingjay.S3PRL_KEY_MAP`) -- what
:mod:`superb.upstream.mockingjay.import_s3prl` and s3prl's expert load. The ``task`` section of a
``mockingjay`` file has no ``mask_frequency`` / ``noise_proportion`` keys, so ``superb inspect``
calls it Mockingjay.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

import torch
from torch import nn

from ..mockingjay.model import _ACTIVATIONS, MockingjayConfig, MockingjayUpstream
from ..state_dict import map_keys
from .loop import LoopConfig, Objective

#: our weight names -> s3prl's (the inverse of superb.upstream.mockingjay.S3PRL_KEY_MAP)
TO_S3PRL_KEY_MAP = (
    (r"input_proj\.(weight|bias)", r"input_representations.spec_transform.\1"),
    (r"input_norm\.(weight|bias)", r"input_representations.LayerNorm.\1"),
    (r"layers\.(\d+)\.q\.(weight|bias)", r"encoder.layer.\1.attention.self.query.\2"),
    (r"layers\.(\d+)\.k\.(weight|bias)", r"encoder.layer.\1.attention.self.key.\2"),
    (r"layers\.(\d+)\.v\.(weight|bias)", r"encoder.layer.\1.attention.self.value.\2"),
    (r"layers\.(\d+)\.attn_out\.(weight|bias)", r"encoder.layer.\1.attention.output.dense.\2"),
    (r"layers\.(\d+)\.attn_norm\.(weight|bias)", r"encoder.layer.\1.attention.output.LayerNorm.\2"),
    (r"layers\.(\d+)\.ffn_in\.(weight|bias)", r"encoder.layer.\1.intermediate.dense.\2"),
    (r"layers\.(\d+)\.ffn_out\.(weight|bias)", r"encoder.layer.\1.output.dense.\2"),
    (r"layers\.(\d+)\.ffn_norm\.(weight|bias)", r"encoder.layer.\1.output.LayerNorm.\2"),
)

#: the online front end written to Upstream_Config.audio (target = the input features)
ONLINE_AUDIO = {
    "target_level": -25, "win_ms": 25, "hop_ms": 10, "n_freq": 201, "n_mels": 80, "n_mfcc": 13,
    "input": {"feat_type": "mel", "channel": 0, "log": True, "delta": 0, "cmvn": True},
    "target": {"feat_type": "mel", "channel": 1, "log": True, "delta": 0, "cmvn": True},
}


def _online_model() -> MockingjayConfig:
    return MockingjayConfig(front_end="online")


@dataclass
class TERAPretrainConfig:
    """What to pretrain: the upstream's own architecture config (``model``, so the exported file
    describes exactly what :class:`~superb.upstream.mockingjay.model.MockingjayUpstream` builds;
    the online front end, post-LN, no layer sharing) and the alteration policy."""

    model: MockingjayConfig = field(default_factory=_online_model)
    mask_proportion: float = 0.15
    mask_consecutive_min: int = 7
    mask_consecutive_max: int = 7
    mask_frequency: float = 0.2
    noise_proportion: float = 0.1
    noise_std: float = 0.2

    def validate(self, where: str = "tera") -> None:
        for key in ("mask_proportion", "mask_frequency", "noise_proportion"):
            v = float(getattr(self, key))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{where}: {key} must be in [0, 1], got {v}")
        if not 1 <= self.mask_consecutive_min <= self.mask_consecutive_max:
            raise ValueError(f"{where}: need 1 <= mask_consecutive_min ({self.mask_consecutive_min}) <= "
                             f"mask_consecutive_max ({self.mask_consecutive_max})")
        self.model.validate(where)
        m = self.model
        if m.front_end != "online" or m.pre_layer_norm or m.share_layer:
            raise ValueError(f"{where}: pretraining exports s3prl's post-LN online-front-end format; got "
                             f"front_end={m.front_end!r}, pre_layer_norm={m.pre_layer_norm}, share_layer={m.share_layer}")


_TERA_BASE = TERAPretrainConfig()
_MOCKINGJAY_BASE = TERAPretrainConfig(model=MockingjayConfig(num_layers=12), mask_frequency=0.0, noise_proportion=0.0)
#: tiny: sized to learn something from the default mini corpus (50 min) on 1-2 CPU threads in a few
#: minutes (1,000 steps); the tests shrink it further with ``sets``
_TINY_MODEL = dict(hidden_size=128, num_layers=3, num_heads=4, intermediate_size=512)
_TINY_LOOP = LoopConfig(max_steps=1000, lr=1e-3, batch_seconds=12.0, max_frames=300, grad_clip=5.0, save_every=250)
_BASE_LOOP = LoopConfig(max_steps=100_000, lr=2e-4, batch_seconds=160.0, max_frames=1500, grad_clip=5.0,
                        save_every=5_000)

PRESETS: Dict[str, Dict[str, Tuple[TERAPretrainConfig, LoopConfig]]] = {
    "tera": {"tiny": (TERAPretrainConfig(model=MockingjayConfig(**_TINY_MODEL)), _TINY_LOOP),
             "base": (_TERA_BASE, _BASE_LOOP)},
    "mockingjay": {"tiny": (TERAPretrainConfig(model=MockingjayConfig(**_TINY_MODEL), mask_frequency=0.0,
                                               noise_proportion=0.0), _TINY_LOOP),
                   "base": (_MOCKINGJAY_BASE, _BASE_LOOP)},
}


def _randint(lo: int, hi: int, g: torch.Generator) -> int:
    """Uniform integer in ``[lo, hi]``."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _spans(starts: torch.Tensor, width: int, n: int) -> torch.Tensor:
    idx = (starts[:, None] + torch.arange(width)[None, :]).reshape(-1)
    return idx[idx < n]


def alter(feats: torch.Tensor, lengths: torch.Tensor, cfg: TERAPretrainConfig,
          g: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(altered features, target mask)`` of a padded batch ``[B, T, D]`` (see module docstring)."""
    altered = feats.clone()
    B, T, D = feats.shape
    target = torch.zeros(B, T, D, dtype=torch.bool)
    for b, n in enumerate(lengths.tolist()):
        if cfg.mask_proportion > 0:
            width = _randint(cfg.mask_consecutive_min, cfg.mask_consecutive_max, g)
            start_max = max(n - width - 1, 0)
            count = round(n * cfg.mask_proportion / width)
            starts = torch.randperm(start_max + 1, generator=g)[:count]
            frames = _spans(starts, width, n)
            dice = float(torch.rand(1, generator=g))
            if dice < 0.8:
                altered[b, frames] = 0.0
            elif dice < 0.9:
                other = _spans(torch.randperm(start_max + 1, generator=g)[:count], width, n)
                k = min(len(frames), len(other))
                altered[b, frames[:k]] = feats[b, other[:k]]
            target[b, frames] = True
        if cfg.mask_frequency > 0:
            width = _randint(0, int(D * cfg.mask_frequency), g)
            start = _randint(0, D - width - 1, g) if D - width - 1 > 0 else 0
            altered[b, :, start:start + width] = 0.0
            target[b, :n, start:start + width] = True
        if cfg.noise_proportion > 0 and float(torch.rand(1, generator=g)) < cfg.noise_proportion:
            noise = torch.randn(n, D, generator=g) * cfg.noise_std
            altered[b, :n] = altered[b, :n] + noise.to(altered.dtype)
        if cfg.mask_proportion == 0 and cfg.mask_frequency == 0:
            target[b, :n] = True
    return altered, target.to(feats.device)


def reconstruction_loss(pred: torch.Tensor, original: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean ``|pred - original|`` over the elements where ``target`` is true (0 when none is)."""
    if pred.shape != original.shape or target.shape != original.shape:
        raise ValueError(f"reconstruction_loss: shapes {tuple(pred.shape)}, {tuple(original.shape)}, "
                         f"{tuple(target.shape)} differ")
    if not bool(target.any()):
        return pred.sum() * 0.0
    return (pred - original).abs()[target].mean()


class SpecHead(nn.Module):
    """s3prl's prediction head: ``Linear(H, H) -> act -> LayerNorm -> Linear(H, out)``."""

    def __init__(self, hidden: int, out_dim: int, activation: str, eps: float):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.act = _ACTIVATIONS[activation]
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.output = nn.Linear(hidden, out_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.output(self.LayerNorm(self.act(self.dense(h))))


class TERAObjective(Objective):
    def __init__(self, name: str, cfg: TERAPretrainConfig):
        super().__init__()
        cfg.validate(name)
        self.name = self.upstream_name = name
        self.cfg = cfg
        m = cfg.model
        self.model = MockingjayUpstream(m, f"{name} pretraining")
        feat_dim = self.model.front_end.output_dim
        self.head = SpecHead(m.hidden_size, feat_dim, m.activation, m.layer_norm_eps)
        for m in self.head.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.hop = int(self.model.downsample_rate)
        self.min_samples = 400

    def features(self, wavs, wav_lens):
        return self.model.front_end(wavs.float(), wav_lens)

    def loss(self, feats, lengths, generator):
        altered, target = alter(feats.cpu(), lengths.cpu(), self.cfg, generator)
        last = self.model.encode(altered.to(feats.device), lengths)[-1]
        return reconstruction_loss(self.head(last), feats, target)

    def export(self, step: int, loop: LoopConfig) -> Dict[str, Any]:
        cfg, m = self.cfg, self.cfg.model
        transformer = {
            "hidden_size": m.hidden_size, "num_hidden_layers": m.num_layers,
            "num_attention_heads": m.num_heads, "intermediate_size": m.intermediate_size,
            "hidden_act": m.activation, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
            "initializer_range": 0.02, "layer_norm_eps": m.layer_norm_eps, "share_layer": False,
            "pre_layer_norm": False,
        }
        task = {"loss": "L1", "sequence_length": m.sequence_length, "position_encoding_size": m.hidden_size,
                "mask_proportion": cfg.mask_proportion, "mask_consecutive_min": cfg.mask_consecutive_min,
                "mask_consecutive_max": cfg.mask_consecutive_max, "mask_allow_overlap": True}
        if self.name == "tera":
            task.update(mask_frequency=cfg.mask_frequency, noise_proportion=cfg.noise_proportion)
        audio = copy.deepcopy(ONLINE_AUDIO)
        audio["n_mels"] = m.n_mels

        def plain(sd):
            return {k: v.detach().cpu().clone() for k, v in sd.items()}

        return {
            "Transformer": plain(map_keys(self.model.state_dict(), TO_S3PRL_KEY_MAP)),
            "SpecHead": plain(self.head.state_dict()),
            "Upstream_Config": {"transformer": transformer, "task": task, "audio": audio},
            # s3prl's runner section (its expert reads 'Config' before 'Upstream_Config')
            "Config": {"runner": {"total_steps": int(loop.max_steps), "gradient_clipping": float(loop.grad_clip)},
                       "optimizer": {"name": "Adam", "lr": float(loop.lr)}},
            "Step": int(step),
        }


def preset(name: str, preset_name: str):
    cfg, loop = PRESETS[name][preset_name]
    return copy.deepcopy(cfg), copy.deepcopy(loop)


def build(name: str, cfg: TERAPretrainConfig) -> TERAObjective:
    return TERAObjective(name, cfg)
