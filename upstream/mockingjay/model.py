"""Mockingjay and TERA: a BERT-style transformer encoder over acoustic features.

Architecture (Liu et al. 2020 "Mockingjay", Liu et al. 2021 "TERA"; hyper-parameter and weight
names as in s3prl's ``upstream/mockingjay`` - facts only, the code here is our own):

* a front end, one of the two found in released checkpoints
  (:class:`~superb.upstream.frontends.OnlineFrontEnd`: -25 dB RMS normalisation, centred STFT,
  80 log-mel, per-utterance CMVN; or :class:`~superb.upstream.frontends.KaldiFrontEnd`: Kaldi
  fbank + deltas + CMVN);
* input representation: ``LayerNorm(Linear(features) + sinusoidal position table)`` where the
  table is ``sin/cos(pos / 10000^(2 (i // 2) / H))`` (even / odd dimensions);
* ``L`` transformer layers, post-LN (``LN(x + Attn(x))``, ``LN(a + FFN(a))``) or pre-LN
  (``x + Attn(LN(x))``, ``a + FFN(LN(a))``), ``gelu`` (erf), ``relu`` or ``swish``; optionally
  one layer shared by all positions of the stack (``share_layer``, the AALBERT variant);
* pre-LN models carry ``L + 1`` extra LayerNorms, one per exposed hidden state.

Hidden states (``L + 1``, 10 ms hop, downsample rate 160): the input representation, then the
output of every layer; pre-LN models expose ``LN_i`` of each layer input and ``LN_L`` of the
last output (what s3prl returns).

Frames: online front end ``n // 160 + 1`` (centred STFT); Kaldi front end ``1 + (n - 400) // 160``
(``snip_edges``).

Long inputs: when an utterance has more frames than the checkpoint's ``task.sequence_length``
(1,500 frames = 15 s for released models; 0 disables the limit), it is cut the way s3prl does,
``torch.chunk(x, ceil(T / sequence_length))`` along time - chunks of ``ceil(T / n_chunks)``
frames - and every chunk is encoded independently (positions restart at 0, no attention across
chunks); the chunk outputs are concatenated. s3prl chunks the padded batch, so its chunk
boundaries for a short utterance depend on the longest one in the batch; here ``T`` is the
utterance's own frame count, which makes the result batch-independent and equal to s3prl's for
the utterance processed alone.

Batching: s3prl's online front end computes the STFT and the CMVN frame count
(``round(len * frames / padded_len)``) on the padded batch; we compute every utterance on its own
(exact frame counts, no dependence on the batch). For the longest utterance of a batch, and for any
utterance processed alone, the two agree.

Checkpoint (:mod:`.import_s3prl`): s3prl's native ``.ckpt``: ``{'Transformer': state_dict, 'SpecHead': ...,
'Upstream_Config' (or legacy 'Config'): {'transformer': ..., 'task': {'sequence_length'},
'audio': ...}, 'Args', 'Optimizer', 'Step', ...}``. Runner entries are never used (and load as
inert stand-ins); LayerNorm ``gamma``/``beta`` of old files are renamed ``weight``/``bias``; the
pre-LN aliases ``encoder.layer.N.attention.LayerNorm`` / ``encoder.layer.N.LayerNorm`` (the same
tensors as ``...attention.output.LayerNorm`` / ``...output.LayerNorm``) are dropped; ``SpecHead``
(the reconstruction head of pretraining) is not used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Upstream, UpstreamOutput, valid_mask
from ..frontends import KaldiFrontEnd, OnlineFrontEnd, kaldi_window_shift, ms_to_samples
from ..masking import forward_in_groups, pad_list, zero_padding

#: default ``group_padding`` of the transformer upstreams (see superb.upstream.wav2vec2.model)
GROUP_PADDING = 0.1

_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "relu": F.relu,
    "swish": lambda x: x * torch.sigmoid(x),
}


@dataclass
class MockingjayConfig:
    """Architecture and front end. Defaults: TERA base (3 layers); ``mockingjay`` random-init
    uses 12 layers (the 85M-parameter model of the SUPERB paper)."""

    hidden_size: int = 768
    num_layers: int = 3
    num_heads: int = 12
    intermediate_size: int = 3072
    activation: str = "gelu"
    layer_norm_eps: float = 1e-12
    pre_layer_norm: bool = False
    share_layer: bool = False
    #: frames per independently encoded chunk (0 = no limit); s3prl's task.sequence_length
    sequence_length: int = 1500
    #: "online" (s3prl OnlinePreprocessor) or "kaldi" (torchaudio.compliance.kaldi)
    front_end: str = "online"
    # -- online front end
    feat_type: str = "mel"
    target_level: float = -25.0
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_freq: int = 201
    n_mels: int = 80
    log: bool = True
    delta: int = 0
    cmvn: bool = True
    # -- kaldi front end
    kaldi_feat_type: str = "fbank"
    kaldi_kwargs: Dict[str, Any] = field(default_factory=lambda: {
        "frame_length": 25.0, "frame_shift": 10.0, "num_mel_bins": 80, "use_log_fbank": True})
    kaldi_delta_order: int = 2
    kaldi_delta_win_length: int = 5
    kaldi_cmvn: bool = True

    def validate(self, where: str) -> None:
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"{where}: hidden_act {self.activation!r} is not one of {sorted(_ACTIVATIONS)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"{where}: hidden_size {self.hidden_size} is not a multiple of "
                             f"num_attention_heads {self.num_heads}")
        if self.front_end not in ("online", "kaldi"):
            raise ValueError(f"{where}: front_end must be 'online' or 'kaldi', got {self.front_end!r}")
        if self.num_layers < 1:
            raise ValueError(f"{where}: num_hidden_layers must be >= 1, got {self.num_layers}")
        if self.sequence_length < 0:
            raise ValueError(f"{where}: sequence_length must be >= 0, got {self.sequence_length}")


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """``[length, dim]`` table ``pos / 10000^(2 (i // 2) / dim)``, sin on even, cos on odd
    dimensions (computed in float64, returned as float32)."""
    pos = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    idx = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * torch.div(idx, 2, rounding_mode="floor") / dim)
    table = torch.empty_like(angle)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.float()


class _Layer(nn.Module):
    def __init__(self, cfg: MockingjayConfig):
        super().__init__()
        h = cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.pre_ln = cfg.pre_layer_norm
        self.act = _ACTIVATIONS[cfg.activation]
        self.q = nn.Linear(h, h)
        self.k = nn.Linear(h, h)
        self.v = nn.Linear(h, h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(h, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, h)
        self.ffn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)

    def _attention(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        B, T, H = x.shape
        nh = self.num_heads

        def heads(t):
            return t.view(B, T, nh, H // nh).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        # softmax(q k^T / sqrt(d) + mask) v in one fused kernel; keep is the boolean key mask
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :], dropout_p=0.0,
                                             scale=1.0 / math.sqrt(H // nh))
        return self.attn_out(ctx.transpose(1, 2).reshape(B, T, H))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if self.pre_ln:
            a = x + self._attention(self.attn_norm(x), keep)
            return a + self.ffn_out(self.act(self.ffn_in(self.ffn_norm(a))))
        a = self.attn_norm(x + self._attention(x, keep))
        return self.ffn_norm(a + self.ffn_out(self.act(self.ffn_in(a))))


def build_front_end(cfg: MockingjayConfig, where: str) -> nn.Module:
    if cfg.front_end == "online":
        return OnlineFrontEnd(feat_type=cfg.feat_type, target_level=cfg.target_level, win_ms=cfg.win_ms,
                              hop_ms=cfg.hop_ms, n_freq=cfg.n_freq, n_mels=cfg.n_mels, log=cfg.log,
                              delta=cfg.delta, cmvn=cfg.cmvn, where=where)
    return KaldiFrontEnd(feat_type=cfg.kaldi_feat_type, kaldi_kwargs=cfg.kaldi_kwargs,
                         delta_order=cfg.kaldi_delta_order, delta_win_length=cfg.kaldi_delta_win_length,
                         cmvn=cfg.kaldi_cmvn, where=where)


class MockingjayUpstream(Upstream):
    """Mockingjay / TERA upstream (see module docstring)."""

    @classmethod
    def rate_for(cls, config: Optional[MockingjayConfig] = None) -> int:
        """The front end's hop: ``hop_ms`` (online) or the Kaldi frame shift (160 = 10 ms by default)."""
        cfg = config or MockingjayConfig()
        if cfg.front_end == "online":
            return ms_to_samples(cfg.hop_ms)
        return kaldi_window_shift(cfg.kaldi_feat_type, cfg.kaldi_kwargs)[1]

    def __init__(self, cfg: MockingjayConfig, where: str = "mockingjay config"):
        super().__init__()
        cfg.validate(where)
        self.config = cfg
        self.front_end = build_front_end(cfg, where)
        hop = getattr(self.front_end, "hop", None) or getattr(self.front_end, "shift")
        self.downsample_rate = int(hop)  # = rate_for(cfg)
        h = cfg.hidden_size
        self.input_proj = nn.Linear(self.front_end.output_dim, h)
        self.input_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        if cfg.share_layer:
            shared = _Layer(cfg)
            self.layers = nn.ModuleList([shared for _ in range(cfg.num_layers)])
        else:
            self.layers = nn.ModuleList([_Layer(cfg) for _ in range(cfg.num_layers)])
        if cfg.pre_layer_norm:
            self.layer_norms = nn.ModuleList(
                [nn.LayerNorm(h, eps=cfg.layer_norm_eps) for _ in range(cfg.num_layers + 1)])
        else:
            self.layer_norms = None
        self._init_weights()
        #: padding a length group may carry (fraction of its audio); None: the batch as given
        self.group_padding: Optional[float] = GROUP_PADDING
        self.eval()

    def _init_weights(self) -> None:
        # the published initialisation: N(0, 0.02) linear weights, zero biases, unit LayerNorms
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    @property
    def hidden_sizes(self) -> List[int]:
        return [self.config.hidden_size] * (self.config.num_layers + 1)

    # -- chunking --------------------------------------------------------------------------------
    def _segments(self, lengths: List[int]) -> List[Tuple[int, int, int]]:
        """``(utterance, start, end)`` of every independently encoded chunk."""
        limit = self.config.sequence_length
        segs = []
        for b, n in enumerate(lengths):
            if limit > 0 and n > limit:
                size = math.ceil(n / math.ceil(n / limit))
                segs.extend((b, s, min(s + size, n)) for s in range(0, n, size))
            else:
                segs.append((b, 0, n))
        return segs

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor) -> List[torch.Tensor]:
        """All ``L + 1`` hidden states of already extracted features ``[B, T, D]``."""
        lens = lengths.tolist()
        segs = self._segments(lens)
        chunked = len(segs) != len(lens)
        if chunked:
            x = pad_list([feats[b, s:e] for b, s, e in segs])
            seg_lens = torch.tensor([e - s for _, s, e in segs], device=feats.device)
        else:
            x, seg_lens = feats, lengths.to(feats.device)
        T = x.shape[1]
        keep = valid_mask(seg_lens, T)
        pos = sinusoid_table(T, self.config.hidden_size).to(x.device, x.dtype)
        h = self.input_norm(self.input_proj(x) + pos)
        states = []
        for i, layer in enumerate(self.layers):
            states.append(self.layer_norms[i](h) if self.layer_norms is not None else h)
            h = layer(h, keep)
        states.append(self.layer_norms[-1](h) if self.layer_norms is not None else h)
        if not chunked:
            return states
        out = []
        for s in states:
            full = s.new_zeros(feats.shape[0], feats.shape[1], s.shape[-1])
            for i, (b, start, end) in enumerate(segs):
                full[b, start:end] = s[i, : end - start]
            out.append(full)
        return out

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        """All hidden states; a padded batch is computed as length groups
        (:func:`~superb.upstream.masking.forward_in_groups`, ``self.group_padding``): every
        utterance is encoded as it is alone (see "Batching" above), so this changes no value."""
        self.check_input(wavs, wav_lens)
        return forward_in_groups(self._forward, wavs, wav_lens.to(wavs.device).long(), self.group_padding)

    def _forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        wavs = zero_padding(wavs.float(), wav_lens)
        feats, lengths = self.front_end(wavs, wav_lens)
        states = self.encode(feats, lengths)
        return UpstreamOutput(hidden_states=states, lengths=lengths.to(wavs.device).long())
