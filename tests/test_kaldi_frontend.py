"""The batched Kaldi front end equals torchaudio's per-utterance Kaldi features on valid frames."""
import pytest
import torch

from superb.upstream import build_upstream
from superb.upstream.baselines import apply_cmvn


@pytest.mark.parametrize("name", ["fbank", "mfcc"])
@pytest.mark.parametrize("cmvn", [False, True])
def test_batched_features_equal_the_per_utterance_reference(name, cmvn):
    torch.manual_seed(0)
    model = build_upstream(name, cmvn=cmvn)
    lens = torch.tensor([16000, 401, 23456, 400, 8000, 560])
    wavs = torch.randn(len(lens), int(lens.max())) * 0.3  # garbage in the padding must not matter
    wavs[1, :401] = 0.0  # digital silence: log(eps) in both
    out = model(wavs, lens)
    (feats,) = out.hidden_states
    assert out.lengths.tolist() == [98, 1, 145, 1, 48, 2]
    for i, n in enumerate(lens.tolist()):
        ref = model._features(wavs[i, :n])
        if cmvn:
            ref = apply_cmvn(ref)
        frames = int(out.lengths[i])
        assert ref.shape[0] == frames
        assert torch.allclose(feats[i, :frames], ref, atol=1e-4, rtol=0), (i, (feats[i, :frames] - ref).abs().max())
        assert not feats[i, frames:].any()  # padded frames are zeros
