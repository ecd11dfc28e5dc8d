"""Mockingjay and TERA: a BERT-style transformer encoder over acoustic features.

Architecture (Liu et al. 2020 "Mockingjay", Liu et al. 2021 "TERA"; hyper-parameter and weight
names as in s3prl's ``upstream/mockingjay`` - facts only, the code here is our own):

* a front end, one of the two found in released checkpoints
  (:class:`~superb.upstream.features.OnlineFrontEnd`: -25 dB RMS normalisation, centred STFT,
  80 log-mel, per-utterance CMVN; or :class:`~superb.upstream.features.KaldiFrontEnd`: Kaldi
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

Checkpoint: s3prl's native ``.ckpt``: ``{'Transformer': state_dict, 'SpecHead': ...,
'Upstream_Config' (or legacy 'Config'): {'transformer': ..., 'task': {'sequence_length'},
'audio': ...}, 'Args', 'Optimizer', 'Step', ...}``. Runner entries are never used (and load as
inert stand-ins); LayerNorm ``gamma``/``beta`` of old files are renamed ``weight``/``bias``; the
pre-LN aliases ``encoder.layer.N.attention.LayerNorm`` / ``encoder.layer.N.LayerNorm`` (the same
tensors as ``...attention.output.LayerNorm`` / ``...output.LayerNorm``) are dropped; ``SpecHead``
(the reconstruction head of pretraining) is not used.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import Upstream, UpstreamOutput
from .features import (
    KaldiFrontEnd,
    OnlineFrontEnd,
    as_bool,
    config_from_options,
    load_strict,
    map_keys,
    pad_list,
    register_family_inspector,
    to_plain,
    zero_padding,
)
from .registry import UpstreamSpec, register_upstream

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
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(H // nh)
        scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
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

    def __init__(self, cfg: MockingjayConfig, where: str = "mockingjay config"):
        super().__init__()
        cfg.validate(where)
        self.config = cfg
        self.front_end = build_front_end(cfg, where)
        hop = getattr(self.front_end, "hop", None) or getattr(self.front_end, "shift")
        self.downsample_rate = int(hop)
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
        keep = torch.arange(T, device=x.device)[None, :] < seg_lens[:, None]
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
        self.check_input(wavs, wav_lens)
        wavs = zero_padding(wavs.float(), wav_lens)
        feats, lengths = self.front_end(wavs, wav_lens)
        states = self.encode(feats, lengths)
        return UpstreamOutput(hidden_states=states, lengths=lengths.to(wavs.device).long())


# ================================================================================================
# checkpoint import: s3prl native Mockingjay / TERA files
# ================================================================================================

#: s3prl weight name -> ours (applied after the gamma/beta rename)
S3PRL_KEY_MAP: Tuple[Tuple[str, str], ...] = (
    (r"input_representations\.spec_transform\.(weight|bias)", r"input_proj.\1"),
    (r"input_representations\.LayerNorm\.(weight|bias)", r"input_norm.\1"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.query\.(weight|bias)", r"layers.\1.q.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.key\.(weight|bias)", r"layers.\1.k.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.value\.(weight|bias)", r"layers.\1.v.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"layers.\1.attn_out.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(weight|bias)", r"layers.\1.attn_norm.\2"),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)", r"layers.\1.ffn_in.\2"),
    (r"encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"layers.\1.ffn_out.\2"),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.(weight|bias)", r"layers.\1.ffn_norm.\2"),
    (r"encoder\.LayerNorm\.(\d+)\.(weight|bias)", r"layer_norms.\1.\2"),
)

#: pre-LN aliases in s3prl state dicts -> the name of the tensor they duplicate
S3PRL_ALIASES: Tuple[Tuple[str, str], ...] = (
    (r"encoder\.layer\.(\d+)\.attention\.LayerNorm\.(weight|bias)", r"encoder.layer.\1.attention.output.LayerNorm.\2"),
    (r"encoder\.layer\.(\d+)\.LayerNorm\.(weight|bias)", r"encoder.layer.\1.output.LayerNorm.\2"),
)

#: top-level entries of a native file that are not the upstream's (runner state, heads)
RUNNER_ENTRIES = ("SpecHead", "Args", "Optimizer", "Step", "Runner", "Config", "Scheduler", "amp",
                  "Global_step", "Epoch")


def _upstream_config(obj: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    for key in ("Upstream_Config", "Config"):
        cfg = to_plain(obj.get(key)) if key in obj else None
        if isinstance(cfg, dict) and "transformer" in cfg:
            return cfg
    return None


def detect(obj: Any) -> bool:
    """True for an s3prl native Mockingjay / TERA checkpoint."""
    return isinstance(obj, Mapping) and "Transformer" in obj and _upstream_config(obj) is not None


def config_from_s3prl(cfg: Mapping[str, Any], where: str) -> MockingjayConfig:
    """Translate s3prl's ``{'transformer', 'task', 'audio'}`` config (defaults as s3prl's)."""
    tr = cfg.get("transformer")
    if not isinstance(tr, Mapping):
        raise ValueError(f"{where}: 'transformer' section is missing or not a mapping")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act"):
        if key not in tr:
            raise ValueError(f"{where}: transformer.{key} is missing")
    task = cfg.get("task") or {}
    if "sequence_length" not in task:
        raise ValueError(f"{where}: task.sequence_length is missing")
    out = MockingjayConfig(
        hidden_size=int(tr["hidden_size"]),
        num_layers=int(tr["num_hidden_layers"]),
        num_heads=int(tr["num_attention_heads"]),
        intermediate_size=int(tr["intermediate_size"]),
        activation=str(tr["hidden_act"]),
        layer_norm_eps=float(tr.get("layer_norm_eps", 1e-12)),
        pre_layer_norm=as_bool(tr.get("pre_layer_norm", False), "transformer.pre_layer_norm", where),
        share_layer=as_bool(tr.get("share_layer", False), "transformer.share_layer", where),
        sequence_length=int(task["sequence_length"]),
    )
    audio = cfg.get("audio")
    if not isinstance(audio, Mapping):
        raise ValueError(
            f"{where}: no 'audio' section: this checkpoint was trained on precomputed features and has no "
            "built-in front end, so it cannot run on waveforms (s3prl's expert refuses it too)")
    if "kaldi" in audio:
        kal = audio["kaldi"] or {}
        feat_type = str(kal.get("feat_type", "fbank"))
        if feat_type not in kal:
            raise ValueError(f"{where}: audio.kaldi.{feat_type} (the arguments of the Kaldi {feat_type}) is missing")
        delta = audio.get("delta") or {}
        unknown = sorted(set(delta) - {"order", "win_length", "mode"})
        if unknown:
            raise ValueError(f"{where}: audio.delta has unknown key(s) {unknown}")
        if delta.get("mode", "replicate") != "replicate":
            raise ValueError(f"{where}: audio.delta.mode {delta['mode']!r} is not supported (only 'replicate')")
        cmvn = audio.get("cmvn")
        if not isinstance(cmvn, Mapping) or "use_cmvn" not in cmvn:
            raise ValueError(f"{where}: audio.cmvn.use_cmvn is missing")
        return dataclasses.replace(
            out, front_end="kaldi", kaldi_feat_type=feat_type, kaldi_kwargs=dict(kal[feat_type] or {}),
            kaldi_delta_order=int(delta.get("order", 2)), kaldi_delta_win_length=int(delta.get("win_length", 5)),
            kaldi_cmvn=as_bool(cmvn["use_cmvn"], "audio.cmvn.use_cmvn", where))
    if "target_level" not in audio:
        raise ValueError(f"{where}: audio.target_level is missing")
    if int(audio.get("sample_rate", 16000)) != 16000:
        raise ValueError(f"{where}: audio.sample_rate {audio['sample_rate']} is not 16000")
    inp = audio.get("input")
    if not isinstance(inp, Mapping) or "feat_type" not in inp:
        raise ValueError(f"{where}: audio.input.feat_type is missing")
    if int(inp.get("channel", 0)) != 0:
        raise ValueError(f"{where}: audio.input.channel {inp['channel']} is not supported (mono input)")
    return dataclasses.replace(
        out, front_end="online", feat_type=str(inp["feat_type"]), target_level=float(audio["target_level"]),
        win_ms=float(audio.get("win_ms", 25)), hop_ms=float(audio.get("hop_ms", 10)),
        n_freq=int(audio.get("n_freq", 201)), n_mels=int(audio.get("n_mels", 40)),
        log=as_bool(inp.get("log", False), "audio.input.log", where), delta=int(inp.get("delta", 0)),
        cmvn=as_bool(inp.get("cmvn", False), "audio.input.cmvn", where))


def convert_s3prl_state(state: Mapping[str, torch.Tensor], path) -> Dict[str, torch.Tensor]:
    """s3prl ``Transformer`` state dict -> ours (gamma/beta rename, aliases checked and dropped)."""
    renamed: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key.replace("gamma", "weight") if "gamma" in key else key
        new = new.replace("beta", "bias") if "beta" in new else new
        renamed[new] = value
    aliases = [(re.compile(p), r) for p, r in S3PRL_ALIASES]
    out: Dict[str, torch.Tensor] = {}
    for key, value in renamed.items():
        original = next((pat.sub(r, key) for pat, r in aliases if pat.fullmatch(key)), None)
        if original is not None:
            if original in renamed and not torch.equal(renamed[original], value):
                raise ValueError(f"{path}: {key} should duplicate {original} (pre-LN alias) but differs")
            if original in renamed:
                continue
            key = original  # only the alias was stored: use it as the original
        out[key] = value
    return map_keys(out, S3PRL_KEY_MAP)


def load_s3prl_native(path: Path, obj: Mapping[str, Any], **options) -> MockingjayUpstream:
    where = f"{path}"
    cfg_dict = _upstream_config(obj)
    if cfg_dict is None:
        raise ValueError(f"{path}: neither 'Upstream_Config' nor 'Config' holds a 'transformer' section")
    cfg = config_from_s3prl(cfg_dict, where)
    cfg = config_from_options(MockingjayConfig, cfg, options, f"{path}")
    model = MockingjayUpstream(cfg, where)
    state = obj["Transformer"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: 'Transformer' is not a state dict ({type(state).__name__})")
    load_strict(model, convert_s3prl_state(state, path), path)
    model.eval()
    return model


def describe(obj: Any) -> Dict[str, Any]:
    """Summary of a native checkpoint for ``superb inspect``."""
    cfg_dict = _upstream_config(obj) or {}
    cfg = config_from_s3prl(cfg_dict, "checkpoint")
    task = cfg_dict.get("task") or {}
    tera = any(str(k).startswith(("mask_freq", "noise_")) for k in task)  # TERA's alterations
    return {
        "family": "mockingjay",
        "format": "s3prl native Mockingjay/TERA (.ckpt)",
        "upstreams": ["tera", "mockingjay"] if tera else ["mockingjay", "tera"],
        "config_entry": "Upstream_Config" if "transformer" in (to_plain(obj.get("Upstream_Config")) or {}) else "Config",
        "num_hidden_states": cfg.num_layers + 1,
        "hidden_size": cfg.hidden_size,
        "pre_layer_norm": cfg.pre_layer_norm,
        "front_end": cfg.front_end if cfg.front_end == "kaldi" else f"online {cfg.feat_type}",
        "sequence_length": cfg.sequence_length,
        "ignored_entries": sorted(k for k in obj if k not in ("Transformer", "Upstream_Config", "Config")),
    }


# ================================================================================================
# registration
# ================================================================================================

FORMATS = ("s3prl native .ckpt {'Transformer', 'Upstream_Config' or legacy 'Config', ...}",)


def _factory(default_layers: int):
    def factory(ckpt: Optional[Path] = None, **options) -> MockingjayUpstream:
        if ckpt is None:
            base = MockingjayConfig(num_layers=default_layers)
            return MockingjayUpstream(config_from_options(MockingjayConfig, base, options, "random-init"))
        from .checkpoint_io import safe_load

        path = Path(ckpt)
        obj = safe_load(path)
        if not detect(obj):
            keys = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
            raise ValueError(
                f"{path}: not an s3prl Mockingjay/TERA checkpoint (expected 'Transformer' and "
                f"'Upstream_Config' or 'Config' with a 'transformer' section; found {keys})")
        return load_s3prl_native(path, obj, **options)

    return factory


register_family_inspector(detect, describe, FORMATS)

register_upstream(UpstreamSpec(
    name="mockingjay", factory=_factory(12),
    description="Mockingjay: BERT-style transformer over log-mel (random init: 12 layers, 768-d, post-LN)",
    downsample_rate=160, layers="L+1", formats=FORMATS,
    family="mockingjay"))
register_upstream(UpstreamSpec(
    name="tera", factory=_factory(3),
    description="TERA: transformer encoder over log-mel, time/freq/magnitude alteration (random init: 3 layers)",
    downsample_rate=160, layers="L+1", formats=FORMATS,
    family="mockingjay"))
