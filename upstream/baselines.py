"""Parameter-free baselines: Kaldi-compatible FBANK and MFCC.

* ``fbank``: 80 log-mel filterbanks, 25 ms window, 10 ms hop (``torchaudio.compliance.kaldi.fbank``,
  dither 0 so features are deterministic). The SUPERB paper's FBANK applied per-utterance CMVN;
  the leaderboard's rerun (the FBANK reference points of the SUPERB score) did not. The default
  here follows the leaderboard (``cmvn=False``); pass ``cmvn=True`` (``--upstream-option cmvn=true``)
  for the paper's variant.
* ``mfcc``: 13 Kaldi MFCCs with first and second deltas (39 dimensions), same framing.

Frames follow Kaldi's ``snip_edges`` rule: ``1 + (n - 400) // 160`` frames for ``n >= 400``
samples (0 below), so ``downsample_rate`` is 160. One hidden state.
"""
from __future__ import annotations

from typing import List

import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF

from .base import SAMPLE_RATE, Upstream, UpstreamOutput, conv_output_lengths
from .registry import UpstreamSpec, register_upstream

WINDOW = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms


def kaldi_frame_lengths(wav_lens: torch.Tensor) -> torch.Tensor:
    """Frames of Kaldi's framing with snip_edges: ``1 + (n - 400) // 160`` (0 when n < 400)."""
    return conv_output_lengths(wav_lens, [(WINDOW, HOP)])


def apply_cmvn(feats: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean and variance normalisation over time of ``[T, D]`` features."""
    mean = feats.mean(dim=0, keepdim=True)
    std = feats.std(dim=0, keepdim=True, unbiased=False).clamp(min=1e-5)
    return (feats - mean) / std


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
        lengths = kaldi_frame_lengths(wav_lens.cpu())
        too_short = (lengths <= 0).nonzero().flatten().tolist()
        if too_short:
            raise ValueError(
                f"utterances {too_short} of the batch are shorter than one {WINDOW}-sample window "
                f"({wav_lens[too_short].tolist()} samples)"
            )
        feats = []
        for wav, n in zip(wavs.float(), wav_lens.tolist()):
            f = self._features(wav[:n])
            if self.cmvn:
                f = apply_cmvn(f)
            feats.append(f)
        padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        return UpstreamOutput(hidden_states=[padded], lengths=lengths.to(wavs.device))


class FbankUpstream(_KaldiFeatures):
    """80-dimensional Kaldi log-mel filterbank."""

    num_mel_bins = 80

    @property
    def hidden_sizes(self) -> List[int]:
        return [self.num_mel_bins]

    def _features(self, wav: torch.Tensor) -> torch.Tensor:
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

    def _features(self, wav: torch.Tensor) -> torch.Tensor:
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


def _no_weights(cls):
    def factory(ckpt, **options):
        return cls(**options)

    return factory


register_upstream(
    UpstreamSpec(
        name="fbank",
        factory=_no_weights(FbankUpstream),
        description="80-dim Kaldi log-mel filterbank (leaderboard FBANK baseline; option cmvn)",
        downsample_rate=HOP,
        layers="1",
        formats=("none (no weights)",),
        needs_weights=False,
        family="baseline",
    )
)
register_upstream(
    UpstreamSpec(
        name="mfcc",
        factory=_no_weights(MfccUpstream),
        description="13 Kaldi MFCCs + deltas + delta-deltas (39-dim; option cmvn)",
        downsample_rate=HOP,
        layers="1",
        formats=("none (no weights)",),
        needs_weights=False,
        family="baseline",
    )
)
