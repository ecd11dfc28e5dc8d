"""APC / VQ-APC: every hidden state against s3prl 0.4.18's expert (3 GRU layers: its hooks are
hard-coded for 3), weights written in s3prl's ``{'config', 'model'}`` format."""
from __future__ import annotations

import pytest
import torch

from golden_utils import assert_states_close, golden_batch, per_utterance, randomize_
from superb.upstream import build_upstream
from superb.upstream.checkpoint_io import CheckpointKeyError
from superb.upstream.inspection import inspect_checkpoint

s3prl_apc = pytest.importorskip("s3prl.upstream.apc.apc")
s3prl_expert = pytest.importorskip("s3prl.upstream.apc.expert")


def write_ckpt(path, vq=None, feat_dim=40, hidden=24, seed=0, audio_extra=None):
    paras = {"hidden_size": hidden, "num_layers": 3, "dropout": 0.0, "residual": True}
    if vq:
        paras["vq"] = vq
    model = randomize_(s3prl_apc.APC(feat_dim, **paras), seed, scale=0.3)
    audio = {"feat_type": "fbank", "feat_dim": feat_dim, "frame_length": 25, "frame_shift": 10, "dither": 0,
             "cmvn": True, **(audio_extra or {})}
    torch.save({"config": {"model": {"paras": paras}, "data": {"audio": audio},
                           "hparas": {"optimizer": "Adam", "lr": 1e-3}},
                "model": model.state_dict(), "global_step": 1000}, path)
    return path


def reference(path):
    expert = s3prl_expert.UpstreamExpert(str(path))
    expert.eval()

    def run(wavs):
        with torch.no_grad():
            return list(expert(wavs)["hidden_states"])

    return run


@pytest.mark.parametrize("name,vq", [
    ("apc", None),
    ("vq_apc", {"codebook_size": [16, 8], "code_dim": [16, 8], "gumbel_temperature": 0.5}),
])
def test_apc_every_layer(tmp_path, name, vq):
    path = write_ckpt(tmp_path / f"{name}.ckpt", vq=vq, seed=1 if vq else 0)
    wavs, wav_lens, raw = golden_batch()
    model = build_upstream(name, path)
    with torch.no_grad():
        out = model(wavs, wav_lens)
    ref = reference(path)
    # the reference is batch-invariant (packed GRUs, per-utterance features): compare both ways
    batched = ref(raw)
    single = per_utterance(ref, raw)
    expected_lens = [1 + (n - 400) // 160 for n in wav_lens.tolist()]
    assert out.lengths.tolist() == expected_lens
    assert len(out.hidden_states) == len(batched) == 3 == model.num_layers
    assert_states_close(out.hidden_states, batched, out.lengths, what=f"{name} batched")
    assert_states_close(out.hidden_states, single, out.lengths, what=f"{name} single")
    if vq:
        # the quantiser round-trips: codes of the last state are codebook columns
        codes = model.quantize(out.hidden_states[-1])
        assert codes.shape == out.hidden_states[-1].shape
    assert inspect_checkpoint(path)["upstream"] == name


def test_apc_extra_kaldi_arguments_and_errors(tmp_path):
    # other Kaldi arguments of data.audio reach the fbank; snip_edges=False frames: (n + 80) // 160
    path = write_ckpt(tmp_path / "apc_kw.ckpt", audio_extra={"snip_edges": False, "low_freq": 60.0}, seed=4)
    wavs, wav_lens, raw = golden_batch((6000, 4100))
    out = build_upstream("apc", path)(wavs, wav_lens)
    assert out.lengths.tolist() == [(6000 + 80) // 160, (4100 + 80) // 160]
    assert_states_close(out.hidden_states, reference(path)(raw), out.lengths, what="apc kaldi kwargs")

    bad = torch.load(path, weights_only=False)
    bad["model"]["rnn_layers.3.weight_ih_l0"] = torch.zeros(3)
    torch.save(bad, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointKeyError, match=r"rnn_layers\.3\.weight_ih_l0|layers\.3\.weight_ih_l0"):
        build_upstream("apc", tmp_path / "bad.ckpt")
    bad = torch.load(path, weights_only=False)
    bad["config"]["data"]["audio"]["no_such_kaldi_arg"] = 1
    torch.save(bad, tmp_path / "bad2.ckpt")
    with pytest.raises(ValueError, match="no_such_kaldi_arg"):
        build_upstream("apc", tmp_path / "bad2.ckpt")
    bad = torch.load(path, weights_only=False)
    bad["config"]["data"]["audio"]["window_type"] = "povey"
    torch.save(bad, tmp_path / "bad3.ckpt")
    with pytest.raises(ValueError, match="window_type"):
        build_upstream("apc", tmp_path / "bad3.ckpt")


def test_random_init():
    m = build_upstream("vq_apc", random_init=True, hidden_size=16, vq_codebook_size=(8,), vq_code_dim=(16,))
    wavs, wav_lens, _ = golden_batch((3000, 2000))
    out = m(wavs, wav_lens)
    assert [h.shape[-1] for h in out.hidden_states] == [16, 16, 16]
    assert out.lengths.tolist() == [1 + (3000 - 400) // 160, 1 + (2000 - 400) // 160]
