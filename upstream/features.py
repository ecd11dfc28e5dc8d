"""Shared pieces of the acoustic-feature upstreams (Mockingjay/TERA, APC/VQ-APC, CPC, wav2vec,
BEST-RQ): front ends, masked normalisations, frame-count rules and config helpers.

Everything here works on *padded batches with exact lengths* and is batch-invariant: the valid
frames of an utterance never depend on what else is in the batch or on the values of the padding.
Where a reference implementation computes something over the padded batch (a normalisation over
time that includes padding, a convolution that reads the batch's padding, an STFT of the padded
batch), we compute what that reference computes for the utterance *on its own*; the tests compare
against the references run one utterance at a time.

Front ends
----------
* :class:`KaldiFrontEnd` - ``torchaudio.compliance.kaldi`` fbank (or mfcc / spectrogram) per
  utterance, optional deltas (``torchaudio.functional.compute_deltas``) and per-utterance CMVN
  ``(x - mean) / (eps + std)`` with the *unbiased* standard deviation (s3prl's convention for
  APC, VQ-APC and the fbank variants of Mockingjay/TERA). Frames: Kaldi's ``snip_edges`` rule
  ``1 + (n - window) // shift`` (0 when ``n < window``), or ``(n + shift // 2) // shift`` with
  ``snip_edges=False``.
* :class:`OnlineFrontEnd` - s3prl's on-the-fly log-mel / log-linear front end used by
  Mockingjay and TERA: the waveform is scaled to ``target_level`` dB RMS (-25 dB), then a
  centred STFT (Hann window of ``win_ms``, hop ``hop_ms``, ``n_fft = 2 (n_freq - 1)``, reflect
  padding), power spectrum, optional HTK mel filterbank (no filter normalisation,
  0-8 kHz), ``log(x + 1e-10)``, deltas and per-utterance CMVN over the utterance's frames
  (unbiased std, ``eps`` added to the std). Frames: ``n // hop + 1`` (centred STFT).
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from .base import SAMPLE_RATE

# ----------------------------------------------------------------------------------------------
# small tensor helpers
# ----------------------------------------------------------------------------------------------


def valid_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean ``[B, T]`` mask, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def zero_padding(x: torch.Tensor, lengths: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
    """Set every position at or beyond ``lengths[b]`` along ``time_dim`` to zero."""
    mask = valid_mask(lengths.to(x.device), x.shape[time_dim])  # [B, T]
    shape = [1] * x.dim()
    shape[0] = x.shape[0]
    shape[time_dim] = x.shape[time_dim]
    return x * mask.view(shape).to(x.dtype)


def masked_group_norm(x: torch.Tensor, lengths: torch.Tensor, num_groups: int,
                      weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                      eps: float) -> torch.Tensor:
    """``GroupNorm`` of ``x [B, C, T]`` whose statistics use only the valid frames of each
    utterance (what ``F.group_norm`` gives for the utterance alone). Computed in float32;
    the biased variance, as ``nn.GroupNorm``."""
    B, C, T = x.shape
    dtype = x.dtype
    xf = x.float()
    mask = valid_mask(lengths.to(x.device), T).float()  # [B, T]
    g = xf.view(B, num_groups, C // num_groups, T)
    m = mask.view(B, 1, 1, T)
    count = (mask.sum(dim=1) * (C // num_groups)).clamp(min=1).view(B, 1, 1, 1)
    mean = (g * m).sum(dim=(2, 3), keepdim=True) / count
    var = (((g - mean) * m) ** 2).sum(dim=(2, 3), keepdim=True) / count
    out = ((g - mean) / torch.sqrt(var + eps)).view(B, C, T)
    if weight is not None:
        out = out * weight.float().view(1, C, 1)
    if bias is not None:
        out = out + bias.float().view(1, C, 1)
    return out.to(dtype)


def cmvn_unbiased(feats: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Per-utterance CMVN of ``[T, D]`` features: ``(x - mean) / (eps + std)``, unbiased std
    (s3prl's APC / Mockingjay convention)."""
    return (feats - feats.mean(dim=0, keepdim=True)) / (eps + feats.std(dim=0, keepdim=True))


