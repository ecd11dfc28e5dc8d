"""``superb pretrain --objective best_rq``: the quantizer, the masking and the loss by hand, training
on the tiny mini corpus, the export through our ``best_rq`` loader and speechbrain 1.x's own modules
(from the SpeechBrain folder it converts to), exact resume, bad settings."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from conftest import assert_resume_exact, loss_means
from golden_utils import assert_states_close, golden_batch
from superb.upstream import build_upstream
from superb.upstream.best_rq import SPEECHBRAIN_DROP, SPEECHBRAIN_KEY_MAP
from superb.upstream.best_rq.model import BestRQConfig
from superb.upstream.pretrain import best_rq as brq
from superb.upstream.pretrain.loop import build_objective, pretrain
from superb.upstream.state_dict import map_keys

# -- quantizer, masking and loss by hand -----------------------------------------------------------


def test_quantize_by_hand_and_against_speechbrain():
    rng = np.random.default_rng(0)
    B, T, D, s, V, d = 2, 7, 3, 2, 5, 2
    feats = rng.normal(size=(B, T, D)).astype(np.float32)
    lengths = [7, 5]
    feats[1, 5:] = 0.0
    P = rng.normal(size=(s * D, d)).astype(np.float32)
    CB = rng.normal(size=(V, d)).astype(np.float32)
    CB /= np.linalg.norm(CB, axis=1, keepdims=True)
    padded = np.concatenate([feats, np.zeros((B, 1, D), np.float32)], axis=1)  # to a multiple of 2
    expected = np.zeros((B, 4), dtype=np.int64)
    for b in range(B):
        for g in range(4):
            v = padded[b, 2 * g:2 * g + 2].reshape(-1) @ P
            v = v / max(np.linalg.norm(v), 1e-12)  # a zero group stays zero (as F.normalize)
            expected[b, g] = int(np.argmin([np.linalg.norm(v - c) for c in CB]))
    idx, glens = brq.quantize(torch.from_numpy(feats), torch.tensor(lengths), torch.from_numpy(P),
                              torch.from_numpy(CB), s)
    assert idx.tolist() == expected.tolist() and glens.tolist() == [4, 3]
    assert len(set(expected.reshape(-1).tolist())) > 1
    quantisers = pytest.importorskip("speechbrain.nnet.quantisers")
    q = quantisers.RandomProjectionQuantizer(s * D, d, V)
    q.P.copy_(torch.from_numpy(P))
    q.CB.copy_(torch.from_numpy(CB))
    assert torch.equal(q(torch.from_numpy(padded).view(B, 4, s * D)), idx)


def test_group_mask_rule():
    lengths = torch.tensor([40, 17])
    counts = {0: set(), 1: set()}
    for seed in range(30):
        m = brq.group_mask(lengths, 40, 4, 0.15, 1, torch.Generator().manual_seed(seed))
        assert m.shape == (2, 10)
        assert not bool(m[1, 5:].any())  # ceil(17 / 4) = 5 groups
        for b in range(2):
            counts[b].add(int(m[b].sum()))
    # int(0.15 * n + u): 40 frames -> 6 spans of one group; 17 frames -> 2 or 3
    assert counts[0] == {6} and counts[1] == {2, 3}
    # paper-style spans of 10 groups: every masked run starts at a group and is 10 groups long
    m = brq.group_mask(torch.tensor([400]), 400, 4, 0.01, 10, torch.Generator().manual_seed(0))
    runs = np.diff(np.concatenate([[0], m[0].numpy().astype(int), [0]]))
    starts, ends = np.nonzero(runs == 1)[0], np.nonzero(runs == -1)[0]
    # int(0.01 * 400 + u) = 4 spans (overlapping spans merge into longer runs)
    assert len(starts) >= 1 and all(e - s >= 10 for s, e in zip(starts, ends))
    assert 10 <= int(m.sum()) <= 40


def test_best_rq_loss_by_hand():
    logits = np.array([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [1.0, 3.0, 0.0]]], dtype=np.float32)
    targets = np.array([[0, 2, 1]])
    masked = np.array([[True, False, True]])

    def ce(row, t):
        return -row[t] + math.log(sum(math.exp(v) for v in row))

    expected = (ce(logits[0, 0], 0) + ce(logits[0, 2], 1)) / 2
    got = brq.best_rq_loss(torch.from_numpy(logits), torch.from_numpy(targets), torch.from_numpy(masked))
    assert got.item() == pytest.approx(expected, abs=1e-6)
    assert got.item() == pytest.approx(0.1698, abs=1e-3)  # both terms are log(e^2 + 1 + e^-1) - 2
    with pytest.raises(ValueError, match="no masked frame"):
        brq.best_rq_loss(torch.from_numpy(logits), torch.from_numpy(targets), torch.zeros(1, 3, dtype=torch.bool))


def test_objective_masks_with_noise_and_predicts_the_clean_targets():
    cfg, _ = brq.preset("best_rq", "tiny")
    torch.manual_seed(0)
    obj = brq.BestRQObjective(cfg)
    wavs, wav_lens, _ = golden_batch((9137, 5003))
    feats, lengths = obj.features(wavs, wav_lens)
    assert lengths.tolist() == [58, 32] and feats.shape == (2, 58, 80)
    x, targets, masked = obj.mask_and_targets(feats, lengths, torch.Generator().manual_seed(1))
    frames = masked.repeat_interleave(4, 1)[:, :58] & (torch.arange(58)[None] < lengths[:, None])
    assert torch.equal(x[~frames], feats[~frames])  # unmasked frames and padding untouched
    noise = x[frames]
    assert noise.numel() > 1000 and float(noise.std()) == pytest.approx(0.1, rel=0.15)
    ref_targets, ref_lens = obj.model.targets(wavs, wav_lens)  # the upstream's own quantizer path
    for b in range(2):
        n = int(ref_lens[b])
        assert torch.equal(targets[b, :n], ref_targets[b, :n])
    loss = obj.loss(feats, lengths, torch.Generator().manual_seed(1))
    states, _ = obj.model.encode(x, lengths)
    expected = brq.best_rq_loss(obj.model.head(states[-1]), targets, masked)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert abs(loss.item() - math.log(256)) < 1.0  # a fresh head: near-uniform logits


# -- training on the tiny mini corpus ----------------------------------------------------------------


STEPS = 40


@pytest.fixture(scope="module")
def trained(mini_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pt-best_rq")
    return folder, pretrain("best_rq", folder, data=mini_data, preset="tiny", max_steps=STEPS, progress=False)


def test_loss_falls_on_mini_corpus(trained):
    # starts near log(256) = 5.55; measured, seed 0: mean of the first 5 steps 5.49, of steps 36-40 3.51
    folder, summary = trained
    first, last = loss_means(folder, STEPS)
    assert abs(first - math.log(256)) < 0.5
    assert last < first - 1.0, (first, last)
    assert summary["steps"] == STEPS and summary["upstream"] == "best_rq"


def _speechbrain_reference(folder, cfg):
    """SpeechBrain's own modules (as the recipe builds them) with the folder's weights."""
    sb_features = pytest.importorskip("speechbrain.lobes.features")
    sb_norm = pytest.importorskip("speechbrain.processing.features")
    sb_conv = pytest.importorskip("speechbrain.lobes.models.convolution")
    sb_asr = pytest.importorskip("speechbrain.lobes.models.transformer.TransformerASR")
    n_mels = cfg.n_mels
    cnn = sb_conv.ConvolutionFrontEnd(
        input_shape=(8, 10, n_mels), num_blocks=len(cfg.cnn_channels), num_layers_per_block=cfg.cnn_layers_per_block,
        out_channels=cfg.cnn_channels, kernel_sizes=cfg.cnn_kernels, strides=cfg.cnn_strides,
        residuals=cfg.cnn_residuals)
    f = n_mels
    for _ in cfg.cnn_strides:
        f = (f - 1) // 2 + 1
    transformer = sb_asr.TransformerASR(
        input_size=cfg.cnn_channels[-1] * f, tgt_vocab=cfg.codebook_size, d_model=cfg.d_model, nhead=cfg.nhead,
        num_encoder_layers=cfg.num_layers, num_decoder_layers=0, d_ffn=cfg.d_ffn, dropout=0.0,
        activation=torch.nn.GELU, conformer_activation=torch.nn.GELU, kernel_size=cfg.conv_kernel,
        encoder_module="conformer", attention_type="RelPosMHAXL", normalize_before=True, causal=False)
    wrapper = sb_asr.EncoderWrapper(transformer)
    model = torch.nn.ModuleList([cnn, wrapper])
    missing, unexpected = model.load_state_dict(torch.load(folder / "model.ckpt", weights_only=True), strict=False)
    assert unexpected == []
    assert missing and all(any(re.match(p, k) for p in SPEECHBRAIN_DROP) for k in missing), missing
    fbank = sb_features.Fbank(sample_rate=16000, n_fft=400, n_mels=n_mels)
    normalize = sb_norm.InputNormalization(norm_type="sentence")
    for m in (model, normalize):
        m.eval()

    @torch.no_grad()
    def states(wav):
        feats = normalize(fbank(wav[None]), torch.ones(1))
        src = cnn(feats)
        inputs = []
        hooks = [layer.register_forward_pre_hook(lambda mod, args, kwargs: inputs.append(args[0]), with_kwargs=True)
                 for layer in transformer.encoder.layers]
        out = wrapper(src, torch.ones(1))
        for h in hooks:
            h.remove()
        return inputs + [out]

    return states


def test_checkpoint_round_trips_through_both_loaders(trained, tmp_path):
    folder, _ = trained
    path = folder / "best_rq.ckpt"
    ours = build_upstream("best_rq", path)
    last = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key, value in ours.state_dict().items():  # the quantizer and the head included
        assert torch.equal(value, last[f"model.{key}"]), key
    assert {"model.quantizer_P", "model.quantizer_CB", "model.head.weight"} <= set(last)
    ckpt = torch.load(path, weights_only=True)
    # the exported names map back exactly onto ours
    sb_state = map_keys({k: v for k, v in ckpt["state_dict"].items() if k not in brq.NOT_IN_MODEL_CKPT},
                        brq.TO_SPEECHBRAIN_KEY_MAP)
    back = map_keys(sb_state, SPEECHBRAIN_KEY_MAP)
    assert sorted(back) == sorted(k for k in ckpt["state_dict"] if k not in brq.NOT_IN_MODEL_CKPT)
    sb_folder = brq.write_speechbrain_folder(ckpt, tmp_path / "save" / "CKPT+2026-01-01+00-00-00+00")
    theirs = build_upstream("best_rq", sb_folder)
    for key, value in ours.state_dict().items():
        assert torch.equal(value, theirs.state_dict()[key]), key
    wavs, wav_lens, raw = golden_batch((9137, 5003, 12011))
    with torch.no_grad():
        out = ours(wavs, wav_lens)
    ref = _speechbrain_reference(sb_folder, ours.config)
    per = [ref(w) for w in raw]
    expected = [torch.nn.utils.rnn.pad_sequence([p[i][0] for p in per], batch_first=True) for i in range(len(per[0]))]
    ref_lens = [p[0].shape[1] for p in per]
    assert len(out.hidden_states) == len(expected) == 3
    worst = assert_states_close(out.hidden_states, expected, out.lengths, ref_lens, what="pretrained best_rq")
    assert worst <= 1e-4
    # speechbrain's quantizer module with the exported buffers gives the upstream's targets
    quantisers = pytest.importorskip("speechbrain.nnet.quantisers")
    q = quantisers.RandomProjectionQuantizer(4 * 80, 16, 256)
    q.load_state_dict(torch.load(sb_folder / "quantizer.ckpt", weights_only=True))
    idx, lens = ours.targets(wavs, wav_lens)
    feats, _ = ours.features(wavs[:1, :9137], wav_lens[:1])
    feats = torch.nn.functional.pad(feats, (0, 0, 0, (-feats.shape[1]) % 4))
    assert torch.equal(q(feats.view(1, -1, 320))[0], idx[0, : int(lens[0])])
    from superb.upstream.inspection import inspect_checkpoint

    assert inspect_checkpoint(path)["upstream"] == "best_rq"


# -- resume -----------------------------------------------------------------------------------------


def test_resume_continues_exactly(mini_data, tmp_path, monkeypatch):
    _, loop = brq.PRESETS["tiny"]
    small = brq.BestRQPretrainConfig(model=BestRQConfig(cnn_channels=(4, 4), d_model=16, num_layers=1, nhead=2,
                                                        d_ffn=32, conv_kernel=3, codebook_size=32, codebook_dim=8))
    monkeypatch.setitem(brq.PRESETS, "tiny", (small, loop))
    a, b = assert_resume_exact("best_rq", mini_data, tmp_path, steps=6)
    # the frozen quantizer did not move
    c = a
    torch.manual_seed(3)
    fresh = brq.BestRQObjective(small)
    assert torch.equal(c["model"]["model.quantizer_CB"], fresh.model.quantizer_CB)
    assert torch.equal(c["model"]["model.quantizer_P"], fresh.model.quantizer_P)


# -- bad settings ------------------------------------------------------------------------------------


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"mask_prob must be in \(0, 1\], got 0.0"):
        build_objective("best_rq", "tiny", 0, ["mask_prob=0.0"])
    with pytest.raises(ValueError, match=r"stack_frames \(2\) must equal .* = 4"):
        build_objective("best_rq", "tiny", 0, ["model.stack_frames=2"])
    with pytest.raises(ValueError, match=r"mask_span must be >= 1, got 0"):
        build_objective("best_rq", "tiny", 0, ["mask_span=0"])
    _, cfg, loop = build_objective("best_rq", "base", 0)
    m = cfg.model
    assert (m.d_model, m.num_layers, m.nhead, m.d_ffn, m.codebook_size, m.codebook_dim, cfg.mask_prob,
            cfg.noise_std, loop.lr, loop.warmup_steps) == (576, 12, 8, 2048, 8192, 16, 0.15, 0.1, 8e-4, 25_000)
