"""Parameter-free baselines: Kaldi-compatible FBANK and MFCC.

* ``fbank``: 80 log-mel filterbanks, 25 ms window, 10 ms hop (``torchaudio.compliance.kaldi.fbank``,
  dither 0 so features are deterministic). The SUPERB paper's FBANK applied per-utterance CMVN;
  the leaderboard's rerun (the FBANK reference points of the SUPERB score) did not. The default
  here follows the leaderboard (``cmvn=False``); pass ``cmvn=True`` (``--upstream-option cmvn=true``)
  for the paper's variant.
* ``mfcc``: 13 Kaldi MFCCs with first and second deltas (39 dimensions), same framing.

Frames follow Kaldi's ``snip_edges`` rule: ``1 + (n - 400) // 160`` frames for ``n >= 400``
samples (0 below), so ``downsample_rate`` is 160. One hidden state.

The features of a whole padded batch are computed at once (:class:`BatchKaldiFrontEnd`: valid
frames only, framing by strided views, DC removal, pre-emphasis 0.97, Povey window, 512-point
power spectrum, Kaldi mel banks, log; DCT-II and lifter 22 for MFCC; deltas with edge
replication per utterance). The recipe is Kaldi's ``compute-fbank-feats`` /
``compute-mfcc-feats`` with ``--dither=0`` (no recipe dithers) as ``torchaudio.compliance.kaldi``
implements it one utterance at a time; valid frames equal that reference within float32 rounding
(tested, <= 1e-4; FBANK ~1e-6 even on band-limited audio) and the batch costs a fraction of the
per-utterance loop (``python -m superb.benchmark.perf.frontend``).

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
    """Kaldi log-mel filterbank / MFCC features of a padded batch (``snip_edges``, no dither).

    Kaldi's defaults: 25 ms Povey window, 10 ms shift, DC offset removed per frame, pre-emphasis
    0.97 (the first sample of a frame against itself), FFT size 512, power spectrum, mel banks
    from 20 Hz to Nyquist, ``log(max(x, float32 eps))``; MFCC: ortho DCT-II of the log-mel
    energies with C0 weighted ``sqrt(1/num_mel_bins)``, cepstral lifter 22; the raw
    energy is not used (``use_energy=false``, the default of both Kaldi and torchaudio), so C0 is
    the DCT's own.

    Dither is always 0: no recipe of the toolkit dithers (``--dither=0`` in Kaldi terms), so the
    features are a deterministic function of the audio and there is no dither option.

    How it stays equal to the per-utterance reference while being fast:

    * Only valid frames are computed. A batch whose utterances all have the same number of frames
      (Speech Commands: 1-s clips) is framed in place (``unfold``, no copy); otherwise the valid
      samples of each utterance are packed into one flat signal with utterance starts on the hop
      grid, so the frames of the whole batch are one strided view with two throw-away frames per
      utterance between them, and padding costs nothing.
    * Everything up to the FFT is the reference's float32 arithmetic, operation for operation
      (mean, subtraction, ``0.97 * x``, subtraction, window product): float32 FFT rounding is
      about ``eps * |frame|`` per bin, which is far from negligible against the weakest bins
      (high bands of band-limited audio, the lowest band after pre-emphasis), so an input that
      differs from the reference's even in the last bit moves such logs by up to ~1e-3. With the
      same FFT input (and the same FFT) the bits are the same. Nothing is computed in float64:
      that would move the weak bands towards the exact values, i.e. away from the float32
      reference (by ~1e-3 on band-limited audio, ~6e-5 on white noise). The frames are written
      straight into the 512-sample FFT buffer (no padded copy; the Povey window is 0 at sample 0,
      so the first sample's pre-emphasis needs no work).
    * The frames go through in chunks of about ``CHUNK_FRAMES`` (whole utterances when framed in
      place), so each elementwise pass works in cache and the FFT buffer's zeros are written once.
    * After the FFT every value is a sum of positive terms, so other rounding is harmless
      (relative ~1e-7): the power spectrum is the squared real and imaginary parts (no complex
      ``abs``), and the mel banks, which are triangular and narrow, are applied as a few dense
      blocks over the bins each group of banks covers, with every weight doubled for the real
      and imaginary part, so ``re^2 + im^2`` is summed by the matrix product itself.
    """

    PREEMPHASIS = 0.97
    FFT = 512
    BANKS_PER_BLOCK = 16
    CHUNK_FRAMES = 256

    LIFTER = 22.0

    def __init__(self, num_mel_bins: int, num_ceps: int = 0):
        super().__init__()
        self.num_mel_bins, self.num_ceps = num_mel_bins, num_ceps
        banks, _ = kaldi.get_mel_banks(num_mel_bins, self.FFT, float(SAMPLE_RATE), 20.0, 0.0, 100.0, -500.0, 1.0)
        banks = torch.nn.functional.pad(banks, (0, 1))  # [mel, 257]: the Nyquist bin has no weight
        self.register_buffer("window", torch.hann_window(WINDOW, periodic=False).pow(0.85),
                             persistent=False)
        # banded mel blocks: (first bank, last bank + 1, first bin, last bin + 1) and a weight
        # block [2 * bins, banks] over the interleaved (re^2, im^2) layout of the squared spectrum
        self.blocks = []
        for i, start in enumerate(range(0, num_mel_bins, self.BANKS_PER_BLOCK)):
            stop = min(start + self.BANKS_PER_BLOCK, num_mel_bins)
            bins = banks[start:stop].abs().sum(0).nonzero().flatten()
            lo, hi = int(bins.min()), int(bins.max()) + 1
            weights = banks[start:stop, lo:hi].T.repeat_interleave(2, dim=0).contiguous()
            self.register_buffer(f"mel_block{i}", weights, persistent=False)
            self.blocks.append((start, stop, lo, hi))
        if num_ceps:
            dct = AF.create_dct(num_mel_bins, num_mel_bins, "ortho")
            dct[:, 0] = math.sqrt(1.0 / num_mel_bins)
            lifter = 1.0 + 0.5 * self.LIFTER * torch.sin(math.pi * torch.arange(num_ceps) / self.LIFTER)
            self.register_buffer("dct", (dct[:, :num_ceps] * lifter).contiguous(), persistent=False)

    @property
    def dim(self) -> int:
        return self.num_ceps or self.num_mel_bins

    def _frames(self, wavs: torch.Tensor, frame_lengths: torch.Tensor):
        """A strided ``[rows, 400]`` view of the frames to compute and, for a packed batch, the
        boolean mask of its rows that are valid frames (``None``: all rows, in batch order)."""
        counts = frame_lengths.tolist()
        if min(counts) == max(counts):  # one frame count: frame the batch in place
            frames = wavs.unfold(1, WINDOW, HOP)[:, : counts[0]]  # [B, F, 400] view
            return frames, None
        # pack the valid samples: utterance b's frames are rows starts[b] .. starts[b] + n - 1 of
        # one strided view; 2 rows between utterances (HOP * 2 >= WINDOW - HOP) are thrown away
        starts, rows = [], 0
        for n in counts:
            starts.append(rows)
            rows += n + 2
        flat = wavs.new_zeros(rows * HOP)
        for b, (start, n) in enumerate(zip(starts, counts)):
            span = HOP * (n - 1) + WINDOW
            flat[start * HOP: start * HOP + span] = wavs[b, :span]
        keep = torch.zeros(rows - 2, dtype=torch.bool)
        for start, n in zip(starts, counts):
            keep[start: start + n] = True
        return flat.as_strided((rows - 2, WINDOW), (HOP, 1)), keep.to(wavs.device)

    def _fft_buffer(self, wavs: torch.Tensor, shape):
        """An uninitialised ``[*shape, 512]`` FFT input and one strided view of what must be zero:
        each row's samples 400..511 followed by the next row's sample 0 (one fill, not two)."""
        rows, pad = math.prod(shape), self.FFT - WINDOW
        flat = wavs.new_empty((rows + 1) * self.FFT)
        buffer = flat[pad: pad + rows * self.FFT].view(*shape, self.FFT)
        return buffer, flat.as_strided((rows + 1, pad + 1), (self.FFT, 1))

    def forward(self, wavs: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T]`` audio and the frames of each utterance (default: all frames of ``T``) ->
        ``[B, max frames, D]`` features, zeros on padded frames."""
        wavs = wavs.float()
        batch = wavs.shape[0]
        if frame_lengths is None:
            frame_lengths = torch.full((batch,), 1 + (wavs.shape[1] - WINDOW) // HOP)
        frame_lengths = frame_lengths.cpu()
        frames, keep = self._frames(wavs, frame_lengths)
        per_row = frames.shape[1] if frames.dim() == 3 else 1
        step = max(1, self.CHUNK_FRAMES // per_row)
        buffer, zeros = self._fft_buffer(wavs, (min(step, frames.shape[0]) * per_row,))
        zeros.zero_()  # the padding of every row and its sample 0 (window[0] == 0: its value is moot)
        rows = frames.shape[0] * per_row
        mel = wavs.new_empty(rows, self.num_mel_bins)
        centred = wavs.new_empty(buffer.shape[0], WINDOW)
        scaled = torch.empty_like(centred)
        for first in range(0, frames.shape[0], step):
            chunk = frames[first: first + step]  # [rows, 400] or [utterances, F, 400], a view
            n = chunk.shape[0] * per_row
            shape = (*chunk.shape[:-1], -1)
            c, s, buf = centred[:n].view(shape), scaled[:n].view(shape), buffer[:n].view(shape)
            # the reference's float32 operations up to the FFT, in its order (class docstring)
            torch.sub(chunk, torch.mean(chunk, dim=-1, keepdim=True), out=c)
            torch.mul(c, self.PREEMPHASIS, out=s)
            torch.sub(c[..., 1:], s[..., :-1], out=buf[..., 1:WINDOW])
            buf[..., 1:WINDOW] *= self.window[1:]
            spectrum = torch.view_as_real(torch.fft.rfft(buf)).view(n, 2 * (self.FFT // 2 + 1))
            spectrum.square_()  # re^2, im^2 interleaved; the mel weights are doubled to match
            out_rows = mel[first * per_row: first * per_row + n]
            for i, (start, stop, lo, hi) in enumerate(self.blocks):
                out_rows[:, start:stop] = torch.mm(spectrum[:, 2 * lo: 2 * hi], getattr(self, f"mel_block{i}"))
        feats = mel.clamp_(min=torch.finfo(torch.float32).eps).log_()
        if self.num_ceps:
            feats = torch.mm(feats, self.dct)
        if keep is None:
            return feats.view(batch, -1, self.dim)
        out = feats.new_zeros(batch, int(frame_lengths.max()), self.dim)
        out[valid_mask(frame_lengths.to(wavs.device), out.shape[1])] = feats[keep]
        return out


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
        feats = self._batch_features(wavs, lengths)  # [B, max frames, D], padded frames zeros
        if self.cmvn:
            feats = torch.stack([torch.nn.functional.pad(apply_cmvn(f[:n]), (0, 0, 0, feats.shape[1] - n))
                                 for f, n in zip(feats, lengths.tolist())])
        return UpstreamOutput(hidden_states=[feats], lengths=lengths.to(wavs.device))

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
        return self.front_end(wavs, lengths)

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
        feats = deltas(self.front_end(wavs, lengths), lengths)
        return feats * valid_mask(lengths.to(feats.device), feats.shape[1]).unsqueeze(-1)

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