def pad_list(feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Right-pad a list of ``[T_i, D]`` tensors with zeros to ``[B, max T, D]``."""
    return torch.nn.utils.rnn.pad_sequence(list(feats), batch_first=True)


def repeat_frames(feats: torch.Tensor, lengths: torch.Tensor, factor: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Repeat every frame ``factor`` times along time: ``[B, T, D] -> [B, T * factor, D]``.

    Frame-level tasks whose labels come at a finer rate than the upstream (BEST-RQ emits one
    frame per 40 ms, frame labels are often at 10 or 20 ms) can bring the features to the label
    rate this way: ``factor = upstream_rate // label_rate``; lengths are multiplied likewise
    (trim or pad the last frames to the label count afterwards).
    """
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"repeat_frames needs a positive integer factor, got {factor!r}")
    factor = int(factor)
    if factor == 1:
        return feats, lengths
    return feats.repeat_interleave(factor, dim=1), lengths * factor


# ----------------------------------------------------------------------------------------------
# frame-count rules
# ----------------------------------------------------------------------------------------------


def kaldi_frame_lengths(wav_lens: torch.Tensor, window: int = 400, shift: int = 160,
                        snip_edges: bool = True) -> torch.Tensor:
    """Frames of Kaldi framing: with ``snip_edges`` ``1 + (n - window) // shift`` (0 when
    ``n < window``), otherwise ``(n + shift // 2) // shift``."""
    n = wav_lens.long()
    if snip_edges:
        return torch.where(n >= window, torch.div(n - window, shift, rounding_mode="floor") + 1,
                           torch.zeros_like(n))
    return torch.div(n + shift // 2, shift, rounding_mode="floor")


def centered_stft_frame_lengths(wav_lens: torch.Tensor, hop: int) -> torch.Tensor:
    """Frames of a centred STFT (``torch.stft(center=True)``, librosa): ``n // hop + 1``."""
    return torch.div(wav_lens.long(), hop, rounding_mode="floor") + 1


# ----------------------------------------------------------------------------------------------
# front ends
# ----------------------------------------------------------------------------------------------

_KALDI_FUNCTIONS = ("fbank", "mfcc", "spectrogram")


class KaldiFrontEnd(nn.Module):
    """Kaldi-compatible features per utterance -> deltas -> CMVN (see module docstring).

    ``kaldi_kwargs`` go to ``torchaudio.compliance.kaldi.<feat_type>`` unchanged; an argument that
    function does not take is an error naming it (``where`` tells which config it came from).
    """

    def __init__(self, feat_type: str = "fbank", kaldi_kwargs: Optional[Mapping[str, Any]] = None,
                 delta_order: int = 0, delta_win_length: int = 5, cmvn: bool = True,
                 cmvn_eps: float = 1e-10, where: str = "front end"):
        super().__init__()
        import torchaudio.compliance.kaldi as kaldi

        if feat_type not in _KALDI_FUNCTIONS:
            raise ValueError(f"{where}: feat_type {feat_type!r} is not one of {_KALDI_FUNCTIONS}")
        self.feat_type = feat_type
        self._fn = getattr(kaldi, feat_type)
        kwargs = dict(kaldi_kwargs or {})
        kwargs.pop("sample_frequency", None)
        allowed = set(inspect.signature(self._fn).parameters) - {"waveform"}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise ValueError(
                f"{where}: torchaudio.compliance.kaldi.{feat_type} takes no argument(s) {unknown}; "
                f"known: {sorted(allowed)}"
            )
        self.kaldi_kwargs = kwargs
        self.delta_order = int(delta_order)
        self.delta_win_length = int(delta_win_length)
        self.cmvn = bool(cmvn)
        self.cmvn_eps = float(cmvn_eps)
        params = inspect.signature(self._fn).parameters
        frame_length = float(kwargs.get("frame_length", params["frame_length"].default))
        frame_shift = float(kwargs.get("frame_shift", params["frame_shift"].default))
        self.window = int(SAMPLE_RATE * frame_length * 0.001)
        self.shift = int(SAMPLE_RATE * frame_shift * 0.001)
        self.snip_edges = bool(kwargs.get("snip_edges", True))
        with torch.no_grad():
            self.output_dim = int(self._one(torch.randn(SAMPLE_RATE)).shape[-1])

    def frame_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        return kaldi_frame_lengths(wav_lens, self.window, self.shift, self.snip_edges)

    def _one(self, wav: torch.Tensor) -> torch.Tensor:
        x = self._fn(wav.view(1, -1), sample_frequency=SAMPLE_RATE, **self.kaldi_kwargs)  # [T, D]
        feats = [x]
        for _ in range(self.delta_order):
            d = torchaudio_deltas(feats[-1].transpose(0, 1), self.delta_win_length).transpose(0, 1)
            feats.append(d)
        x = torch.cat(feats, dim=-1)
        if self.cmvn:
            x = cmvn_unbiased(x, self.cmvn_eps)
        return x

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        lengths = self.frame_lengths(wav_lens.cpu())
        short = (lengths <= 0).nonzero().flatten().tolist()
        if short:
            raise ValueError(
                f"utterances {short} of the batch are shorter than one {self.window}-sample analysis "
                f"window ({wav_lens.cpu()[short].tolist()} samples)"
            )
        feats = [self._one(w[: int(n)].float()) for w, n in zip(wavs, wav_lens.tolist())]
        return pad_list(feats), lengths.to(wavs.device)


def torchaudio_deltas(x: torch.Tensor, win_length: int = 5) -> torch.Tensor:
    """Deltas over the last axis (``torchaudio.functional.compute_deltas``, replicate padding)."""
    import torchaudio.functional as AF

    return AF.compute_deltas(x, win_length=win_length)


_ONLINE_FEATS = ("mel", "linear")


class OnlineFrontEnd(nn.Module):
    """s3prl's on-the-fly spectral front end of Mockingjay/TERA (see module docstring)."""

    def __init__(self, feat_type: str = "mel", target_level: Optional[float] = -25.0,
                 win_ms: float = 25.0, hop_ms: float = 10.0, n_freq: int = 201, n_mels: int = 80,
                 log: bool = True, delta: int = 0, cmvn: bool = True, eps: float = 1e-10,
                 where: str = "front end"):
        super().__init__()
        if feat_type not in _ONLINE_FEATS:
            raise ValueError(
                f"{where}: input feat_type {feat_type!r} is not supported (supported: {_ONLINE_FEATS})"
            )
        import torchaudio.functional as AF

        self.feat_type = feat_type
        self.target_level = None if target_level is None else float(target_level)
        self.win = int(round(win_ms * SAMPLE_RATE / 1000))
        self.hop = int(round(hop_ms * SAMPLE_RATE / 1000))
        self.n_fft = (int(n_freq) - 1) * 2
        self.n_freq = int(n_freq)
        self.log = bool(log)
        self.delta = int(delta)
        self.cmvn = bool(cmvn)
        self.eps = float(eps)
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)
        if feat_type == "mel":
            fb = AF.melscale_fbanks(self.n_freq, 0.0, SAMPLE_RATE / 2, int(n_mels), SAMPLE_RATE,
                                    norm=None, mel_scale="htk")  # [n_freq, n_mels]
            self.register_buffer("mel_fb", fb, persistent=False)
            base_dim = int(n_mels)
        else:
            self.mel_fb = None
            base_dim = self.n_freq
        self.output_dim = base_dim * (1 + self.delta)

    def frame_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        return centered_stft_frame_lengths(wav_lens, self.hop)

    def _one(self, wav: torch.Tensor) -> torch.Tensor:
        if self.target_level is not None:
            rms = wav.pow(2).mean().pow(0.5)
            wav = wav * ((10 ** (self.target_level / 20)) / (rms + 1e-10))
        spec = torch.stft(wav, self.n_fft, hop_length=self.hop, win_length=self.win,
                          window=self.window, center=True, pad_mode="reflect", normalized=False,
                          onesided=True, return_complex=True)
        power = spec.abs().pow(2)  # [n_freq, T]
        x = power if self.mel_fb is None else torch.matmul(self.mel_fb.transpose(0, 1), power)
        if self.log:
            x = (x + self.eps).log()
        feats = [x]
        for _ in range(self.delta):
            feats.append(torchaudio_deltas(feats[-1]))
        x = torch.cat(feats, dim=0).transpose(0, 1)  # [T, D]
        if self.cmvn:
            x = (x - x.mean(dim=0, keepdim=True)) / (x.std(dim=0, keepdim=True) + self.eps)
        return x

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        lengths = self.frame_lengths(wav_lens.cpu())
        short = [i for i, n in enumerate(wav_lens.tolist()) if n <= self.n_fft // 2]
        if short:
            raise ValueError(
                f"utterances {short} of the batch are too short for a centred {self.n_fft}-point STFT "
                f"with reflect padding (need more than {self.n_fft // 2} samples, got "
                f"{wav_lens.cpu()[short].tolist()})"
            )
        feats = [self._one(w[: int(n)].float()) for w, n in zip(wavs, wav_lens.tolist())]
        return pad_list(feats), lengths.to(wavs.device)


# ----------------------------------------------------------------------------------------------
# configuration helpers
# ----------------------------------------------------------------------------------------------


def to_plain(obj: Any) -> Any:
    """Plain dicts / lists / scalars from checkpoint configuration objects (inert stand-ins of
    argparse / omegaconf / s3prl classes included); see :func:`superb.upstream.checkpoint_io.to_plain`."""
    from .checkpoint_io import to_plain as _to_plain

    return _to_plain(obj)


def config_from_options(cls, base: Any, options: Mapping[str, Any], where: str):
    """Return a copy of dataclass ``base`` (or ``cls()``) with ``options`` applied; an unknown
    option is an error listing the known ones."""
    base = base if base is not None else cls()
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(
            f"{where}: unknown upstream option(s) {unknown}; known options: {sorted(names)}"
        )
    values = {k: _coerce(v, getattr(base, k), k, where) for k, v in options.items()}
    return dataclasses.replace(base, **values)


def _coerce(value: Any, default: Any, key: str, where: str) -> Any:
    """Bring a command-line option (parsed as YAML) to the type of the field's current value:
    ``"(128, 32)"`` or ``[128, 32]`` for a tuple, ``"true"`` for a bool, a list back to the
    layer-list string of a fairseq field."""
    import ast

    if isinstance(default, bool):
        return as_bool(value, key, where)
    if isinstance(default, int) and not isinstance(value, bool):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, int):
            return value
        raise ValueError(f"{where}: option {key} must be an integer, got {value!r}")
    if isinstance(default, float) and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{where}: option {key} must be a number, got {value!r}") from None
    if isinstance(default, tuple):
        if isinstance(value, str):
            try:
                value = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                raise ValueError(f"{where}: option {key} must be a tuple such as (1, 2), got {value!r}") from None
        if isinstance(value, (int, float, bool)):
            value = (value,)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: option {key} must be a tuple, got {value!r}")
        kind = type(default[0]) if default else None
        return tuple(as_bool(v, key, where) if kind is bool else kind(v) if kind in (int, float) else v
                     for v in value)
    if isinstance(default, str) and isinstance(value, (list, tuple)):
        # a layer list the YAML parser split up, e.g. [(512, 2, 1)] -> ['(512', 2, '1)']
        return "[" + ", ".join(str(v) for v in value) + "]"
    return value


