"""``superb pretrain --objective vicreg``: the VICReg loss by hand, the two views, training on the
tiny mini corpus (loss falls, no collapse), the exported fairseq wav2vec 2.0 checkpoint through
our loader and s3prl's fairseq-equivalent ``Wav2Vec2Model`` (padded batch and alone), exact resume."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from conftest import assert_resume_exact, loss_means
import w2v2_peers as P
from golden_utils import golden_batch
from superb.upstream import build_upstream
from superb.upstream.pretrain import vicreg as vr
from superb.upstream.pretrain.loop import build_objective, pretrain
from superb.upstream.pretrain.masked import tiny_config, waveform_frames

warnings.filterwarnings("ignore", category=FutureWarning)

# -- the loss by hand -----------------------------------------------------------------------------------


def test_vicreg_loss_by_hand():
    za = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])
    zb = torch.tensor([[1.0, 1.0], [0.0, 0.0], [-1.0, 1.0]])
    # invariance: mean of squared differences over 3 x 2 elements: (0 + 1 + 0 + 4 + 0 + 0) / 6
    inv = 5 / 6
    # za: column means (0, 1); centred rows (1, -1), (0, 1), (-1, 0); unbiased var (2/2, 2/2) = (1, 1);
    #     cov_01 = (1*-1 + 0*1 + -1*0) / 2 = -0.5
    # zb: column means (0, 2/3); centred (1, 1/3), (0, -2/3), (-1, 1/3); var (1, (1/9+4/9+1/9)/2 = 1/3);
    #     cov_01 = (1/3 + 0 - 1/3) / 2 = 0
    eps = 1e-4
    v_a = 2 * max(0.0, 1 - np.sqrt(1 + eps)) / 2  # both stds > 1 - 0
    v_b = (max(0.0, 1 - np.sqrt(1 + eps)) + max(0.0, 1 - np.sqrt(1 / 3 + eps))) / 2
    c_a = 2 * 0.25 / 2  # two off-diagonal entries (-0.5)^2, / d = 2
    c_b = 0.0
    got = vr.vicreg_terms(za, zb, gamma=1.0, eps=eps)
    assert [t.item() for t in got] == pytest.approx([inv, v_a + v_b, c_a + c_b], abs=1e-6)
    assert v_a == 0.0 and v_b == pytest.approx((1 - np.sqrt(1 / 3 + eps)) / 2)
    total = vr.vicreg_loss(za, zb)  # paper coefficients 25, 25, 1
    assert total.item() == pytest.approx(25 * inv + 25 * (v_a + v_b) + 1 * (c_a + c_b), abs=1e-5)
    # a collapsed embedding: invariance 0, the variance hinge at its maximum (1 per view), no covariance
    z = torch.ones(4, 3)
    inv0, var0, cov0 = vr.vicreg_terms(z, z)
    assert inv0.item() == 0.0 and var0.item() == pytest.approx(2 * (1 - np.sqrt(1e-4))) and cov0.item() == 0.0
    with pytest.raises(ValueError, match="at least 2 embeddings, got 1"):
        vr.vicreg_terms(za[:1], zb[:1])
    with pytest.raises(ValueError, match=r"expected two \[n, d\] embeddings"):
        vr.vicreg_terms(za, zb[:2])


def test_views_share_the_time_axis_and_differ():
    cfg = vr.VICRegPretrainConfig()
    wavs, wav_lens, _ = golden_batch((6400, 4800), garbage=False)
    frame_lens = torch.tensor([19, 14])
    (a, ma), (b, mb) = vr.make_views(cfg, wavs, wav_lens, frame_lens, torch.Generator().manual_seed(0))
    assert a.shape == b.shape == wavs.shape and ma.shape == mb.shape == (2, 19)
    assert not torch.equal(a, b) and not torch.equal(ma, mb)
    assert bool((a[1, 4800:] == 0).all()) and not bool(ma[1, 14:].any())
    # noise at 5-20 dB SNR: the noise power is 1-32 % of the signal's
    for x in (a, b):
        for i, n in enumerate(wav_lens.tolist()):
            ratio = float(((x[i, :n] - wavs[i, :n]) ** 2).mean() / (wavs[i, :n] ** 2).mean())
            assert 10 ** -2.05 < ratio < 10 ** -0.45, ratio


def test_bad_config_names_the_key():
    with pytest.raises(ValueError, match=r"model.family must be 'wav2vec2'.*got 'data2vec'"):
        vr.VICRegObjective(vr.VICRegPretrainConfig(model=tiny_config("data2vec")))
    with pytest.raises(ValueError, match=r"model.post_extract_proj must be False.*CNN width \(128\).*got True"):
        vr.VICRegObjective(vr.VICRegPretrainConfig(model=tiny_config("wav2vec2", post_extract_proj=True)))
    with pytest.raises(ValueError, match=r"snr_min_db \(30.0\) must be <= snr_max_db \(20.0\)"):
        vr.VICRegObjective(vr.VICRegPretrainConfig(snr_min_db=30.0))


def test_presets():
    cfg, loop = vr.preset("vicreg", "base")
    assert (cfg.sim_coeff, cfg.std_coeff, cfg.cov_coeff, cfg.gamma, cfg.eps) == (25.0, 25.0, 1.0, 1.0, 1e-4)
    assert (cfg.model.num_layers, cfg.model.hidden_size, cfg.model.extractor_mode, len(cfg.model.conv_layers)) == \
        (12, 768, "group_norm", 7)
    tiny, _ = vr.preset("vicreg", "tiny")
    assert tiny.model.hidden_size == 128 and vr.VICRegObjective.upstream_name == "wav2vec2"


# -- training on the tiny mini corpus ----------------------------------------------------------------

STEPS = 50
#: half the preset's 12 s batches: 50 steps in ~30 s on one thread
SETS = ["loop.batch_seconds=6"]


@pytest.fixture(scope="module")
def trained(mini_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pt-vicreg")
    summary = pretrain("vicreg", folder, data=mini_data, preset="tiny", max_steps=STEPS, progress=False, sets=SETS)
    return folder, summary


def test_loss_falls_without_collapse(trained, mini_data):
    folder, summary = trained
    first, last = loss_means(folder, STEPS)
    # measured (seed 0): 37.2 -> 30.8 (means of the first / last 5 steps, ratio 0.83)
    assert last < 0.9 * first, (first, last)
    assert summary["upstream"] == "wav2vec2"
    # no collapse: the embeddings (expander outputs, batch statistics as in training) keep a spread
    # in every dimension, and the variance term fell from its initial value
    obj = build_objective("vicreg", "tiny", 0)[0]
    wavs, wav_lens, _ = golden_batch((16000, 12000), garbage=False)
    feats, lens = waveform_frames(wavs, wav_lens)
    with torch.no_grad():
        z0 = obj.embeddings(feats, lens, torch.Generator().manual_seed(0))[0]
        obj.load_state_dict(torch.load(folder / "checkpoints" / "last.pt", weights_only=True)["model"])
        za, zb, _, _ = obj.embeddings(feats, lens, torch.Generator().manual_seed(0))
    std0, std = z0.std(0), za.std(0)
    print("per-dim std before / after:", float(std0.median()), float(std.min()), float(std.median()))
    assert float(std.min()) > 0.2 and float(std.median()) > float(std0.median()) + 0.1, \
        (float(std0.median()), float(std.min()), float(std.median()))


def _peer(path):
    from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Config, Wav2Vec2Model

    ckpt = torch.load(path, weights_only=False)
    cfg = {k: v for k, v in ckpt["cfg"]["model"].items() if k != "_name"}
    model = Wav2Vec2Model(Wav2Vec2Config(**cfg))
    missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
    assert unexpected == []
    # only what VICReg does not train is missing: wav2vec 2.0's quantizer and its projections
    assert missing and all(k.startswith(("quantizer.", "project_q.", "final_proj.")) for k in missing), missing
    return model.eval(), ckpt


def test_checkpoint_round_trips_through_both_loaders(trained):
    folder, _ = trained
    path = folder / "vicreg.ckpt"
    ours = build_upstream("wav2vec2", ckpt=path)
    assert ours.source_format == "fairseq" and ours.config.normalize is False
    assert ours.config.extractor_mode == "group_norm"
    last = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key, value in ours.model.state_dict().items():
        assert torch.equal(value, last[f"model.{key}"]), key
    peer, ckpt = _peer(path)
    assert ckpt["cfg"]["model"]["_name"] == "wav2vec2" and ckpt["cfg"]["task"]["normalize"] is False
    assert not any(k.startswith("expander") for k in ckpt["model"])
    P.assert_matches_peer(ours, peer, "wav2vec2", False, num_states=5)


# -- resume -------------------------------------------------------------------------------------------


def test_resume_continues_exactly(mini_data, tmp_path):
    a, b = assert_resume_exact("vicreg", mini_data, tmp_path, steps=4)
    a, b = a["model"], b["model"]
    assert "expander.net.1.running_var" in a  # BatchNorm statistics resume too
