"""The batched Kaldi front end equals torchaudio's per-utterance Kaldi features on valid frames."""
import math

import pytest
import torch

from superb.upstream import build_upstream
from superb.upstream.baselines import BatchKaldiFrontEnd, apply_cmvn


def band_limited(n: int, f0: float, noise: float, generator: torch.Generator) -> torch.Tensor:
    """A harmonic tone with DC offset and a faint noise floor: its high mel bands are ~1e-8 of the
    frame energy, where float32 FFT rounding (~eps * |frame|) is not negligible, so only the
    reference's own arithmetic up to the FFT reproduces its logs to 1e-4 (not merely the maths)."""
    t = torch.arange(n) / 16000.0
    tone = sum(0.3 / k * torch.sin(2 * math.pi * f0 * k * t + k) for k in range(1, 12))
    return tone + 0.02 + noise * torch.randn(n, generator=generator)


def batch(lens, generator, tones=True):
    wavs = torch.randn(len(lens), max(lens) + 37, generator=generator) * 0.3  # garbage in padding
    for i, n in enumerate(lens):
        if tones and i % 3 == 1:
            wavs[i, :n] = band_limited(n, 110.0 + 40 * i, 1e-5, generator)
    return wavs, torch.tensor(lens)


CASES = {
    "mixed lengths": [16000, 401, 23456, 400, 8000, 560],
    "equal lengths (framed in place)": [16000, 16000, 16000, 16000],
    "equal frame counts, different samples": [16000, 16100, 16159],
    "one utterance": [12345],
}


@pytest.mark.parametrize("name", ["fbank", "mfcc"])
@pytest.mark.parametrize("cmvn", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_batched_features_equal_the_per_utterance_reference(name, cmvn, case):
    gen = torch.Generator().manual_seed(0)
    model = build_upstream(name, cmvn=cmvn)
    # no tones under CMVN: a steady tone's log-mel barely varies in time, so CMVN divides by a
    # tiny std and magnifies float32 rounding (the front end is checked without CMVN)
    wavs, lens = batch(CASES[case], gen, tones=not cmvn)
    if case == "mixed lengths":
        wavs[1, :401] = 0.0  # digital silence: log(eps) in both
    out = model(wavs, lens)
    (feats,) = out.hidden_states
    expected = [1 + (n - 400) // 160 for n in lens.tolist()]
    assert out.lengths.tolist() == expected
    assert feats.shape == (len(lens), max(expected), model.hidden_sizes[0])
    for i, n in enumerate(lens.tolist()):
        ref = model._features(wavs[i, :n])
        if cmvn:
            ref = apply_cmvn(ref)
        frames = int(out.lengths[i])
        assert ref.shape[0] == frames
        diff = (feats[i, :frames] - ref).abs().max()
        assert diff <= 1e-4, (i, float(diff))
        assert not feats[i, frames:].any()  # padded frames are zeros


def test_fbank_matches_to_float32_rounding_even_where_the_reference_is_inexact():
    """Band-limited audio: the reference itself is ~1e-3 off in the weak bands (float64 shows it),
    yet the batched features agree with it to ~1e-6 (same float32 FFT input, bit for bit)."""
    gen = torch.Generator().manual_seed(1)
    wavs = torch.stack([band_limited(16000, 150.0, 1e-5, gen), band_limited(16000, 230.0, 1e-5, gen)])
    model = build_upstream("fbank")
    feats = model(wavs, torch.tensor([16000, 16000])).hidden_states[0]
    for i in range(2):
        ref = model._features(wavs[i])
        exact = model._features(wavs[i].double())
        assert (ref.double() - exact).abs().max() > 1e-4  # the case is a hard one
        assert (feats[i] - ref).abs().max() <= 1e-5


def test_front_end_defaults_to_all_frames_and_has_no_dither():
    front_end = BatchKaldiFrontEnd(80)
    wavs = torch.randn(2, 4000)
    a, b = front_end(wavs), front_end(wavs)
    assert a.shape == (2, 1 + (4000 - 400) // 160, 80)
    assert torch.equal(a, b)  # deterministic: dither is 0
    assert "Dither is always 0" in BatchKaldiFrontEnd.__doc__
