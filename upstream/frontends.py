"""Acoustic front ends of the feature-based upstreams (Mockingjay/TERA, APC/VQ-APC, BEST-RQ) and
their frame-count rules.

Masked normalisations and padding helpers are in :mod:`superb.upstream.masking`, option coercion in
:mod:`superb.upstream.options`, checkpoint key mapping and strict loading in
:mod:`superb.upstream.state_dict`.

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

import inspect
from typing import Any, Mapping, Optional, Tuple

import torch
from torch import nn

from .base import SAMPLE_RATE
from .masking import cmvn_unbiased, pad_list

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


def ms_to_samples(ms: float) -> int:
    """16 kHz samples in ``ms`` milliseconds, rounded (the online front end's window and hop)."""
    return int(round(ms * SAMPLE_RATE / 1000))


def kaldi_window_shift(feat_type: str, kaldi_kwargs: Mapping[str, Any]) -> Tuple[int, int]:
    """``(window, shift)`` in samples of ``torchaudio.compliance.kaldi.<feat_type>`` called with
    ``kaldi_kwargs`` (its own defaults for ``frame_length`` / ``frame_shift``)."""
    import torchaudio.compliance.kaldi as kaldi

    params = inspect.signature(getattr(kaldi, feat_type)).parameters
    frame_length = float(kaldi_kwargs.get("frame_length", params["frame_length"].default))
    frame_shift = float(kaldi_kwargs.get("frame_shift", params["frame_shift"].default))
    return int(SAMPLE_RATE * frame_length * 0.001), int(SAMPLE_RATE * frame_shift * 0.001)


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
        self.window, self.shift = kaldi_window_shift(feat_type, kwargs)
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
        self.win = ms_to_samples(win_ms)
        self.hop = ms_to_samples(hop_ms)
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