def require_keys(mapping: Mapping[str, Any], keys: Iterable[str], where: str) -> None:
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise ValueError(f"{where}: missing required key(s) {missing}; found {sorted(map(str, mapping))}")


def as_bool(value: Any, key: str, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ValueError(f"{where}: {key} must be a boolean, got {value!r}")


def map_keys(state: Mapping[str, torch.Tensor], table: Sequence[Tuple[str, str]]) -> Dict[str, torch.Tensor]:
    """Rename the keys of ``state`` with the first matching ``(regex, replacement)`` of
    ``table``; keys that match no rule are kept unchanged (the strict check reports them)."""
    import re

    compiled = [(re.compile(p), r) for p, r in table]
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key
        for pattern, repl in compiled:
            if pattern.fullmatch(key):
                new = pattern.sub(repl, key)
                break
        out[new] = value
    return out


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], path, drop_patterns: Sequence[str] = (),
                where: str = "") -> None:
    """Load ``state`` into ``module`` after dropping unexpected keys that match one of
    ``drop_patterns`` (regular expressions matched at the start of the name); missing or
    unexpected keys and shape mismatches raise ``CheckpointKeyError`` naming them and the file."""

    from .checkpoint_io import CheckpointKeyError, check_state_dict

    expected = module.state_dict()
    dropped = set(check_state_dict(list(expected), list(state), list(drop_patterns), path))
    kept = {k: v for k, v in state.items() if k not in dropped}
    bad = []
    for k, v in kept.items():
        if not isinstance(v, torch.Tensor):
            bad.append(f"{k} (not a tensor: {type(v).__name__})")
        elif tuple(v.shape) != tuple(expected[k].shape):
            bad.append(f"{k} (checkpoint {tuple(v.shape)}, model {tuple(expected[k].shape)})")
    if bad:
        raise CheckpointKeyError(path, [], [], bad)
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in kept.items()}, strict=True)


