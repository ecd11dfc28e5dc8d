"""SE/SS building blocks (STFT, frame alignment, mask targets, uPIT loss) and VC sentence
normalisation. (Their metrics are tested in tests/test_metrics_*.py.)"""
import pytest
import torch

from superb.downstream.heads.masking import StftConfig, mask_targets, upit_mse
from superb.downstream.signals import align_frames

from conftest import speechlike


# -- STFT masks ---------------------------------------------------------------------------------
def test_align_frames_repeat_interpolate_and_clamp():
    feats = torch.arange(5, dtype=torch.float32).view(1, 5, 1).repeat(2, 1, 1)
    lengths = torch.tensor([5, 3])
    up = align_frames(feats, lengths, rate=320, hop=160, num_frames=8, mode="repeat")[..., 0]
    # position j*160/320 = j/2, nearest (half up); past the last valid frame: the last one
    assert up[0].tolist() == [0, 1, 1, 2, 2, 3, 3, 4]
    assert up[1].tolist() == [0, 1, 1, 2, 2, 2, 2, 2]
    lin = align_frames(feats, lengths, rate=320, hop=160, num_frames=8, mode="interpolate")[..., 0]
    assert lin[0].tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]
    down = align_frames(feats, lengths, rate=160, hop=320, num_frames=3, mode="repeat")[..., 0]
    assert down[0].tolist() == [0, 2, 4]
    same = align_frames(feats, lengths, rate=160, hop=160, num_frames=7, mode="repeat")[..., 0]
    assert same[0].tolist() == [0, 1, 2, 3, 4, 4, 4]  # s3prl: pad by repetition at the end


def test_stft_round_trip_and_targets():
    cfg = StftConfig(512, 512, 160)
    x = torch.from_numpy(speechlike(0.5)).float()
    spec = cfg.stft(x)
    assert spec.shape == (257, cfg.frames(len(x)))
    assert torch.allclose(cfg.istft(spec, len(x)), x, atol=1e-5)
    npsm = mask_targets(spec, [spec, -spec], "NPSM")
    assert torch.allclose(npsm[0], spec.abs(), atol=1e-4) and float(npsm[1].abs().max()) == 0.0
    assert torch.allclose(mask_targets(spec, [-spec], "PSM")[0], -spec.abs(), atol=1e-4)
    assert torch.allclose(mask_targets(spec, [-spec], "AM")[0], spec.abs())


def test_upit_mse_is_permutation_invariant_and_masks_padding():
    est = torch.zeros(1, 2, 4, 3)
    est[0, 0] = 1.0
    tgt = torch.zeros(1, 2, 4, 3)
    tgt[0, 1] = 1.0
    tgt[0, 0, :, 0] = 2.0
    frames = torch.tensor([3])
    # best assignment: est0 -> tgt1 (error 0), est1 -> tgt0 (error 4 per frame) over 3 valid frames
    assert float(upit_mse(est, tgt, frames)) == pytest.approx(12.0)
    assert float(upit_mse(est, tgt.flip(1), frames)) == pytest.approx(12.0)


def test_vc_sentence_normalisation():
    from superb.downstream.tasks.vc import normalize_sentence

    assert normalize_sentence("  Hello, world!  It's me. ") == "HELLO WORLD ITS ME"
