"""APC and VQ-APC: autoregressive predictive coding with a residual multi-layer GRU.

Architecture (Chung et al. 2019 "APC", Chung et al. 2020 "VQ-APC"; configuration and weight
names as in s3prl's ``upstream/apc`` - facts only):

* front end: Kaldi fbank (``torchaudio.compliance.kaldi.fbank``, ``feat_dim`` mel bins, Hamming
  window, 25 ms / 10 ms, plus any other Kaldi argument of the checkpoint's ``data.audio``), then
  per-utterance CMVN ``(x - mean) / (1e-10 + std)`` (unbiased std) over time;
* ``num_layers`` unidirectional GRUs of ``hidden_size``; layer ``i > 0`` adds its input to its
  output when ``residual`` is set;
* VQ-APC: ``G`` groups of Gumbel vector quantisers on the last layer's output (``vq_logits``
  linear -> one-hot of the argmax at inference -> ``codebook_CxE``); only the pretraining
  ``postnet`` reads the quantised codes, so the exposed states are unaffected;
* ``postnet``: linear ``hidden_size -> feat_dim`` (pretraining only, kept so a file round-trips).

Hidden states (``num_layers``; 3 for released models, 10 ms, downsample rate 160): the output of
every GRU layer after its residual, i.e. the inputs of GRU layers 2..N and the output of the
last (for VQ-APC the last is taken *before* quantisation) - what s3prl's hooks return.

Frames: ``1 + (n - 400) // 160`` (Kaldi ``snip_edges``). The GRUs are causal, so padding after an
utterance never reaches its valid frames: batched and single-utterance outputs agree.

Checkpoint: s3prl's ``{'config': {'model': {'paras': {...}}, 'data': {'audio': {...}}}, 'model':
state_dict}`` (keys ``rnn_layers.N.*``, ``postnet.*``, VQ ``vq_layers.G.vq_logits.*``,
``vq_layers.G.codebook_CxE.weight``). Other top-level entries (optimizer, step) are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from .base import Upstream, UpstreamOutput
from .features import (KaldiFrontEnd, as_bool, config_from_options, load_strict, map_keys,
                       register_family_inspector, to_plain, zero_padding)
from .registry import UpstreamSpec, register_upstream


@dataclass
class APCConfig:
    feat_dim: int = 80
    hidden_size: int = 512
    num_layers: int = 3
    residual: bool = True
    #: VQ on the last layer: codebook sizes and code dims per group (empty = plain APC)
    vq_codebook_size: Tuple[int, ...] = ()
    vq_code_dim: Tuple[int, ...] = ()
    vq_gumbel_temperature: float = 0.5
    cmvn: bool = True
    #: extra arguments of torchaudio.compliance.kaldi.fbank (window_type hamming is APC's)
    kaldi_kwargs: Dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if self.num_layers < 1:
            raise ValueError(f"{where}: num_layers must be >= 1, got {self.num_layers}")
        if len(self.vq_codebook_size) != len(self.vq_code_dim):
            raise ValueError(f"{where}: vq codebook_size {list(self.vq_codebook_size)} and code_dim "
                             f"{list(self.vq_code_dim)} must have the same length")
        if self.vq_code_dim and sum(self.vq_code_dim) != self.hidden_size:
            raise ValueError(f"{where}: vq code_dim {list(self.vq_code_dim)} must sum to hidden_size {self.hidden_size}")


class _VQGroup(nn.Module):
    def __init__(self, dim: int, codebook_size: int):
        super().__init__()
        self.logits = nn.Linear(dim, codebook_size)
        self.codebook = nn.Linear(codebook_size, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = self.logits(x).argmax(dim=-1)
        return self.codebook.weight.t()[idx]


class APCUpstream(Upstream):
    """APC / VQ-APC upstream (see module docstring)."""

    downsample_rate = 160

    def __init__(self, cfg: APCConfig, where: str = "apc config"):
        super().__init__()
        cfg.validate(where)
        self.config = cfg
        kwargs = {"window_type": "hamming", **cfg.kaldi_kwargs, "num_mel_bins": cfg.feat_dim}
        self.front_end = KaldiFrontEnd("fbank", kwargs, delta_order=0, cmvn=cfg.cmvn, where=where)
        self.downsample_rate = self.front_end.shift
        sizes = [cfg.feat_dim] + [cfg.hidden_size] * (cfg.num_layers - 1)
        self.layers = nn.ModuleList([nn.GRU(s, cfg.hidden_size, batch_first=True) for s in sizes])
        self.vq = nn.ModuleList([_VQGroup(d, c) for c, d in zip(cfg.vq_codebook_size, cfg.vq_code_dim)])
        self.postnet = nn.Linear(cfg.hidden_size, cfg.feat_dim)
        self.eval()

    @property
    def hidden_sizes(self) -> List[int]:
        return [self.config.hidden_size] * self.config.num_layers

    def quantize(self, h: torch.Tensor) -> torch.Tensor:
        """VQ-APC codes of a last-layer state (argmax of each group, as at inference)."""
        out, offset = [], 0
        for group, dim in zip(self.vq, self.config.vq_code_dim):
            out.append(group(h[..., offset:offset + dim]))
            offset += dim
        return torch.cat(out, dim=-1)

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        self.check_input(wavs, wav_lens)
        wavs = zero_padding(wavs.float(), wav_lens)
        x, lengths = self.front_end(wavs, wav_lens)
        states = []
        for i, gru in enumerate(self.layers):
            y, _ = gru(x)
            if self.config.residual and i > 0:
                y = y + x
            states.append(y)
            x = y
        return UpstreamOutput(hidden_states=states, lengths=lengths.to(wavs.device).long())


# ================================================================================================
# checkpoint import: s3prl APC / VQ-APC files
# ================================================================================================

S3PRL_KEY_MAP: Tuple[Tuple[str, str], ...] = (
    (r"rnn_layers\.(\d+)\.(.+)", r"layers.\1.\2"),
    (r"vq_layers\.(\d+)\.vq_logits\.(weight|bias)", r"vq.\1.logits.\2"),
    (r"vq_layers\.(\d+)\.codebook_CxE\.weight", r"vq.\1.codebook.weight"),
)

_AUDIO_OWN_KEYS = ("feat_type", "feat_dim", "decode_wav", "cmvn")


def detect(obj: Any) -> bool:
    """True for s3prl's APC / VQ-APC ``{'config', 'model'}`` file."""
    if not (isinstance(obj, Mapping) and "config" in obj and "model" in obj):
        return False
    cfg = to_plain(obj["config"])
    return (isinstance(cfg, dict) and isinstance(cfg.get("model"), dict) and "paras" in cfg["model"]
            and isinstance(cfg.get("data"), dict) and "audio" in cfg["data"])


