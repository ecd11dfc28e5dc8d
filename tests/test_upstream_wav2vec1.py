"""wav2vec / vq-wav2vec: every hidden state against s3prl 0.4.18 (its wav2vec model code is
fairseq's), weights written as fairseq legacy ``args`` checkpoints, fairseq ``cfg`` checkpoints
and s3prl converted files."""
from __future__ import annotations

import argparse

import pytest
import torch

from golden_utils import assert_states_close, golden_batch, per_utterance, randomize_
from superb.upstream import build_upstream
from superb.upstream.checkpoint_io import CheckpointKeyError
from superb.upstream.inspection import inspect_checkpoint

w2v_model = pytest.importorskip("s3prl.upstream.wav2vec.wav2vec_model")
w2v_expert = pytest.importorskip("s3prl.upstream.wav2vec.expert")

FEAT = "[(16, 10, 5), (16, 8, 4), (16, 4, 2), (16, 4, 2), (16, 4, 2), (16, 1, 1)]"
AGG = "[(16, 2, 1), (24, 3, 1), (24, 4, 1), (24, 5, 1)]"
TASK = {"_name": "audio_pretraining", "data": "/data/manifest", "normalize": False, "sample_rate": 16000}

CASES = {
    "wav2vec": dict(infonce=False, conv_feature_layers=FEAT, conv_aggregator_layers=AGG,
                    skip_connections_agg=True, log_compression=True, activation="relu", vq_type="none"),
    "gumbel": dict(infonce=False, conv_feature_layers=FEAT, conv_aggregator_layers=AGG,
                   skip_connections_agg=True, log_compression=True, activation="gelu", vq_type="gumbel",
                   vq_vars=12, vq_groups=2, vq_depth=2, combine_groups=True, offset="auto"),
    "kmeans": dict(infonce=False, conv_feature_layers=FEAT, conv_aggregator_layers=AGG,
                   skip_connections_agg=True, log_compression=True, activation="gelu", vq_type="kmeans",
                   vq_vars=10, vq_groups=2, combine_groups=False, vq_gamma=0.25, agg_zero_pad=True),
    "skipfeat": dict(infonce=False, conv_feature_layers=FEAT, conv_aggregator_layers=AGG,
                     skip_connections_agg=True, skip_connections_feat=True, non_affine_group_norm=True,
                     log_compression=False, activation="relu", vq_type="none", project_features="same"),
}


def make_model(cfg: dict, seed: int):
    model = w2v_model.Wav2VecModel(w2v_model.Wav2VecConfig(**cfg))
    randomize_(model, seed, scale=0.3)
    return model


def write_converted(path, cfg, model):
    torch.save({"task_cfg": dict(TASK), "model_cfg": {"_name": "wav2vec", **cfg},
                "model_weight": model.state_dict()}, path)
    return path


def write_legacy(path, args: dict, model):
    ns = argparse.Namespace(arch="wav2vec", task="audio_pretraining", criterion="wav2vec", optimizer="adam",
                            lr=[1e-5], max_update=400000, **args)
    torch.save({"args": ns, "model": model.state_dict(),
                "optimizer_history": [{"criterion_name": "Wav2vecCriterion", "optimizer_name": "FairseqAdam",
                                       "lr_scheduler_state": {"best": 1.5}, "num_updates": 400000}],
                "extra_state": {"epoch": 12, "val_loss": 1.5}, "last_optimizer_state": {"state": {}}}, path)
    return path


def reference(path):
    expert = w2v_expert.UpstreamExpert(str(path))
    expert.eval()

    def run(wavs):
        with torch.no_grad():
            return list(expert(wavs)["hidden_states"])

    return run


def check(name, path, ref_path, n_states):
    wavs, wav_lens, raw = golden_batch()
    model = build_upstream(name, path)
    with torch.no_grad():
        out = model(wavs, wav_lens)
    ref = reference(ref_path)
    single = per_utterance(ref, raw)
    ref_lens = [int(ref([w])[0].shape[1]) for w in raw]
    assert len(out.hidden_states) == n_states == model.num_layers
    assert out.lengths.tolist() == ref_lens
    assert_states_close(out.hidden_states, single, out.lengths, ref_lens, what=name)
    return model, out