def parse_layer_spec(text: Any, key: str, where: str) -> List[Tuple[int, ...]]:
    """Parse a fairseq layer list such as ``"[(512, 10, 5)] + [(512, 8, 4)] * 3"`` without
    ``eval``: only list/tuple literals of integers, ``+`` (concatenation) and ``*`` (repetition)
    are accepted."""
    import ast

    if isinstance(text, (list, tuple)):
        if not all(isinstance(t, (list, tuple)) for t in text):
            raise ValueError(f"{where}: {key}={text!r} is not a list of (dim, kernel, stride) tuples")
        return [tuple(int(v) for v in t) for t in text]
    if not isinstance(text, str):
        raise ValueError(f"{where}: {key} must be a layer list string, got {text!r}")

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            vals = [ev(e) for e in node.elts]
            return vals if isinstance(node, ast.List) else tuple(vals)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            a, b = ev(node.left), ev(node.right)
            if isinstance(a, list) and isinstance(b, list):
                return a + b
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            a, b = ev(node.left), ev(node.right)
            if isinstance(a, list) and isinstance(b, int):
                return a * b
            if isinstance(b, list) and isinstance(a, int):
                return b * a
        raise ValueError(f"{where}: cannot parse {key}={text!r} (only literal lists of (dim, kernel, "
                         "stride) tuples joined by + and * are accepted)")

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{where}: cannot parse {key}={text!r}: {exc}") from None
    value = ev(tree)
    if isinstance(value, list):
        value = [tuple(t) if isinstance(t, list) else t for t in value]
    if not isinstance(value, list) or not all(isinstance(t, tuple) and all(isinstance(v, int) for v in t)
                                             for t in value):
        raise ValueError(f"{where}: {key}={text!r} is not a list of integer tuples")
    return value


