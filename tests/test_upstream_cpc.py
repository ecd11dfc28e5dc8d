"""Modified CPC: every hidden state against s3prl 0.4.18's CPC expert (CPC_audio's model code),
weights written in CPC_audio's ``{'config', 'weights'}`` format and as a training checkpoint."""
from __future__ import annotations

import json

import pytest
import torch

from golden_utils import assert_states_close, golden_batch, per_utterance, randomize_
from superb.upstream import build_upstream
from superb.upstream.checkpoint_io import CheckpointKeyError
from superb.upstream.inspection import inspect_checkpoint

cpc_model = pytest.importorskip("s3prl.upstream.cpc.model")
cpc_expert = pytest.importorskip("s3prl.upstream.cpc.expert")
cpc_default = pytest.importorskip("s3prl.upstream.cpc.cpc_default_config")


def make_reference_model(args: dict, seed: int):
    enc = cpc_model.CPCEncoder(args["hiddenEncoder"], args["normMode"])
    ar = cpc_model.CPCAR(args["hiddenEncoder"], args["hiddenGar"], False, args["nLevelsGRU"],
                         mode=args["arMode"], reverse=args.get("cpc_mode") == "reverse")
    model = randomize_(cpc_model.CPCModel(enc, ar), seed, scale=0.3)
    if args["normMode"] == "batchNorm":
        g = torch.Generator().manual_seed(seed + 100)
        for i in range(5):
            bn = getattr(enc, f"batchNorm{i}")
            bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=g) + 0.5)
    return model


def full_args(**over):
    args = vars(cpc_default.get_default_cpc_config())
    args.update(pathDB="/data/LibriLight", pathCheckpoint="/exp/cpc", load=None, **over)
    return args


def reference(path):
    expert = cpc_expert.UpstreamExpert(str(path))
    expert.eval()

    def run(wavs):
        with torch.no_grad():
            return list(expert(wavs)["hidden_states"])

    return run


def check(path, name="modified_cpc", lengths=None):
    wavs, wav_lens, raw = golden_batch(*([lengths] if lengths else []))
    model = build_upstream(name, path)
    with torch.no_grad():
        out = model(wavs, wav_lens)
    ref = reference(path)
    single = per_utterance(ref, raw)
    ref_lens = [int(ref([w])[0].shape[1]) for w in raw]
    assert out.lengths.tolist() == ref_lens
    assert len(out.hidden_states) == 2 == model.num_layers
    assert_states_close(out.hidden_states, single, out.lengths, ref_lens, what="cpc")
    # the longest utterance has no padding: the reference's own padded batch agrees on it
    batched = ref(raw)
    longest = int(wav_lens.argmax())
    for a, b in zip(out.hidden_states, batched):
        n = int(out.lengths[longest])
        assert (a[longest, :n] - b[longest, :n]).abs().max() <= 1e-4
    return model, out


@pytest.mark.parametrize("over", [
    dict(hiddenEncoder=32, hiddenGar=24, arMode="LSTM", nLevelsGRU=2, normMode="layerNorm"),
    dict(hiddenEncoder=16, hiddenGar=16, arMode="GRU", nLevelsGRU=1, normMode="batchNorm", cpc_mode="reverse"),
    dict(hiddenEncoder=16, hiddenGar=20, arMode="RNN", nLevelsGRU=1, normMode="instanceNorm"),
])
def test_cpc_hub_format_every_layer(tmp_path, over):
    args = full_args(**over)
    model = make_reference_model(args, seed=len(tmp_path.name))
    path = tmp_path / "cpc.pt"
    torch.save({"config": args, "weights": model.state_dict()}, path)
    ours, out = check(path)
    # 16 kHz, total stride 160: conv arithmetic with paddings 3, 2, 1, 1, 1
    n = torch.tensor([9137, 5003, 12011])
    for k, s, p in ((10, 5, 3), (8, 4, 2), (4, 2, 1), (4, 2, 1), (4, 2, 1)):
        n = (n + 2 * p - k) // s + 1
    assert out.lengths.tolist() == n.tolist()
    assert ours.downsample_rate == 160


def test_cpc_training_checkpoint_with_args_json(tmp_path):
    args = full_args(hiddenEncoder=16, hiddenGar=16, arMode="LSTM", nLevelsGRU=1, normMode="layerNorm")
    model = make_reference_model(args, seed=9)
    (tmp_path / "checkpoint_args.json").write_text(json.dumps(args))
    torch.save({"gEncoder": model.state_dict(), "cpcCriterion": {"wPrediction.0.weight": torch.zeros(2, 2)},
                "optimizer": {}, "best": None}, tmp_path / "checkpoint_3.pt")
    # the reference expert reads the hub format: give it the same weights that way
    torch.save({"config": args, "weights": model.state_dict()}, tmp_path / "hub.pt")
    wavs, wav_lens, raw = golden_batch()
    ours = build_upstream("cpc", tmp_path / "checkpoint_3.pt")(wavs, wav_lens)
    assert_states_close(ours.hidden_states, per_utterance(reference(tmp_path / "hub.pt"), raw), ours.lengths)
    for f in ("checkpoint_3.pt", "hub.pt"):
        info = inspect_checkpoint(tmp_path / f)
        assert (info["upstream"], info["num_layers"], info["hidden_size"]) == ("modified_cpc", 2, 16)


def test_cpc_errors(tmp_path):
    args = full_args(hiddenEncoder=16, hiddenGar=16)
    model = make_reference_model(args, seed=2)
    state = model.state_dict()
    state.pop("gAR.baseNet.bias_hh_l0")
    torch.save({"config": args, "weights": state}, tmp_path / "missing.pt")
    with pytest.raises(CheckpointKeyError, match=r"ar\.bias_hh_l0"):
        build_upstream("modified_cpc", tmp_path / "missing.pt")
    torch.save({"config": dict(args, arMode="transformer"), "weights": model.state_dict()}, tmp_path / "tr.pt")
    with pytest.raises(ValueError, match="arMode 'transformer'"):
        build_upstream("modified_cpc", tmp_path / "tr.pt")
    torch.save({"gEncoder": model.state_dict()}, tmp_path / "checkpoint_1.pt")
    with pytest.raises(ValueError, match="checkpoint_args.json"):
        build_upstream("modified_cpc", tmp_path / "checkpoint_1.pt")


def test_random_init():
    m = build_upstream("cpc", random_init=True, hiddenEncoder=16, hiddenGar=8)
    wavs, wav_lens, _ = golden_batch((3200, 1600))
    out = m(wavs, wav_lens)
    assert out.lengths.tolist() == [20, 10]
    assert [h.shape[-1] for h in out.hidden_states] == [16, 8]