def config_from_s3prl(cfg: Mapping[str, Any], where: str) -> APCConfig:
    paras = dict(cfg["model"]["paras"] or {})
    audio = dict(cfg["data"]["audio"] or {})
    for key in ("hidden_size", "num_layers", "residual"):
        if key not in paras:
            raise ValueError(f"{where}: config.model.paras.{key} is missing")
    unknown = sorted(set(paras) - {"hidden_size", "num_layers", "dropout", "residual", "vq"})
    if unknown:
        raise ValueError(f"{where}: config.model.paras has unknown key(s) {unknown}")
    if audio.get("feat_type", "fbank") != "fbank":
        raise ValueError(f"{where}: data.audio.feat_type {audio.get('feat_type')!r} is not supported (only 'fbank')")
    if "feat_dim" not in audio:
        raise ValueError(f"{where}: config.data.audio.feat_dim is missing")
    fixed = sorted(k for k in ("window_type", "num_mel_bins", "sample_frequency") if k in audio)
    if fixed:
        raise ValueError(f"{where}: data.audio sets {fixed}, which APC fixes itself (Hamming window, "
                         "feat_dim mel bins, 16 kHz); s3prl rejects such a file too")
    vq = paras.get("vq") or None
    sizes, dims, temp = (), (), 0.5
    if vq is not None:
        for key in ("codebook_size", "code_dim", "gumbel_temperature"):
            if key not in vq:
                raise ValueError(f"{where}: config.model.paras.vq.{key} is missing")
        sizes, dims = tuple(int(v) for v in vq["codebook_size"]), tuple(int(v) for v in vq["code_dim"])
        temp = float(vq["gumbel_temperature"])
    return APCConfig(
        feat_dim=int(audio["feat_dim"]), hidden_size=int(paras["hidden_size"]), num_layers=int(paras["num_layers"]),
        residual=as_bool(paras["residual"], "model.paras.residual", where), vq_codebook_size=sizes,
        vq_code_dim=dims, vq_gumbel_temperature=temp,
        cmvn=as_bool(audio.get("cmvn", True), "data.audio.cmvn", where),
        kaldi_kwargs={k: v for k, v in audio.items() if k not in _AUDIO_OWN_KEYS})


def load_s3prl(path: Path, obj: Mapping[str, Any], **options) -> APCUpstream:
    cfg = config_from_s3prl(to_plain(obj["config"]), str(path))
    cfg = config_from_options(APCConfig, cfg, options, str(path))
    model = APCUpstream(cfg, str(path))
    state = obj["model"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: 'model' is not a state dict ({type(state).__name__})")
    load_strict(model, map_keys(state, S3PRL_KEY_MAP), path)
    model.eval()
    return model


def describe(obj: Any) -> Dict[str, Any]:
    cfg = config_from_s3prl(to_plain(obj["config"]), "checkpoint")
    return {
        "family": "apc",
        "format": "s3prl APC {'config', 'model'}",
        "upstreams": ["vq_apc"] if cfg.vq_code_dim else ["apc"],
        "num_hidden_states": cfg.num_layers,
        "hidden_size": cfg.hidden_size,
        "vq": {"codebook_size": list(cfg.vq_codebook_size), "code_dim": list(cfg.vq_code_dim)} if cfg.vq_code_dim else None,
        "feat_dim": cfg.feat_dim,
    }


FORMATS = ("s3prl .ckpt {'config': {'model': {'paras'}, 'data': {'audio'}}, 'model': state_dict}",)


def _factory(vq: bool):
    def factory(ckpt: Optional[Path] = None, **options) -> APCUpstream:
        if ckpt is None:
            base = APCConfig(vq_codebook_size=(512,), vq_code_dim=(512,)) if vq else APCConfig()
            return APCUpstream(config_from_options(APCConfig, base, options, "random-init"))
        from .checkpoint_io import safe_load

        path = Path(ckpt)
        obj = safe_load(path)
        if not detect(obj):
            keys = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
            raise ValueError(f"{path}: not an s3prl APC/VQ-APC checkpoint (expected 'config' with "
                             f"model.paras and data.audio, and 'model'; found {keys})")
        return load_s3prl(path, obj, **options)

    return factory


register_family_inspector(detect, describe, FORMATS)

register_upstream(UpstreamSpec(
    name="apc", factory=_factory(False),
    description="APC: 3-layer residual GRU (512) over Kaldi fbank 80 + CMVN",
    downsample_rate=160, layers="N", formats=FORMATS, family="apc"))
register_upstream(UpstreamSpec(
    name="vq_apc", factory=_factory(True),
    description="VQ-APC: APC with a Gumbel VQ layer on the last GRU (states taken before quantisation)",
    downsample_rate=160, layers="N", formats=FORMATS,
    family="apc"))
