"""``superb pretrain --objective data2vec``: the loss, targets and EMA by hand, training on the
tiny mini corpus, the exported fairseq checkpoint through our loader and s3prl's
fairseq-equivalent ``Data2VecAudioModel`` (padded batch and alone), exact resume."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from conftest import assert_resume_exact, loss_means
import w2v2_peers as P
from golden_utils import golden_batch
from superb.upstream import build_upstream
from superb.upstream.pretrain import data2vec as d2v
from superb.upstream.pretrain.loop import pretrain
from superb.upstream.pretrain.masked import tiny_config

warnings.filterwarnings("ignore", category=FutureWarning)

# -- pure functions by hand -----------------------------------------------------------------------


def test_regression_loss_by_hand():
    pred = torch.tensor([[[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0]],
                         [[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    target = torch.zeros(2, 3, 4)
    target[0, 0] = torch.tensor([0.0, 0.0, 1.0, 0.0])
    target[1, 1] = torch.tensor([0.0, 0.0, 0.0, 3.0])
    mask = torch.tensor([[True, False, False], [False, True, True]])
    # masked frames: (0,0): 1 + 4 + 1 + 0 = 6; (1,1): 4 + 0 + 0 + 9 = 13; (1,2): 0
    # mean of the per-frame sums, / sqrt(4) = 2: (6 + 13 + 0) / 3 / 2
    expected = (6 + 13 + 0) / 3 / 2
    assert d2v.regression_loss(pred, target, mask).item() == pytest.approx(expected)
    # unmasked frames (e.g. the 5s) do not count; no masked frame: zero
    assert d2v.regression_loss(pred, target, torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0
    with pytest.raises(ValueError, match=r"regression_loss: shapes"):
        d2v.regression_loss(pred, target[:, :2], mask)


def test_instance_norm_over_valid_frames_by_hand():
    x = torch.tensor([[[1.0, 10.0], [3.0, 10.0], [5.0, 40.0]],
                      [[2.0, -1.0], [4.0, 1.0], [99.0, 99.0]]])  # utterance 1: 2 valid frames
    out = d2v.instance_norm_valid(x, torch.tensor([3, 2]), eps=0.0)
    # utterance 0, channel 0: mean 3, biased var 8/3; channel 1: mean 20, var 200
    s0 = math.sqrt(8 / 3)
    assert out[0, :, 0].tolist() == pytest.approx([-2 / s0, 0.0, 2 / s0])
    assert out[0, :, 1].tolist() == pytest.approx([-10 / math.sqrt(200), -10 / math.sqrt(200), 20 / math.sqrt(200)])
    # utterance 1: mean 3 / 0, var 1 / 1 over its two frames; the padding frame is 0 and ignored
    assert out[1].flatten().tolist() == pytest.approx([-1.0, -1.0, 1.0, 1.0, 0.0, 0.0])
    # equals torch's instance norm on the unpadded utterance
    ref = torch.nn.functional.instance_norm(x[1:, :2].transpose(1, 2)).transpose(1, 2)
    assert torch.allclose(d2v.instance_norm_valid(x, torch.tensor([3, 2]))[1:, :2], ref, atol=1e-6)


def test_ema_decay_schedule():
    # base: 0.999 -> 0.9999 over 30k updates, then constant (fairseq's get_annealed_rate)
    f = lambda s: d2v.ema_decay_at(s, 0.999, 0.9999, 30_000)  # noqa: E731
    assert f(0) == pytest.approx(0.999)
    assert f(15_000) == pytest.approx(0.99945)
    assert f(30_000) == f(400_000) == 0.9999
    cfg, _ = d2v.preset("data2vec", "base")
    assert (cfg.ema_decay, cfg.ema_end_decay, cfg.ema_anneal_end_step, cfg.average_top_k_layers,
            cfg.mask_prob, cfg.mask_length) == (0.999, 0.9999, 30_000, 8, 0.65, 10)
    assert (cfg.model.num_layers, cfg.model.hidden_size, cfg.model.pos_conv_depth, cfg.model.normalize) == \
        (12, 768, 5, True)


def _small_objective(**overrides):
    cfg = d2v.Data2VecPretrainConfig(model=tiny_config("data2vec", num_layers=2, hidden_size=32, num_heads=2,
                                                       ffn_dim=64, pos_conv_groups=4),
                                     average_top_k_layers=2, ema_decay=0.9, ema_end_decay=0.99,
                                     ema_anneal_end_step=10, mask_length=3, **overrides)
    torch.manual_seed(0)
    return d2v.Data2VecObjective(cfg)


def _rows(lens=(4800, 3520), seed=0):
    wavs, wav_lens, _ = golden_batch(lens, seed=seed, garbage=False)
    return d2v.waveform_frames(wavs, wav_lens)


def test_teacher_gets_no_gradients_and_ema_is_the_formula():
    obj = _small_objective()
    obj.train()
    feats, lengths = _rows()
    loss = obj.loss(feats, lengths, torch.Generator().manual_seed(1))
    assert loss.item() > 0
    loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in obj.teacher.parameters())
    assert obj.model.encoder.layers[0].feed_forward.fc1.weight.grad.abs().sum() > 0
    assert obj.final_proj.weight.grad.abs().sum() > 0 and obj.mask_emb.grad.abs().sum() > 0
    # the teacher is in the state dict (exact resume)
    assert any(k.startswith("teacher.layers.1.") for k in obj.state_dict())
    # move the student, then one update at step 4: tau = 0.99 - 0.09 * (1 - 4/10) = 0.936
    with torch.no_grad():
        for p in obj.model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    before = {k: v.clone() for k, v in obj.teacher.state_dict().items()}
    student = dict(obj.model.encoder.state_dict())
    tau = 0.99 - 0.09 * (1 - 4 / 10)
    assert obj.decay(4) == pytest.approx(tau)
    obj.after_step(4)
    after = obj.teacher.state_dict()
    for k in before:
        if k.startswith("pos_conv."):  # ema_layers_only: copied from the student
            assert torch.equal(after[k], student[k]), k
        else:
            assert torch.allclose(after[k], tau * before[k] + (1 - tau) * student[k], atol=1e-7), k
            assert not torch.equal(after[k], before[k]), k
    # after the ramp: the end decay
    assert obj.decay(10) == obj.decay(500) == 0.99


def test_targets_are_the_teachers_normalised_ffn_outputs():
    obj = _small_objective()
    obj.eval()
    feats, lengths = _rows()
    wavs, wav_lens = d2v.prepare_waveforms(obj.cfg.model, feats, lengths)
    frames = obj.model.extract(wavs, wav_lens)
    x = obj.model.feature_projection(frames.features)
    got = obj.targets(x, frames)
    # by hand: the teacher's layers, the FFN output before the residual of each (post-LN layers)
    t = obj.teacher
    h = x.masked_fill(frames.frame_padding[..., None], 0.0) if frames.frame_padding is not None else x
    h = t.layer_norm(h + t.pos_conv(h, frames.frame_padding))
    ffn = []
    for layer in t.layers:
        a = layer.attention_layer_norm(h + layer.attention(h, frames.attention_mask))
        f = layer.feed_forward(a)
        ffn.append(f)
        h = layer.final_layer_norm(a + f)
    expected = sum(d2v.instance_norm_valid(f, frames.lengths) for f in ffn[-2:]) / 2
    for b, n in enumerate(frames.lengths.tolist()):
        assert torch.allclose(got[b, :n], expected[b, :n], atol=1e-5)
        # per channel: zero mean and unit variance over the valid frames of each layer -> the mean
        # of two such layers has zero mean
        assert got[b, :n].mean(0).abs().max() < 1e-4
    # not the SUPERB hidden state (the layer output after its LayerNorm)
    assert not torch.allclose(got[0, :5], d2v.instance_norm_valid(h, frames.lengths)[0, :5], atol=1e-2)


def test_bad_config_names_the_key():
    with pytest.raises(ValueError, match=r"average_top_k_layers must be in \[1, model.num_layers=4\], got 8"):
        d2v.Data2VecObjective(d2v.Data2VecPretrainConfig())
    with pytest.raises(ValueError, match=r"model.family must be 'data2vec', got 'wav2vec2'"):
        d2v.Data2VecObjective(d2v.Data2VecPretrainConfig(model=tiny_config("wav2vec2"), average_top_k_layers=2))


# -- training on the tiny mini corpus ----------------------------------------------------------------

STEPS = 40


@pytest.fixture(scope="module")
def trained(mini_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pt-data2vec")
    summary = pretrain("data2vec", folder, data=mini_data, preset="tiny", max_steps=STEPS, progress=False)
    return folder, summary


def test_loss_falls_on_mini_corpus(trained):
    folder, summary = trained
    first, last = loss_means(folder, STEPS)
    # measured (seed 0): 6.59 -> 2.39 (means of the first / last 5 steps, ratio 0.36)
    assert last < 0.6 * first, (first, last)
    assert summary["upstream"] == "data2vec" and summary["steps"] == STEPS


def _peer(path):
    from s3prl.upstream.data2vec.data2vec_model import Data2VecAudioConfig, Data2VecAudioModel

    ckpt = torch.load(path, weights_only=False)
    cfg = {k: v for k, v in ckpt["cfg"]["model"].items() if k != "_name"}
    model = Data2VecAudioModel(Data2VecAudioConfig(**cfg))
    state = dict(ckpt["model"])
    ema = state.pop("_ema")
    model.load_state_dict(state, strict=True)
    return model.eval(), ckpt, ema


def test_checkpoint_round_trips_through_both_loaders(trained):
    folder, _ = trained
    path = folder / "data2vec.ckpt"
    ours = build_upstream("data2vec", ckpt=path)
    assert ours.source_format == "fairseq" and ours.config.normalize is True
    last = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key, value in ours.model.state_dict().items():
        assert torch.equal(value, last[f"model.{key}"]), key
    peer, ckpt, ema = _peer(path)
    assert ckpt["cfg"]["model"]["_name"] == "data2vec_audio" and ckpt["cfg"]["task"]["normalize"] is True
    # the teacher, under fairseq's EMA names (relative to the encoder)
    assert torch.equal(ema["layers.0.fc1.weight"], last["teacher.layers.0.feed_forward.fc1.weight"])
    assert torch.equal(ema["pos_conv.0.0.weight"], last["teacher.pos_conv.layers.0.conv.weight"])
    P.assert_matches_peer(ours, peer, "data2vec", True, num_states=5)


# -- resume -------------------------------------------------------------------------------------------


def test_resume_continues_exactly(mini_data, tmp_path):
    a, b = assert_resume_exact("data2vec", mini_data, tmp_path, steps=4)
    a, b = a["model"], b["model"]
    assert any(k.startswith("teacher.") for k in a)
    # the teacher is an average, not the student
    assert not torch.equal(a["teacher.layers.0.feed_forward.fc1.weight"],
                           a["model.encoder.layers.0.feed_forward.fc1.weight"])
