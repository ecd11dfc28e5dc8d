"""``superb pretrain --objective wav2vec2``: the loss by hand, negatives, the Gumbel quantizer
(straight-through), the temperature schedule, training on the tiny mini corpus, the exported
fairseq checkpoint through our loader and the peer (s3prl 0.4.18's fairseq-equivalent
``Wav2Vec2Model``), exact resume, bad settings."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from conftest import assert_resume_exact, pretrain_log
import w2v2_peers as P
from superb.upstream import build_upstream, conv_output_lengths
from superb.upstream.pretrain import wav2vec2 as w2v
from superb.upstream.pretrain.loop import build_objective, pretrain
from superb.upstream.pretrain.masked import TINY_CONV_LAYERS

warnings.filterwarnings("ignore", category=FutureWarning)

# -- the loss by hand ------------------------------------------------------------------------------


def test_wav2vec2_loss_by_hand():
    # frame 0: c = (1, 0), q = (1, 1): cos 1/sqrt2; negatives (0, 1): cos 0, and (1, 1) = q: -inf
    # frame 1: c = (0, 2), q = (-1, 0): cos 0; negatives (0, 3): cos 1, (3, -4): cos -0.8
    pred = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    pos = torch.tensor([[1.0, 1.0], [-1.0, 0.0]])
    negs = torch.tensor([[[0.0, 1.0], [1.0, 1.0]], [[0.0, 3.0], [3.0, -4.0]]])
    kappa = 0.1
    ce0 = -(1 / math.sqrt(2)) / kappa + math.log(math.exp((1 / math.sqrt(2)) / kappa) + math.exp(0.0))
    ce1 = -0.0 + math.log(math.exp(0.0) + math.exp(1.0 / kappa) + math.exp(-0.8 / kappa))
    contrastive = (ce0 + ce1) / 2
    # quantizer logits of the 2 frames, G = 2 groups of V = 2: softmax rows chosen by their logs
    probs = np.array([[[0.8, 0.2], [0.5, 0.5]], [[0.4, 0.6], [0.1, 0.9]]])
    code_logits = torch.tensor(np.log(probs), dtype=torch.float32)
    ppl = 0.0
    for g in range(2):
        avg = probs[:, g].mean(0)  # group 0: (0.6, 0.4); group 1: (0.3, 0.7)
        ppl += math.exp(-sum(p * math.log(p + 1e-7) for p in avg))
    diversity = (4 - ppl) / 4
    feats = torch.tensor([[1.0, 2.0], [3.0, 0.0]])  # mean of squares 14 / 4
    expected = contrastive + 0.1 * diversity + 10 * 3.5
    terms = w2v.wav2vec2_loss(pred, pos, negs, code_logits, feats, kappa, 0.1, 10.0)
    assert terms.contrastive.item() == pytest.approx(contrastive, abs=1e-5)
    assert terms.diversity.item() == pytest.approx(diversity, abs=1e-6) and 0.04 < diversity < 0.06
    assert terms.penalty.item() == pytest.approx(3.5)
    assert terms.total.item() == pytest.approx(expected, abs=1e-4)
    logits = w2v.contrastive_logits(pred, pos, negs, kappa)
    assert logits[0, 2].item() == float("-inf") and torch.isfinite(logits[1]).all()
    # without the neg_is_pos rule the copy of the positive counts as a distractor
    kept = w2v.wav2vec2_loss(pred, pos, negs, code_logits, feats, kappa, 0.1, 10.0,
                             neg_is_pos=torch.zeros(2, 2, dtype=torch.bool))
    ce0_kept = -(1 / math.sqrt(2)) / kappa + math.log(2 * math.exp((1 / math.sqrt(2)) / kappa) + 1.0)
    assert kept.contrastive.item() == pytest.approx((ce0_kept + ce1) / 2, abs=1e-5)
    assert kept.contrastive.item() > terms.contrastive.item() + 0.3
    # no masked frames: only the penalty
    empty = w2v.wav2vec2_loss(pred[:0], pos[:0], negs[:0], code_logits[:0], feats)
    assert empty.total.item() == pytest.approx(35.0) and empty.contrastive.item() == 0.0


def test_diversity_extremes():
    # every frame on one codeword of each group: perplexity G -> (GV - G) / GV; uniform: ~0
    peaked = torch.full((5, 2, 4), -1e4)
    peaked[:, :, 1] = 0.0
    assert w2v.diversity_loss(peaked).item() == pytest.approx((8 - 2) / 8, abs=1e-5)
    assert w2v.diversity_loss(torch.zeros(5, 2, 4)).item() == pytest.approx(0.0, abs=1e-5)


def test_negatives_come_from_the_other_masked_frames_of_the_utterance():
    counts = [3, 5, 2]
    idx = w2v.sample_negatives(counts, 300, torch.Generator().manual_seed(0))
    assert idx.shape == (10, 300)
    starts = [0, 3, 8]
    for b, (s, n) in enumerate(zip(starts, counts)):
        for j in range(s, s + n):
            row = idx[j]
            assert bool(((row >= s) & (row < s + n)).all()), (b, j)
            assert not bool((row == j).any())
            assert set(row.tolist()) == set(range(s, s + n)) - {j}
    # uniform among the others: 4 others of utterance 1, 300 draws each
    freq = np.bincount((idx[3:8] - 3).reshape(-1).numpy(), minlength=5) / (5 * 300)
    assert np.allclose(freq, 0.2, atol=0.04)
    with pytest.raises(ValueError, match=r"needs >= 2 masked frames, got counts \[3, 1\]"):
        w2v.sample_negatives([3, 1], 4, torch.Generator())


# -- the quantizer ---------------------------------------------------------------------------------


def test_quantizer_shapes_and_straight_through():
    torch.manual_seed(0)
    q = w2v.GumbelQuantizer(input_dim=8, groups=2, num_vars=4, vq_dim=6)
    assert tuple(q.vars.shape) == (1, 8, 3) and tuple(q.weight_proj.weight.shape) == (8, 8)
    x = torch.randn(5, 8)
    logits = q.logits(x)
    assert logits.shape == (5, 2, 4)
    onehot = q.select(logits, tau=2.0, generator=torch.Generator().manual_seed(1))
    # the forward value is exactly one-hot per group
    assert set(onehot.detach().unique().tolist()) == {0.0, 1.0}
    assert torch.equal(onehot.detach().sum(-1), torch.ones(5, 2))
    again = q.select(logits, tau=2.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(onehot, again)  # the noise comes from the generator
    # the quantized vector concatenates the chosen entries of each group
    codes = onehot.argmax(-1)
    out = q.quantize(onehot)
    table = q.vars.detach().view(2, 4, 3)
    manual = torch.cat([table[0, codes[:, 0]], table[1, codes[:, 1]]], dim=1)
    assert out.shape == (5, 6) and torch.allclose(out.detach(), manual)
    # gradients reach the logits through the soft sample, the codebook only at chosen entries
    (out * torch.arange(6.0)).sum().backward()
    assert float(q.weight_proj.weight.grad.abs().sum()) > 0
    used = torch.zeros(8, dtype=torch.bool)
    used[codes[:, 0]] = True
    used[4 + codes[:, 1]] = True
    grad_rows = q.vars.grad[0].abs().sum(-1) > 0
    assert torch.equal(grad_rows, used)
    # evaluation: the arg-max, no noise
    assert torch.equal(q.select(logits, None, None).argmax(-1), logits.argmax(-1))
    assert w2v.code_perplexity(F_onehot([0, 0, 1, 1], 4)) == pytest.approx(2.0, abs=1e-5)


def F_onehot(indices, v):
    return torch.nn.functional.one_hot(torch.tensor(indices), v).float()[:, None, :]


def test_temperature_schedule_and_presets():
    base, loop = w2v.preset("wav2vec2", "base")
    assert (base.mask_prob, base.mask_length, base.latent_groups, base.latent_vars, base.final_dim) == (0.65, 10, 2, 320, 256)
    assert (base.num_negatives, base.logit_temp, base.diversity_weight, base.feature_penalty_weight) == (100, 0.1, 0.1, 10.0)
    assert tuple(base.latent_temp) == (2.0, 0.5, 0.999995) and base.feature_grad_mult == 0.1
    assert (base.model.hidden_size, base.model.num_layers, len(base.model.conv_layers)) == (768, 12, 7)
    assert (loop.lr, loop.warmup_steps, loop.max_steps) == (5e-4, 32_000, 400_000)
    torch.manual_seed(0)
    obj, cfg, _ = build_objective("wav2vec2", "tiny", 0)
    assert obj.temperature == 2.0
    obj.after_step(100)
    assert obj.temperature == pytest.approx(2.0 * 0.995 ** 100)
    assert int(obj.state_dict()["num_updates"]) == 100  # resumes with the schedule
    obj.after_step(1000)
    assert obj.temperature == 0.5
    assert cfg.model.conv_layers == TINY_CONV_LAYERS and obj.hop == 320
    assert obj.model.feature_projection.projection is None  # CNN as wide as the transformer


def test_bad_settings_name_the_field():
    cfg, _ = w2v.preset("wav2vec2", "tiny")
    for key, value, pattern in (("final_dim", 63, r"final_dim 63 is not divisible by latent_groups 2"),
                                ("mask_prob", 1.5, r"mask_prob must be in \(0, 1\], got 1.5"),
                                ("num_negatives", 0, r"num_negatives must be a positive integer, got 0"),
                                ("latent_temp", (0.5, 2.0, 0.9), r"latent_temp needs 0 < floor <= start"),
                                ("logit_temp", -1.0, r"logit_temp must be a positive number, got -1.0")):
        bad = w2v.preset("wav2vec2", "tiny")[0]
        setattr(bad, key, value)
        with pytest.raises(ValueError, match=pattern):
            w2v.build("wav2vec2", bad)
    with pytest.raises(ValueError, match=r"model.family must be 'wav2vec2', got 'hubert'"):
        w2v.build("wav2vec2", w2v.Wav2Vec2PretrainConfig(model=cfg.model.replace(family="hubert")))
    with pytest.raises(ValueError, match=r"model.post_extract_proj must be False \(fairseq has the projection"):
        w2v.build("wav2vec2", w2v.Wav2Vec2PretrainConfig(model=cfg.model.replace(post_extract_proj=True)))
    with pytest.raises(ValueError, match=r"--set latent_vars=many: expected a value like 32"):
        build_objective("wav2vec2", "tiny", 0, ["latent_vars=many"])


def test_objective_masks_quantizes_and_contrasts():
    torch.manual_seed(0)
    obj, cfg, _ = build_objective("wav2vec2", "tiny", 0, ["num_negatives=5"])
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(2, 60, 320, generator=g) * 0.1
    lens = torch.tensor([60, 41])
    obj.train()
    terms = obj.loss_terms(rows, lens, torch.Generator().manual_seed(3))
    stats = obj.last_stats
    # chance level of 1 positive among 5 negatives is log 6; the weighted terms add up
    assert 1.0 < terms.contrastive.item() < 4.0
    assert terms.total.item() == pytest.approx(terms.contrastive.item() + 0.1 * terms.diversity.item()
                                               + 10 * terms.penalty.item(), rel=1e-5)
    frames = conv_output_lengths(lens * 320, [(k, s) for _, k, s in TINY_CONV_LAYERS])
    assert stats["masked_frames"] <= int(frames.sum()) and stats["masked_frames"] >= 2 * 10
    assert 1.0 <= stats["code_perplexity"] <= 64 and stats["temperature"] == 2.0
    # the same generator state gives the same loss (masks, noise and negatives all come from it)
    again = obj.loss_terms(rows, lens, torch.Generator().manual_seed(3))
    assert again.total.item() == terms.total.item()
    terms.total.backward()
    for name in ("mask_emb", "quantizer.vars", "quantizer.weight_proj.weight", "project_q.weight",
                 "final_proj.weight", "model.feature_extractor.conv_layers.0.conv.weight"):
        assert float(dict(obj.named_parameters())[name].grad.abs().sum()) > 0, name
    # one codeword for every frame: every negative equals its positive and is left out, so the
    # contrastive term is exactly 0 (without the rule it would be log 6: six equal logits)
    obj.eval()
    with torch.no_grad():
        obj.quantizer.weight_proj.weight.zero_()
        obj.quantizer.weight_proj.bias.copy_(torch.arange(64.0) % 32)
    same = obj.loss_terms(rows, lens, torch.Generator().manual_seed(3))
    assert same.contrastive.item() == 0.0 and obj.last_stats["code_perplexity"] == pytest.approx(2.0, abs=1e-4)


# -- training on the tiny mini corpus ----------------------------------------------------------------


STEPS = 40
# measured (40 steps, seeds 0 / 1 / 2): the contrastive term 3.14 / 3.16 / 3.12 over the first 5 steps
# -> 2.92 / 2.90 / 2.85 over the last 10; chance is log 21 = 3.04
CONTRASTIVE_DROP = 0.06


@pytest.fixture(scope="module")
def trained(mini_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pt-wav2vec2")
    stats, original = [], w2v.Wav2Vec2Objective.loss

    def recording(self, feats, lengths, generator):  # the loss terms of every step
        loss = original(self, feats, lengths, generator)
        stats.append(dict(self.last_stats))
        return loss

    w2v.Wav2Vec2Objective.loss = recording
    try:
        summary = pretrain("wav2vec2", folder, data=mini_data, preset="tiny", max_steps=STEPS, progress=False,
                           sets=["loop.warmup_steps=5", "loop.batch_seconds=8"])
    finally:
        w2v.Wav2Vec2Objective.loss = original
    return folder, summary, stats


def test_loss_falls_on_mini_corpus(trained):
    folder, summary, stats = trained
    lines = pretrain_log(folder)
    assert [l["step"] for l in lines] == list(range(1, STEPS + 1))
    assert [l["loss"] for l in lines] == pytest.approx(
        [s["contrastive"] + 0.1 * s["diversity"] + 10 * s["penalty"] for s in stats], rel=1e-5)
    first = np.mean([l["loss"] for l in lines[:5]])
    last = np.mean([l["loss"] for l in lines[-5:]])
    assert last < first - 0.25, (first, last)
    # the contrastive term itself falls below chance (1 positive among 20 negatives: log 21)
    start = np.mean([s["contrastive"] for s in stats[:5]])
    contrastive = np.mean([s["contrastive"] for s in stats[-10:]])
    assert contrastive < math.log(21) - CONTRASTIVE_DROP and contrastive < start - 0.15, (start, contrastive)
    assert stats[-1]["code_perplexity"] > 8  # no collapse onto a few codewords (of 64)
    assert summary["steps"] == STEPS and summary["upstream"] == "wav2vec2"
    assert (folder / "wav2vec2.ckpt").is_file()


def _peer(path):
    from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Config, Wav2Vec2Model

    ckpt = torch.load(path, weights_only=True)
    fields = {k: v for k, v in ckpt["cfg"]["model"].items() if k != "_name"}
    model = Wav2Vec2Model(Wav2Vec2Config(**fields))
    model.load_state_dict(ckpt["model"], strict=True)  # every weight, pretraining ones included
    return model.eval(), ckpt


def test_checkpoint_round_trips_through_both_loaders(trained):
    folder, _, _ = trained
    path = folder / "wav2vec2.ckpt"
    peer, ckpt = _peer(path)
    last = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)["model"]
    # the pretraining weights travel under fairseq's names, bit for bit
    for ours, theirs in (("quantizer.vars", "quantizer.vars"), ("mask_emb", "mask_emb"),
                         ("project_q.weight", "project_q.weight"), ("final_proj.bias", "final_proj.bias"),
                         ("quantizer.weight_proj.weight", "quantizer.weight_proj.weight")):
        assert torch.equal(ckpt["model"][theirs], last[ours]), ours
    assert ckpt["cfg"]["model"]["latent_vars"] == 32 and ckpt["cfg"]["model"]["final_dim"] == 64
    upstream = build_upstream("wav2vec2", ckpt=path)
    for key, value in upstream.model.state_dict().items():
        assert torch.equal(value, last[f"model.{key}"]), key
    from superb.upstream.wav2vec2.loading import read_checkpoint

    assert {"quantizer.vars", "project_q.weight", "final_proj.weight", "mask_emb"} <= set(read_checkpoint(path).dropped)
    wavs, lens = P.batch(lens=[9137, 5003, 12011], seed=1)
    ref_lens = conv_output_lengths(lens, [(k, s) for _, k, s in TINY_CONV_LAYERS])
    # a padded batch: the peer's padded behaviour (padding="peer"), every layer
    with torch.no_grad():
        out = build_upstream("wav2vec2", ckpt=path, padding="peer")(wavs, lens)
    ref = P.s3prl_hidden_states(peer, "wav2vec2", wavs, lens, False)
    assert len(out.hidden_states) == 5
    assert P.compare(out, ref, lens, ref_lens) <= 1e-4
    # default options: the padded batch equals the peer on each utterance alone
    with torch.no_grad():
        out = upstream(wavs, lens)
    for i, n in enumerate(lens.tolist()):
        alone = P.s3prl_hidden_states(peer, "wav2vec2", wavs[i:i + 1, :n], lens[i:i + 1], False)
        for layer, (a, b) in enumerate(zip(out.hidden_states, alone)):
            t = int(ref_lens[i])
            assert float((a[i, :t] - b[0, :t]).abs().max()) <= 1e-4, (layer, i)
    from superb.upstream.inspection import inspect_checkpoint

    assert inspect_checkpoint(path)["upstream"] == "wav2vec2"


# -- resume -----------------------------------------------------------------------------------------


def test_resume_continues_exactly(mini_data, tmp_path):
    sets = ["loop.batch_seconds=4", "model.num_layers=1"]
    a, b = assert_resume_exact("wav2vec2", mini_data, tmp_path, steps=6, sets=sets)
    assert int(a["model"]["num_updates"]) == int(b["model"]["num_updates"]) == 6
