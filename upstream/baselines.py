"""Parameter-free baselines: Kaldi-compatible FBANK and MFCC.

* ``fbank``: 80 log-mel filterbanks, 25 ms window, 10 ms hop (``torchaudio.compliance.kaldi.fbank``,
  dither 0 so features are deterministic). The SUPERB paper's FBANK applied per-utterance CMVN;
  the leaderboard's rerun (the FBANK reference points of the SUPERB score) did not. The default
  here follows the leaderboard (``cmvn=False``); pass ``cmvn=True`` (``--upstream-option cmvn=true``)
  for the paper's variant.
* ``mfcc``: 13 Kaldi MFCCs with first and second deltas (39 dimensions), same framing.

Frames follow Kaldi's ``snip_edges`` rule: ``1 + (n - 400) // 160`` frames for ``n >= 400``
samples (0 below), so ``downsample_rate`` is 160. One hidden state.

The features of a whole padded batch are computed at once (:class:`BatchKaldiFrontEnd`: framing by
``unfold``, DC removal, pre-emphasis 0.97, Povey window, 512-point power spectrum, Kaldi mel
banks, log; DCT-II and lifter 22 for MFCC; deltas with
edge replication per utterance). The recipe is Kaldi's ``compute-fbank-feats`` /
``compute-mfcc-feats`` with ``--dither=0`` as ``torchaudio.compliance.kaldi`` implements it
one utterance at a time; valid frames equal that reference within float32 rounding (tested,
<= 1e-4) and the batch costs a fraction of the per-utterance loop (``tools/bench_frontend.py``).

Layout: a single module, not a package - these upstreams have no weights, so there is no
``import_<source>.py``; registration goes through :func:`superb.upstream.family.register_family`
like every family (variants without a configuration: options are the constructor's arguments).
"""
from __future__ import annotations

from typing import List

import math

import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF

from .base import SAMPLE_RATE, Upstream, UpstreamOutput, valid_mask
from .family import Variant, register_family
from .frontends import kaldi_frame_lengths

WINDOW = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms


