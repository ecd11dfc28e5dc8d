"""``superb pretrain --objective cpc``: the InfoNCE loss by hand, the negatives, training on the tiny
mini corpus, the export through our ``cpc`` loader and s3prl's CPC expert, exact resume, bad
settings."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import assert_resume_exact, loss_means
from golden_utils import assert_states_close, golden_batch, per_utterance
from superb.upstream import build_upstream
from superb.upstream.cpc.model import CPCConfig
from superb.upstream.pretrain import cpc as cpc_obj
from superb.upstream.pretrain.loop import build_objective, pretrain

# -- the loss by hand ------------------------------------------------------------------------------


def test_cpc_loss_by_hand():
    rng = np.random.default_rng(0)
    K, B, T, D, N = 2, 2, 6, 3, 2
    W = T - K
    z = rng.normal(size=(B, T, D)).astype(np.float32)
    pred = rng.normal(size=(K, B, W, D)).astype(np.float32)
    neg = rng.integers(0, B * T, size=(B, W, N))
    window = [4, 2]  # utterance 1 has 4 frames: queries t = 0, 1 only
    flat = z.reshape(B * T, D)
    step_losses = []
    for k in range(1, K + 1):
        terms = []
        for b in range(B):
            for t in range(window[b]):
                cands = [z[b, t + k]] + [flat[j] for j in neg[b, t]]  # the positive at index 0
                scores = [float(np.mean(pred[k - 1, b, t] * c)) for c in cands]
                terms.append(-scores[0] + math.log(sum(math.exp(s) for s in scores)))
        assert len(terms) == 6
        step_losses.append(sum(terms) / len(terms))
    expected = sum(step_losses) / K  # averaged over the steps
    got = cpc_obj.cpc_loss(torch.from_numpy(pred), torch.from_numpy(z), torch.from_numpy(neg), torch.tensor(window))
    assert got.item() == pytest.approx(expected, abs=1e-5)
    # queries past the window (padding) do not count, whatever their predictions
    pred[:, 1, 2:] = 1e3
    got = cpc_obj.cpc_loss(torch.from_numpy(pred), torch.from_numpy(z), torch.from_numpy(neg), torch.tensor(window))
    assert got.item() == pytest.approx(expected, abs=1e-5)
    # one step: a perfect, confident prediction has a loss near 0; the same score everywhere log(1 + N)
    zz = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]][None]  # [1, 6, 3], frame t on channel t % 3
    perfect = 300 * zz[:, 1:][None]  # [K=1, 1, 5, 3]: predicts z[t + 1] exactly
    negs = np.array([[[(t + 2) % 6, (t + 3) % 6] for t in range(5)]])  # other channels than z[t + 1]
    got = cpc_obj.cpc_loss(torch.from_numpy(perfect), torch.from_numpy(zz), torch.from_numpy(negs), torch.tensor([5]))
    assert got.item() < 1e-3
    got = cpc_obj.cpc_loss(torch.zeros(1, 1, 5, 3), torch.from_numpy(zz), torch.from_numpy(negs), torch.tensor([5]))
    assert got.item() == pytest.approx(math.log(3), abs=1e-6)
    with pytest.raises(ValueError, match="no utterance of the batch has more than n_predicts=2"):
        cpc_obj.cpc_loss(torch.from_numpy(pred), torch.from_numpy(z), torch.from_numpy(neg), torch.tensor([0, 0]))


def test_negatives_come_from_valid_frames_of_the_whole_batch():
    lengths = torch.tensor([7, 3])
    idx = cpc_obj.draw_negatives(lengths, 10, 5, 400, torch.Generator().manual_seed(0))
    assert idx.shape == (2, 5, 400)
    b, t = idx // 10, idx % 10
    assert bool((t < lengths[b]).all())  # never padding
    seen = set(idx.view(-1).tolist())
    assert seen == {*range(7), *range(10, 13)}  # every valid frame of both utterances is drawn


def test_objective_loss_is_infonce_of_its_heads():
    cfg = cpc_obj.CPCPretrainConfig(model=CPCConfig(hiddenEncoder=8, hiddenGar=6, nLevelsGRU=1),
                                    n_predicts=3, n_negatives=5, prediction_dropout=0.0)
    torch.manual_seed(0)
    obj = cpc_obj.CPCObjective(cfg)
    assert all(float(c.bias.detach().abs().max()) == 0.0 for c in obj.model.convs)
    wavs, wav_lens, _ = golden_batch((3200, 2100))
    feats, lengths = obj.features(wavs, wav_lens)
    assert feats.shape == (2, 20, 160) and lengths.tolist() == [20, 13]
    loss = obj.loss(feats, lengths, torch.Generator().manual_seed(3))
    out = obj.model(*cpc_obj.frames_to_waveform(feats, lengths))
    z, c = out.hidden_states
    assert out.lengths.tolist() == [20, 13]
    neg = cpc_obj.draw_negatives(out.lengths, 20, 17, 5, torch.Generator().manual_seed(3))
    preds = torch.stack([h(c[:, :17]) for h in obj.heads])
    expected = cpc_obj.cpc_loss(preds, z, neg, torch.tensor([17, 10]))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert 1.0 < loss.item() < math.log(6) + 0.5


# -- training on the tiny mini corpus ----------------------------------------------------------------


STEPS = 60


@pytest.fixture(scope="module")
def trained(mini_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pt-cpc")
    return folder, pretrain("cpc", folder, data=mini_data, preset="tiny", max_steps=STEPS, progress=False)


def test_loss_falls_on_mini_corpus(trained):
    # starts at log(1 + 32) = 3.497 (all scores alike); measured, seed 0: mean of the first 5 steps
    # 3.496, of steps 56-60 3.19 (about 2.45 after 150 steps)
    folder, summary = trained
    first, last = loss_means(folder, STEPS)
    assert first == pytest.approx(math.log(33), abs=0.02)
    assert last < first - 0.15, (first, last)
    assert summary["steps"] == STEPS and summary["upstream"] == "modified_cpc"


def test_checkpoint_round_trips_through_both_loaders(trained):
    folder, _ = trained
    path = folder / "cpc.ckpt"
    ours = build_upstream("cpc", path)
    last = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key, value in ours.state_dict().items():
        assert torch.equal(value, last[f"model.{key}"]), key
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["config"]["nPredicts"] == 12 and ckpt["config"]["negativeSamplingExt"] == 32
    heads = ckpt["cpcCriterion"]
    assert sorted(heads) == sorted(f"wPrediction.predictors.{k}.weight" for k in range(12))
    assert torch.equal(heads["wPrediction.predictors.11.weight"], last["heads.11.weight"])
    expert_mod = pytest.importorskip("s3prl.upstream.cpc.expert")
    expert = expert_mod.UpstreamExpert(str(path))
    expert.eval()

    def ref(wavs):
        with torch.no_grad():
            return list(expert(wavs)["hidden_states"])

    wavs, wav_lens, raw = golden_batch((9137, 5003, 12011))
    with torch.no_grad():
        out = ours(wavs, wav_lens)
    expected = per_utterance(ref, raw)
    ref_lens = [int(ref([w])[0].shape[1]) for w in raw]
    assert len(out.hidden_states) == len(expected) == 2
    worst = assert_states_close(out.hidden_states, expected, out.lengths, ref_lens, what="pretrained cpc")
    assert worst <= 1e-4
    # the trained encoder is not the constant-frame initial one
    assert float(out.hidden_states[0][0, :50].std(0).mean()) > 0.05
    from superb.upstream.inspection import inspect_checkpoint

    assert inspect_checkpoint(path)["upstream"] == "modified_cpc"


# -- resume -----------------------------------------------------------------------------------------


def test_resume_continues_exactly(mini_data, tmp_path, monkeypatch):
    _, loop = cpc_obj.PRESETS["tiny"]
    small = cpc_obj.CPCPretrainConfig(model=CPCConfig(hiddenEncoder=16, hiddenGar=16, nLevelsGRU=1),
                                      n_predicts=4, n_negatives=8, prediction_dropout=0.3)  # dropout: torch RNG
    monkeypatch.setitem(cpc_obj.PRESETS, "tiny", (small, loop))
    a, b = assert_resume_exact("cpc", mini_data, tmp_path, steps=6)


# -- bad settings ------------------------------------------------------------------------------------


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"predictor 'transformer' is not implemented"):
        build_objective("cpc", "tiny", 0, ["predictor=transformer"])
    with pytest.raises(ValueError, match=r"n_negatives must be >= 1, got 0"):
        build_objective("cpc", "tiny", 0, ["n_negatives=0"])
    with pytest.raises(ValueError, match=r"normMode 'batchNorm' cannot be pretrained"):
        build_objective("cpc", "tiny", 0, ["model.normMode=batchNorm"])
    with pytest.raises(ValueError, match=r"arMode 'transformer' is not supported"):
        build_objective("cpc", "tiny", 0, ["model.arMode=transformer"])
    obj, cfg, loop = build_objective("cpc", "base", 0)
    assert (cfg.model.hiddenEncoder, cfg.model.hiddenGar, cfg.model.nLevelsGRU, cfg.n_predicts, cfg.n_negatives,
            loop.lr, loop.max_frames * cpc_obj.HOP) == (256, 256, 1, 12, 128, 2e-4, 20480)