@pytest.mark.parametrize("case", ["wav2vec", "gumbel", "kmeans", "skipfeat"])
def test_s3prl_converted_every_layer(tmp_path, case):
    cfg = CASES[case]
    model = make_model(cfg, seed=len(case))
    path = write_converted(tmp_path / f"{case}.pt", cfg, model)
    name = "wav2vec" if cfg["vq_type"] == "none" else "vq_wav2vec"
    ours, out = check(name, path, path, n_states=5)
    # receptive field 10 + 7*5 + 3*20 + 3*40 + 3*80 = 465 samples, stride 160
    assert ours.downsample_rate == 160
    assert out.lengths.tolist() == [(n - 465) // 160 + 1 for n in (9137, 5003, 12011)]
    assert [h.shape[-1] for h in out.hidden_states] == [16, 16, 24, 24, 24]


def test_fairseq_legacy_args_uses_fairseq_defaults(tmp_path):
    # absent arguments take base_wav2vec_architecture's values (no skip connections, no log
    # compression); the layer lists use the "+ / *" syntax of fairseq's defaults
    args = dict(conv_feature_layers="[(16, 10, 5), (16, 8, 4)] + [(16, 4, 2)] * 3",
                conv_aggregator_layers="[(16, 3, 1)] * 3", activation="relu", vq_type="none", infonce=False,
                prediction_steps=12, num_negatives=10)
    resolved = dict(infonce=False, conv_feature_layers="[(16, 10, 5), (16, 8, 4), (16, 4, 2), (16, 4, 2), (16, 4, 2)]",
                    conv_aggregator_layers="[(16, 3, 1), (16, 3, 1), (16, 3, 1)]", skip_connections_agg=False,
                    log_compression=False, activation="relu", vq_type="none")
    model = make_model(resolved, seed=11)
    legacy = write_legacy(tmp_path / "wav2vec_small.pt", args, model)
    ref = write_converted(tmp_path / "ref.pt", resolved, model)
    ours, out = check("wav2vec", legacy, ref, n_states=4)
    info = inspect_checkpoint(legacy)
    assert (info["upstream"], info["format"], info["num_layers"]) == ("wav2vec", "fairseq legacy args", 4)
    assert ours.downsample_rate == 160
    assert out.lengths.tolist() == [(n - 465) // 160 + 1 for n in (9137, 5003, 12011)]


def test_fairseq_cfg_vq_kmeans_and_wrong_name(tmp_path):
    cfg = CASES["kmeans"]
    model = make_model(cfg, seed=21)
    path = tmp_path / "vq-wav2vec_kmeans.pt"
    torch.save({"cfg": {"model": {"_name": "wav2vec", **cfg}, "task": dict(TASK)}, "model": model.state_dict()}, path)
    ref = write_converted(tmp_path / "ref.pt", cfg, model)
    check("vq_wav2vec", path, ref, n_states=5)
    assert inspect_checkpoint(path)["upstream"] == "vq_wav2vec"
    with pytest.raises(ValueError, match="load it as upstream 'vq_wav2vec'"):
        build_upstream("wav2vec", path)


def test_gru_aggregator_against_fairseq_model(tmp_path):
    cfg = dict(infonce=False, conv_feature_layers=FEAT, aggregator="gru", gru_dim=12, log_compression=True,
               vq_type="none")
    model = make_model(cfg, seed=5).eval()
    path = write_converted(tmp_path / "gru.pt", cfg, model)
    wavs, wav_lens, raw = golden_batch()
    out = build_upstream("wav2vec", path)(wavs, wav_lens)
    assert len(out.hidden_states) == 2
    with torch.no_grad():
        ref = []
        for w in raw:  # fairseq's own forward path: extractor -> aggregator
            z = model.feature_extractor(w[None])
            ref.append([z.transpose(1, 2), model.feature_aggregator(z).transpose(1, 2)])
    expected = [torch.nn.utils.rnn.pad_sequence([r[i][0] for r in ref], batch_first=True) for i in range(2)]
    assert_states_close(out.hidden_states, expected, out.lengths, what="gru")


def test_errors(tmp_path):
    cfg = CASES["wav2vec"]
    model = make_model(cfg, seed=1)
    state = model.state_dict()
    state["feature_aggregator.conv_layers.9.1.weight"] = torch.zeros(1)
    torch.save({"task_cfg": TASK, "model_cfg": cfg, "model_weight": state}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointKeyError, match=r"feature_aggregator\.conv_layers\.9\.1\.weight|agg_convs\.9"):
        build_upstream("wav2vec", tmp_path / "bad.pt")
    torch.save({"task_cfg": TASK, "model_cfg": dict(cfg, conv_feature_layers="__import__('os')"),
                "model_weight": model.state_dict()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="cannot parse conv_feature_layers"):
        build_upstream("wav2vec", tmp_path / "evil.pt")


def test_random_init():
    m = build_upstream("vq_wav2vec", random_init=True, conv_feature_layers="[(8, 10, 5), (8, 8, 4), (8, 4, 2), (8, 4, 2), (8, 4, 2)]",
                       conv_aggregator_layers="[(8, 2, 1), (8, 3, 1)]", vq_vars=4)
    wavs, wav_lens, _ = golden_batch((4000, 2500))
    out = m(wavs, wav_lens)
    assert len(out.hidden_states) == 3 and m.downsample_rate == 160
    assert build_upstream("wav2vec", random_init=True).num_layers == 13
    # --upstream-option values arrive parsed as YAML: "[(8, 2, 1), (8, 3, 1)]" becomes this list
    m = build_upstream("wav2vec", random_init=True, conv_aggregator_layers=["(8", 2, "1)", "(8", 3, "1)"],
                       conv_feature_layers=[[8, 10, 5], [8, 8, 4], [8, 4, 2], [8, 4, 2], [8, 4, 2]])
    assert m.hidden_sizes == [8, 8, 8]
