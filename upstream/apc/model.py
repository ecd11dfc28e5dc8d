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

Checkpoint (:mod:`.import_s3prl`): s3prl's ``{'config': {'model': {'paras': {...}}, 'data': {'audio': {...}}}, 'model':
state_dict}`` (keys ``rnn_layers.N.*``, ``postnet.*``, VQ ``vq_layers.G.vq_logits.*``,
``vq_layers.G.codebook_CxE.weight``). Other top-level entries (optimizer, step) are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..base import Upstream, UpstreamOutput
from ..frontends import KaldiFrontEnd, kaldi_window_shift
from ..masking import zero_padding


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


def _kaldi_kwargs(cfg: APCConfig) -> Dict[str, Any]:
    return {"window_type": "hamming", **cfg.kaldi_kwargs, "num_mel_bins": cfg.feat_dim}


class APCUpstream(Upstream):
    """APC / VQ-APC upstream (see module docstring)."""

    @classmethod
    def rate_for(cls, config: Optional[APCConfig] = None) -> int:
        """The Kaldi frame shift of ``config`` (160 samples = 10 ms by default)."""
        return kaldi_window_shift("fbank", _kaldi_kwargs(config or APCConfig()))[1]

    def __init__(self, cfg: APCConfig, where: str = "apc config"):
        super().__init__()
        cfg.validate(where)
        self.config = cfg
        self.front_end = KaldiFrontEnd("fbank", _kaldi_kwargs(cfg), delta_order=0, cmvn=cfg.cmvn, where=where)
        self.downsample_rate = self.front_end.shift  # = rate_for(cfg)
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
