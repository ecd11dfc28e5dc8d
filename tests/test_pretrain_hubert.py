"""``superb pretrain --objective hubert``: the masked-prediction loss by hand, the MFCC targets
and their alignment, k-means labels, training on the tiny mini corpus, iteration 2 from an
iteration-1 checkpoint, the exported fairseq checkpoint through our loader and s3prl's
fairseq-equivalent ``HubertModel``, exact resume, bad settings."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from conftest import assert_resume_exact, pretrain_log
from superb.upstream import build_upstream
from superb.upstream.pretrain import hubert as H
from superb.upstream.pretrain.fairseq_export import conv_feature_layers
from superb.upstream.pretrain.loop import build_objective, pretrain

# short runs on the 9-file tiny corpus: 1-thread friendly k-means, 8 s batches
FAST = ["kmeans_n_init=1", "kmeans_max_iter=20", "loop.batch_seconds=8.0", "loop.max_frames=150"]


# -- the loss by hand ------------------------------------------------------------------------------


def test_masked_prediction_loss_by_hand():
    # K = 3 cluster embeddings; 2 utterances of 3 frames; cosines chosen to be exact
    embs = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])  # directions +x, +y, -x
    proj = torch.tensor([[[2.0, 0.0], [0.0, 5.0], [1.0, 1.0]],
                         [[1.0, 2.0], [-4.0, 0.0], [7.0, 7.0]]])
    targets = torch.tensor([[0, 2, -1], [0, 2, -1]])  # -1: padding / no label
    mask = torch.tensor([[True, False, True], [True, True, False]])
    s = 1 / math.sqrt(5)
    # cosines: (2,0)->(1,0,-1); (0,5)->(0,1,0); (1,2)->(s,2s,-s); (-4,0)->(-1,0,1)
    def ce(cos, y, temp):
        z = [c / temp for c in cos]
        return math.log(sum(math.exp(v) for v in z)) - z[y]
    masked = [ce((1, 0, -1), 0, 0.1), ce((s, 2 * s, -s), 0, 0.1), ce((-1, 0, 1), 2, 0.1)]
    loss, stats = H.masked_prediction_loss(proj, embs, targets, mask, 0.1, 1.0, 0.0)
    assert loss.item() == pytest.approx(sum(masked) / 3, rel=1e-5)
    assert (stats["count_m"], stats["count_u"]) == (3, 1)
    # argmax: frame (2,0) -> 0 (right), (1,2) -> 1 (label 0: wrong), (-4,0) -> 2 (right)
    assert stats["acc_m"] == pytest.approx(2 / 3)
    assert stats["acc_u"] == pytest.approx(0.0)  # (0,5) -> 1, label 2
    # with an unmasked weight both kinds count in the denominator; another temperature
    loss, _ = H.masked_prediction_loss(proj, embs, targets, mask, 1.0, 1.0, 0.5)
    m1 = [ce((1, 0, -1), 0, 1.0), ce((s, 2 * s, -s), 0, 1.0), ce((-1, 0, 1), 2, 1.0)]
    u1 = [ce((0, 1, 0), 2, 1.0)]
    assert loss.item() == pytest.approx((sum(m1) + 0.5 * sum(u1)) / 4, rel=1e-5)
    # the unlabelled frames (huge values) change nothing; no labelled frame gives a zero loss
    proj2 = proj.clone()
    proj2[0, 2] = torch.tensor([-100.0, 3.0])
    assert H.masked_prediction_loss(proj2, embs, targets, mask)[0].item() == pytest.approx(sum(masked) / 3, rel=1e-5)
    none, _ = H.masked_prediction_loss(proj, embs, torch.full((2, 3), -1), mask)
    assert none.item() == 0.0
    with pytest.raises(ValueError, match="target 3 >= 3 clusters"):
        H.masked_prediction_loss(proj, embs, torch.tensor([[3, 0, 0], [0, 0, 0]]), mask)


# -- targets ------------------------------------------------------------------------------------------


def _clip(n=16000, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000.0
    return 0.3 * torch.sin(2 * math.pi * 220 * t) * torch.sin(2 * math.pi * 3 * t) + 0.02 * torch.randn(n, generator=g)


def test_mfcc_targets_are_kaldi_mfcc_with_deltas():
    import torchaudio

    wav = _clip()
    feats = H.mfcc39(wav)
    assert feats.shape == (1 + (16000 - 400) // 160, 39)  # 98 frames at 100 Hz
    mfcc = torchaudio.compliance.kaldi.mfcc(wav[None], sample_frequency=16000, use_energy=False)
    assert torch.equal(feats[:, :13], mfcc)
    # deltas by the regression formula (window 2), edges replicated
    c = torch.cat([mfcc[:1], mfcc[:1], mfcc, mfcc[-1:], mfcc[-1:]])
    delta = ((c[3:-1] - c[1:-3]) + 2 * (c[4:] - c[:-4])) / 10.0
    assert torch.allclose(feats[:, 13:26], delta, atol=1e-4)
    d = torch.cat([delta[:1], delta[:1], delta, delta[-1:], delta[-1:]])
    ddelta = ((d[3:-1] - d[1:-3]) + 2 * (d[4:] - d[:-4])) / 10.0
    assert torch.allclose(feats[:, 26:], ddelta, atol=1e-4)
    # use_energy=False: the first column is C0, not log energy
    energy = torchaudio.compliance.kaldi.mfcc(wav[None], sample_frequency=16000, use_energy=True)
    assert not torch.allclose(feats[:, 0], energy[:, 0], atol=1e-2)


def test_label_alignment_follows_fairseq_forward_targets():
    labels = torch.arange(10, 17)  # M = 7 label frames at 100 Hz
    # ratio 2: 2 * 4 > 7 -> only int(7 / 2) = 3 CNN frames keep a label: labels 0, 2, 4
    assert H.align_labels(labels, 4, 2.0).tolist() == [10, 12, 14, -1]
    assert H.align_labels(torch.arange(10, 18), 4, 2.0).tolist() == [10, 12, 14, 16]
    assert H.align_labels(torch.arange(3), 4, 1.0).tolist() == [0, 1, 2, -1]
    assert H.align_labels(torch.arange(5), 4, 1.0).tolist() == [0, 1, 2, 3]
    # the Base CNN (receptive field 400, stride 320) against 100 Hz MFCC: the last frame loses
    # its label exactly when (n - 400) % 320 < 160 (module docstring)
    from superb.upstream.wav2vec2.model import Wav2Vec2Model, build_config

    with torch.device("meta"):
        base = Wav2Vec2Model(build_config("hubert"))
    for n in (400, 559, 560, 719, 720, 16000, 16080, 16100):
        T = int(base.output_lengths(torch.tensor([n]))[0])
        M = H.mfcc39(torch.zeros(n) + 0.01 * torch.randn(n)).shape[0]
        assert T == 1 + (n - 400) // 320 and M == 1 + (n - 400) // 160
        got = H.align_labels(torch.arange(M), T, 2.0)
        lost = (n - 400) % 320 < 160
        assert int((got < 0).sum()) == int(lost), n
        assert got[: T - int(lost)].tolist() == [2 * t for t in range(T - int(lost))]


def test_batch_labels_are_nearest_centroids():
    obj, _, _ = build_objective("hubert", "tiny", 0, ["num_clusters=5"])
    g = torch.Generator().manual_seed(1)
    cents = torch.randn(5, 39, generator=g) * 5
    with torch.no_grad():
        obj.centroids.copy_(cents)
        obj.kmeans_fitted.fill_(True)
    wavs = torch.zeros(2, 9600)
    wavs[0] = _clip(9600, 1)
    wavs[1, :6400] = _clip(6400, 2)
    lens = torch.tensor([9600, 6400])
    got = obj.labels(wavs, lens)
    frames = obj.model.output_lengths(lens).tolist()  # tiny CNN: 1 + (n - 345) // 320
    assert frames == [1 + (9600 - 345) // 320, 1 + (6400 - 345) // 320] == [29, 19]
    assert got.shape == (2, 29)
    for b, n in enumerate(lens.tolist()):
        feats = H.mfcc39(wavs[b, :n]).numpy().astype(np.float64)
        c = cents.numpy().astype(np.float64)
        codes = [int(np.argmin([((f - k) ** 2).sum() for k in c])) for f in feats]  # brute force
        M = len(codes)
        keep = min(frames[b], M // 2) if 2 * frames[b] > M else frames[b]
        assert got[b, :keep].tolist() == [codes[2 * t] for t in range(keep)]
        assert bool((got[b, keep:] == -1).all())
    assert len(set(got[got >= 0].tolist())) >= 2  # not one constant label
    fresh, _, _ = build_objective("hubert", "tiny", 0, [])
    with pytest.raises(ValueError, match="k-means centroids are not fitted"):
        fresh.labels(wavs, lens)


def test_feature_grad_mult_scales_only_the_cnn_gradient():
    wavs = torch.stack([_clip(6400, 7), _clip(6400, 8)])
    lens = torch.tensor([6400, 5120])
    grads = []
    for mult in ("1.0", "0.1"):
        obj, _, _ = build_objective("hubert", "tiny", 0, [f"feature_grad_mult={mult}", "num_clusters=4"])
        with torch.no_grad():
            obj.centroids.copy_(torch.randn(4, 39, generator=torch.Generator().manual_seed(2)) * 5)
            obj.kmeans_fitted.fill_(True)
        rows, n = obj.features(wavs, lens)
        loss = obj.loss(rows, n, torch.Generator().manual_seed(9))
        loss.backward()
        grads.append({k: p.grad.clone() for k, p in obj.named_parameters()})
    full, scaled = grads
    cnn = [k for k in full if k.startswith("model.feature_extractor.")]
    assert cnn and float(full[cnn[0]].abs().sum()) > 0
    for k in full:
        factor = 0.1 if k in cnn else 1.0
        err = float((scaled[k] - factor * full[k]).norm() / (factor * full[k]).norm().clamp_min(1e-12))
        assert err < 1e-4, (k, err)


# -- training on the tiny mini corpus ----------------------------------------------------------------


STEPS = 60
TRAIN_SETS = FAST + ["loop.warmup_steps=5"]


@pytest.fixture(scope="module")
def trained(mini_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pt-hubert")
    summary = pretrain("hubert", folder, data=mini_data, preset="tiny", max_steps=STEPS, progress=False,
                       sets=TRAIN_SETS)
    return folder, summary


def _masked_accuracy(files, state=None, centroids=None):
    """Masked-prediction accuracy (and loss) of the tiny model over the files (3 s crops), masks
    from a fixed generator; ``state``: a last.pt model state (None: the seed-0 initialisation)."""
    from superb.downstream.audio import load_audio, segment_for

    obj, _, _ = build_objective("hubert", "tiny", 0, TRAIN_SETS)
    if state is not None:
        obj.load_state_dict(state)
    else:
        with torch.no_grad():
            obj.centroids.copy_(centroids)
            obj.kmeans_fitted.fill_(True)
    obj.eval()
    g = torch.Generator().manual_seed(123)
    right = count = 0
    losses = []
    with torch.no_grad():
        for f in files:
            wav = torch.from_numpy(load_audio(segment_for(f))).float()
            rows, n = obj.features(wav[None], torch.tensor([wav.shape[0]]))
            losses.append(float(obj.loss(rows[:, :150], n.clamp(max=150), g)))
            right += obj.history[-1]["acc_m"] * obj.history[-1]["count_m"]
            count += obj.history[-1]["count_m"]
    return right / count, float(np.mean(losses))


def test_loss_falls_and_kmeans_is_kept(trained, mini_data):
    folder, summary = trained
    lines = pretrain_log(folder)
    assert [l["step"] for l in lines] == list(range(1, STEPS + 1))
    first = np.mean([l["loss"] for l in lines[:10]])
    last = np.mean([l["loss"] for l in lines[-10:]])
    # measured (seed 0): 3.89 -> 3.04 (means of 10 steps); chance level is log(50) = 3.91
    assert first > 3.5 and last < first - 0.5, (first, last)
    assert summary["num_files"] == 9 and summary["steps"] == STEPS
    last_pt = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)
    cents = last_pt["model"]["centroids"]
    assert cents.shape == (50, 39) and bool(last_pt["model"]["kmeans_fitted"])
    assert float(cents.abs().sum()) > 0 and len({tuple(r.tolist()) for r in cents}) == 50
    ckpt = torch.load(folder / "hubert.ckpt", weights_only=True)
    assert torch.equal(ckpt["superb_kmeans"]["centroids"], cents)
    assert ckpt["superb_kmeans"]["label_rate"] == 100.0 and ckpt["superb_kmeans"]["features"] == "mfcc39"
    # the representation learns: masked-prediction accuracy well above the initial model's
    files = sorted(mini_data.rglob("*.flac"))
    acc0, loss0 = _masked_accuracy(files, centroids=cents)
    acc1, loss1 = _masked_accuracy(files, state=last_pt["model"])
    # measured (seed 0): accuracy 0.063 -> 0.32, loss 3.99 -> 2.80
    assert acc1 > 3 * acc0 and acc1 > 0.2 and loss1 < loss0 - 0.6, (acc0, acc1, loss0, loss1)


def _peer(path):
    """s3prl 0.4.18's fairseq-equivalent HubertModel built from the file's own cfg, strict load."""
    pytest.importorskip("s3prl")
    from s3prl.upstream.hubert.hubert_model import HubertConfig, HubertModel, HubertPretrainingConfig

    ckpt = torch.load(path, weights_only=True)
    names = {f.name for f in dataclasses.fields(HubertConfig)}
    task_names = {f.name for f in dataclasses.fields(HubertPretrainingConfig)}
    model_cfg = {k: v for k, v in ckpt["cfg"]["model"].items() if k in names}
    assert set(ckpt["cfg"]["model"]) - names == {"_name"}  # every field is fairseq's
    task_cfg = {k: v for k, v in ckpt["cfg"]["task"].items() if k in task_names}
    rows = ckpt["model"]["label_embs_concat"].shape[0]
    symbols = ["<s>", "<pad>", "</s>", "<unk>"] + [str(i) for i in range(rows - 4)]
    model = HubertModel(HubertConfig(**model_cfg), HubertPretrainingConfig(**task_cfg), [symbols])
    model.load_state_dict(ckpt["model"], strict=True)
    return model.eval(), ckpt


def test_checkpoint_round_trips_through_our_loader_and_the_peer(trained):
    import w2v2_peers as P

    folder, _ = trained
    path = folder / "hubert.ckpt"
    ours = build_upstream("hubert", ckpt=path)
    assert ours.source_format == "fairseq" and ours.config.family == "hubert"
    assert (ours.config.num_layers, ours.config.hidden_size, ours.config.post_extract_proj) == (4, 128, False)
    last = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key, value in ours.model.state_dict().items():
        assert torch.equal(value, last[f"model.{key}"]), key
    peer, ckpt = _peer(path)
    assert torch.equal(ckpt["model"]["label_embs_concat"][4:], last["label_embs"])
    assert torch.equal(ckpt["model"]["mask_emb"], last["mask_emb"])
    wavs, lens = P.batch(lens=[9137, 5003, 12011], seed=3)
    with torch.no_grad():
        out = ours(wavs, lens)
    alone = [P.s3prl_hidden_states(peer, "hubert", wavs[i:i + 1, :n], lens[i:i + 1], False)
             for i, n in enumerate(lens.tolist())]
    ref = [torch.nn.utils.rnn.pad_sequence([a[layer][0] for a in alone], batch_first=True)
           for layer in range(len(alone[0]))]
    assert len(out.hidden_states) == len(ref) == 5
    worst = P.compare(out, ref, lens, ours.model.output_lengths(lens), atol=1e-4)
    for i, n in enumerate(lens.tolist()):  # each utterance alone too
        with torch.no_grad():
            single = ours(wavs[i:i + 1, :n], lens[i:i + 1])
        worst = max(worst, P.compare(single, alone[i], lens[i:i + 1], atol=1e-4))
    assert worst <= 1e-4
    # the prediction head travels too: the peer's logits are ours (its 4 special rows are extra)
    with torch.no_grad():
        x, _ = peer.extract_features(wavs[:1, : lens[0]], padding_mask=None, mask=False)
        ours_logits = H.hubert_logits(peer.final_proj(x[0]), last["label_embs"], 0.1)
        y = torch.zeros(x.shape[1], dtype=torch.long)
        ref_logits = peer.compute_nce(peer.final_proj(x[0]), peer.label_embs_concat[4 + y],
                                      peer.label_embs_concat.unsqueeze(1).expand(-1, x.shape[1], -1))
    # columns: the positive, then every row of label_embs_concat (the positive's copy at -inf)
    assert torch.allclose(ref_logits[:, 0], ours_logits[:, 0], atol=1e-5)
    assert bool(torch.isinf(ref_logits[:, 5]).all())
    assert torch.allclose(ref_logits[:, 6:], ours_logits[:, 1:], atol=1e-5)
    assert bool((ref_logits[:, 1:5] == 0).all())  # the zero special rows: cosine 0
    from superb.upstream.inspection import inspect_checkpoint

    assert inspect_checkpoint(path)["upstream"] == "hubert"


def test_export_of_a_large_style_model_round_trips(tmp_path):
    # layer-norm CNN with conv bias, layer-norm-first transformer, normalised waveform: the other
    # fairseq key names (conv_layers.N.2.1.*, conv bias) and task normalize, without training
    import w2v2_peers as P
    from superb.upstream.pretrain.loop import LoopConfig

    obj, _, _ = build_objective("hubert", "tiny", 0, ["model.extractor_mode=layer_norm", "model.conv_bias=true",
                                                      "model.layer_norm_first=true", "model.normalize=true",
                                                      "model.hidden_size=64", "model.post_extract_proj=true",
                                                      "model.num_layers=2"])
    P.perturb_(obj, seed=5)
    with torch.no_grad():
        obj.kmeans_fitted.fill_(True)
    path = tmp_path / "large_style.ckpt"
    torch.save(obj.export(7, LoopConfig()), path)
    ours = build_upstream("hubert", ckpt=path)
    assert (ours.config.extractor_mode, ours.config.conv_bias, ours.config.layer_norm_first,
            ours.config.normalize) == ("layer_norm", True, True, True)
    peer, ckpt = _peer(path)
    assert ckpt["cfg"]["model"]["extractor_mode"] == "layer_norm" and ckpt["cfg"]["task"]["normalize"] is True
    assert "feature_extractor.conv_layers.3.2.1.weight" in ckpt["model"]
    assert "feature_extractor.conv_layers.0.0.bias" in ckpt["model"]
    wavs, lens = P.batch(lens=[7000, 4001], seed=6)
    with torch.no_grad():
        out = ours(wavs, lens)
    alone = [P.s3prl_hidden_states(peer, "hubert", wavs[i:i + 1, :n], lens[i:i + 1], True)
             for i, n in enumerate(lens.tolist())]
    ref = [torch.nn.utils.rnn.pad_sequence([a[layer][0] for a in alone], batch_first=True)
           for layer in range(len(alone[0]))]
    assert P.compare(out, ref, lens, ours.model.output_lengths(lens), atol=1e-4) <= 1e-4


def test_iteration_two_from_an_iteration_one_checkpoint(trained, mini_data, tmp_path):
    folder, _ = trained
    teacher_path = folder / "hubert.ckpt"
    out = tmp_path / "it2"
    summary = pretrain("hubert", out, data=mini_data, preset="tiny", max_steps=3, progress=False,
                       sets=FAST + [f"targets_ckpt={teacher_path}", "targets_layer=3", "num_clusters=20"])
    assert summary["steps"] == 3 and math.isfinite(summary["last_loss"])
    ckpt = torch.load(out / "hubert.ckpt", weights_only=True)
    km = ckpt["superb_kmeans"]
    assert km["centroids"].shape == (20, 128) and km["label_rate"] == 50.0
    assert km["features"] == f"layer 3 of {teacher_path}"
    assert ckpt["cfg"]["model"]["label_rate"] == 50.0 and ckpt["model"]["label_embs_concat"].shape == (24, 64)
    # labels are the nearest centroids of the teacher's layer-3 states, one per CNN frame (50 Hz)
    obj, _, _ = build_objective("hubert", "tiny", 0, [f"targets_ckpt={teacher_path}", "targets_layer=3",
                                                      "num_clusters=20"])
    with torch.no_grad():
        obj.centroids.copy_(km["centroids"])
        obj.kmeans_fitted.fill_(True)
    wav = _clip(8000, 4)[None]
    teacher = build_upstream("hubert", ckpt=teacher_path)
    with torch.no_grad():
        states = teacher(wav, torch.tensor([8000])).hidden_states[3][0]
    expected = H.nearest_centroid(states, km["centroids"])
    assert obj.labels(wav, torch.tensor([8000]))[0].tolist() == expected.tolist()
    with pytest.raises(ValueError, match=r"targets_layer=9 but targets_ckpt=.* has hidden states 0 \.\. 4"):
        build_objective("hubert", "tiny", 0, [f"targets_ckpt={teacher_path}", "targets_layer=9"])


# -- resume -------------------------------------------------------------------------------------------


def test_resume_continues_exactly(mini_data, tmp_path):
    sets = FAST + ["model.num_layers=2"]
    a, b = assert_resume_exact("hubert", mini_data, tmp_path, steps=4, sets=sets)
    a, b = a["model"], b["model"]
    assert set(a) == set(b) and "centroids" in a


# -- bad settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("item,message", [
    ("num_clusters=1", "num_clusters must be >= 2, got 1"),
    ("mask_prob=1.5", r"mask_prob must be in \[0, 1\], got 1.5"),
    ("logit_temp=0.0", "logit_temp must be a positive number, got 0.0"),
    ("pred_masked_weight=0.0", "pred_masked_weight and pred_nomask_weight are both 0"),
    ("model.post_extract_proj=true", "model.post_extract_proj must be False"),
    ("targets_layer=-1", "targets_layer must be an integer >= 0, got -1"),
])
def test_bad_settings_name_the_key(item, message):
    with pytest.raises(ValueError, match=message):
        build_objective("hubert", "tiny", 0, [item])


def test_missing_targets_checkpoint_is_named(tmp_path):
    missing = tmp_path / "nope.ckpt"
    with pytest.raises((ValueError, FileNotFoundError), match="nope.ckpt"):
        build_objective("hubert", "tiny", 0, [f"targets_ckpt={missing}"])


def test_presets():
    cfg, loop = H.preset("hubert", "base")
    assert (cfg.num_clusters, cfg.final_dim, cfg.mask_prob, cfg.mask_length, cfg.logit_temp) == (100, 256, 0.8, 10, 0.1)
    assert (cfg.model.num_layers, cfg.model.hidden_size, cfg.model.extractor_mode) == (12, 768, "group_norm")
    assert (loop.lr, loop.max_steps, loop.warmup_steps) == (5e-4, 250_000, 20_000)
    obj, cfg, _ = build_objective("hubert", "tiny", 0, [])
    assert cfg.model.num_layers == 4 and cfg.num_clusters == 50 and obj.min_samples == 640
    assert conv_feature_layers(((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2, runs=True) == \
        "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2"