# ----------------------------------------------------------------------------------------------
# `superb inspect` support (see superb.upstream.inspection)
# ----------------------------------------------------------------------------------------------

_INSPECT_CACHE: Dict[Tuple[str, int, int], Any] = {}


def load_for_inspection(path) -> Any:
    """``safe_load(path)`` for the family inspectors, cached for the last file (each family's
    inspector looks at the same file in turn). ``None`` for a folder or a file that is not a
    torch checkpoint; a file that safe loading refuses raises."""
    from pathlib import Path

    from .checkpoint_io import UnsafeCheckpointError, safe_load

    path = Path(path)
    if not path.is_file():
        return None
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _INSPECT_CACHE:
        try:
            obj = safe_load(path)
        except UnsafeCheckpointError:
            raise
        except Exception:  # noqa: BLE001 - not a checkpoint this inspector can read
            obj = None
        _INSPECT_CACHE.clear()
        _INSPECT_CACHE[key] = obj
    return _INSPECT_CACHE[key]


def inspection_record(path, info: Mapping[str, Any], formats: Sequence[str]) -> Dict[str, Any]:
    """The dict ``superb inspect`` prints, from a family's ``describe`` summary; the model is
    built through ``build_upstream`` so that sizes and the parameter count are exact."""
    from .registry import build_upstream

    name = info["upstreams"][0]
    model = build_upstream(name, ckpt=path)
    config = model.config
    config = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})
    skip = {"family", "format", "upstreams"}
    notes = [f"{k}: {v}" for k, v in info.items() if k not in skip]
    if len(info["upstreams"]) > 1:
        notes.append("also loads as: " + ", ".join(info["upstreams"][1:]))
    return {
        "path": str(path),
        "family": info["family"],
        "format": info["format"],
        "format_description": "; ".join(formats),
        "upstream": name,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "num_layers": model.num_layers,
        "hidden_size": model.hidden_sizes[-1],
        "downsample_rate": int(model.downsample_rate),
        "notes": notes,
    }


def register_family_inspector(detect_fn, describe_fn, formats: Sequence[str]) -> None:
    """Register a fast ``superb inspect`` inspector for a checkpoint family."""
    from .inspection import register_inspector

    def inspector(path):
        obj = load_for_inspection(path)
        if obj is None or not detect_fn(obj):
            return None
        return inspection_record(path, describe_fn(obj), formats)

    inspector.__name__ = f"inspect_{getattr(detect_fn, '__module__', 'family').rsplit('.', 1)[-1]}"
    register_inspector(inspector)