def apply_cmvn(feats: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean and variance normalisation over time of ``[T, D]`` features."""
    mean = feats.mean(dim=0, keepdim=True)
    std = feats.std(dim=0, keepdim=True, unbiased=False).clamp(min=1e-5)
    return (feats - mean) / std


class BatchKaldiFrontEnd(torch.nn.Module):
    """Kaldi log-mel filterbank / MFCC features of a padded batch (``dither=0``, ``snip_edges``).

    Kaldi's defaults: 25 ms Povey window, 10 ms shift, DC offset removed per frame, pre-emphasis
    0.97 (the first sample of a frame against itself), FFT size 512, power spectrum, mel banks
    from 20 Hz to Nyquist, ``log(max(x, float32 eps))``; MFCC: ortho DCT-II of the log-mel
    energies with C0 weighted ``sqrt(1/num_mel_bins)``, cepstral lifter 22; the raw
    energy is not used (``use_energy=false``, the default of both Kaldi and torchaudio), so C0 is
    the DCT's own.
    """

    PREEMPHASIS = 0.97
    FFT = 512
    LIFTER = 22.0

    def __init__(self, num_mel_bins: int, num_ceps: int = 0):
        super().__init__()
        self.num_mel_bins, self.num_ceps = num_mel_bins, num_ceps
        banks, _ = kaldi.get_mel_banks(num_mel_bins, self.FFT, float(SAMPLE_RATE), 20.0, 0.0, 100.0, -500.0, 1.0)
        self.register_buffer("banks", torch.nn.functional.pad(banks, (0, 1)).T.contiguous(), persistent=False)
        self.register_buffer("window", torch.hann_window(WINDOW, periodic=False).pow(0.85),
                             persistent=False)
        if num_ceps:
            dct = AF.create_dct(num_mel_bins, num_mel_bins, "ortho")
            dct[:, 0] = math.sqrt(1.0 / num_mel_bins)
            lifter = 1.0 + 0.5 * self.LIFTER * torch.sin(math.pi * torch.arange(num_ceps) / self.LIFTER)
            self.register_buffer("dct", (dct[:, :num_ceps] * lifter).contiguous(), persistent=False)

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` audio -> ``[B, frames, D]`` (frames of ``T``; the caller masks by lengths)."""
        frames = wavs.float().unfold(1, WINDOW, HOP)  # [B, F, 400]
        frames = frames - frames.mean(dim=-1, keepdim=True)
        eps = torch.finfo(torch.float32).eps
        # the same float32 operations, in the same order, as the per-utterance reference: the
        # low mel bands of DC-removed, pre-emphasised frames are tiny, so a different rounding
        # (e.g. re^2 + im^2 instead of |z|^2) moves their logs by ~1e-3
        emphasised = torch.empty_like(frames)
        emphasised[..., 1:] = frames[..., 1:] - self.PREEMPHASIS * frames[..., :-1]
        emphasised[..., 0] = frames[..., 0] - self.PREEMPHASIS * frames[..., 0]
        emphasised *= self.window
        spectrum = torch.fft.rfft(emphasised, n=self.FFT).abs().pow(2)  # [B, F, 257]
        feats = torch.matmul(spectrum, self.banks).clamp(min=eps).log()
        if self.num_ceps:
            feats = torch.matmul(feats, self.dct)
        return feats


def deltas(feats: torch.Tensor, lengths: torch.Tensor, order: int = 2) -> torch.Tensor:
    """``feats`` with ``order`` delta blocks appended (window 5, edge frames replicated per utterance,
    as ``torchaudio.functional.compute_deltas`` does for one utterance)."""
    t = torch.arange(feats.shape[1], device=feats.device)
    last = (lengths.to(feats.device) - 1).clamp(min=0)[:, None]
    out, current = [feats], feats
    for _ in range(order):
        d = torch.zeros_like(current)
        for n in (1, 2):
            ahead = torch.minimum(t[None, :] + n, last).unsqueeze(-1).expand_as(current)
            behind = (t[None, :] - n).clamp(min=0).unsqueeze(-1).expand_as(current)
            d = d + n * (current.gather(1, ahead) - current.gather(1, behind))
        current = d / 10.0  # 2 * (1^2 + 2^2)
        out.append(current)
    return torch.cat(out, dim=-1)


class _KaldiFeatures(Upstream):
    downsample_rate = HOP

    def __init__(self, cmvn: bool = False):
        super().__init__()
        if not isinstance(cmvn, bool):
            raise ValueError(f"upstream option cmvn must be true or false, got {cmvn!r}")
        self.cmvn = cmvn

    def _features(self, wav: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        self.check_input(wavs, wav_lens)
        lengths = kaldi_frame_lengths(wav_lens.cpu(), WINDOW, HOP)  # snip_edges
        too_short = (lengths <= 0).nonzero().flatten().tolist()
        if too_short:
            raise ValueError(
                f"utterances {too_short} of the batch are shorter than one {WINDOW}-sample window "
                f"({wav_lens[too_short].tolist()} samples)"
            )
        lengths = lengths.to(wavs.device)
        feats = self._batch_features(wavs[:, : int(wav_lens.max())], lengths)
        feats = feats[:, : int(lengths.max())]
        mask = valid_mask(lengths, feats.shape[1])
        if self.cmvn:
            feats = torch.stack([torch.nn.functional.pad(apply_cmvn(f[:n]), (0, 0, 0, feats.shape[1] - n))
                                 for f, n in zip(feats, lengths.tolist())])
        feats = feats * mask.unsqueeze(-1)  # padded frames are zeros
        return UpstreamOutput(hidden_states=[feats], lengths=lengths)

    def _batch_features(self, wavs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class FbankUpstream(_KaldiFeatures):
    """80-dimensional Kaldi log-mel filterbank."""

    num_mel_bins = 80

    @property
    def hidden_sizes(self) -> List[int]:
        return [self.num_mel_bins]

    def __init__(self, cmvn: bool = False):
        super().__init__(cmvn)
        self.front_end = BatchKaldiFrontEnd(self.num_mel_bins)

    def _batch_features(self, wavs, lengths):
        return self.front_end(wavs)

    def _features(self, wav: torch.Tensor) -> torch.Tensor:
        """The per-utterance reference (torchaudio's Kaldi implementation)."""
        return kaldi.fbank(
            wav.unsqueeze(0),
            num_mel_bins=self.num_mel_bins,
            frame_length=25.0,
            frame_shift=10.0,
            dither=0.0,
            sample_frequency=SAMPLE_RATE,
        )


class MfccUpstream(_KaldiFeatures):
    """13 Kaldi MFCCs plus deltas and delta-deltas (39 dimensions)."""

    num_ceps = 13

    @property
    def hidden_sizes(self) -> List[int]:
        return [self.num_ceps * 3]

    def __init__(self, cmvn: bool = False):
        super().__init__(cmvn)
        self.front_end = BatchKaldiFrontEnd(23, self.num_ceps)

    def _batch_features(self, wavs, lengths):
        return deltas(self.front_end(wavs), lengths)

    def _features(self, wav: torch.Tensor) -> torch.Tensor:
        """The per-utterance reference (torchaudio's Kaldi implementation)."""
        mfcc = kaldi.mfcc(
            wav.unsqueeze(0),
            num_ceps=self.num_ceps,
            num_mel_bins=23,
            frame_length=25.0,
            frame_shift=10.0,
            dither=0.0,
            sample_frequency=SAMPLE_RATE,
        )  # [T, 13]
        d1 = AF.compute_deltas(mfcc.T.unsqueeze(0)).squeeze(0).T
        d2 = AF.compute_deltas(d1.T.unsqueeze(0)).squeeze(0).T
        return torch.cat([mfcc, d1, d2], dim=-1)


FORMATS = ("none (no weights)",)

register_family("baseline", FbankUpstream, [Variant(
    "fbank", "80-dim Kaldi log-mel filterbank (leaderboard FBANK baseline; option cmvn)", layers="1")],
    formats=FORMATS)
register_family("baseline", MfccUpstream, [Variant(
    "mfcc", "13 Kaldi MFCCs + deltas + delta-deltas (39-dim; option cmvn)", layers="1")],
    formats=FORMATS)
