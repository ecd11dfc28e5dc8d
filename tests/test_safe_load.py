"""Safe checkpoint loading (superb.upstream.checkpoint_io). Needs torch; two tests also need the
test-only packages omegaconf (to write a DictConfig) and safetensors (reference writer for our
own safetensors reader), both in tests/requirements-peers.txt."""
import argparse
import io
import os
import pickle
import sys
import types

import pytest
import torch

from superb.upstream import build_upstream
from superb.upstream.checkpoint_io import (
    CheckpointKeyError,
    ForeignObject,
    UnsafeCheckpointError,
    check_state_dict,
    load_safetensors,
    safe_load,
    to_plain,
)
from superb.upstream.wav2vec2.import_fairseq import FAIRSEQ_KEY_MAP
from superb.upstream.wav2vec2.loading import source_name


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').getpid()",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_runs_nothing(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "x": _RunsCode(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_load(path)
    assert not marker.exists()
    assert info.value.global_name in ("posix.system", "os.system", "nt.system")
    assert str(path) in str(info.value) and "system" in str(info.value)
    # the same through the upstream loader
    with pytest.raises(UnsafeCheckpointError):
        build_upstream("hubert", ckpt=path)
    assert not marker.exists()


def test_eval_and_modules_refused(tmp_path):
    path = tmp_path / "eval.pt"
    torch.save({"a": _Evals()}, path)
    with pytest.raises(UnsafeCheckpointError, match="builtins.eval"):
        safe_load(path)
    path = tmp_path / "module.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a whole module object needs its code
    with pytest.raises(UnsafeCheckpointError, match="torch.nn.modules.linear.Linear"):
        safe_load(path)


def test_plain_pickle_protocol4_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "raw.pkl"
    path.write_bytes(pickle.dumps({"x": _RunsCode(marker)}, protocol=4))
    with pytest.raises(UnsafeCheckpointError):
        safe_load(path)
    assert not marker.exists()


def test_foreign_callable_is_inert(tmp_path):
    """A pickle that asks to *call* fairseq.<anything> gets an inert stand-in, nothing imported."""
    # GLOBAL 'fairseq.tasks setup_task' ; ('rm -rf',) ; REDUCE -- hand-written protocol-2 pickle
    payload = b"\x80\x02}q\x00X\x04\x00\x00\x00taskq\x01cfairseq.tasks\nsetup_task\nq\x02X\x06\x00\x00\x00rm -rfq\x03\x85q\x04Rq\x05s."
    buf = io.BytesIO()
    torch.save({"placeholder": 1}, buf)
    # build a zip checkpoint whose data.pkl is the payload
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    path = tmp_path / "foreign.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            data = payload if item.filename.endswith("data.pkl") else src.read(item.filename)
            dst.writestr(item, data)
    obj = safe_load(path)
    assert isinstance(obj["task"], ForeignObject)
    assert obj["task"].foreign_name == "fairseq.tasks.setup_task"
    assert obj["task"].args == ("rm -rf",)
    assert "fairseq" not in sys.modules and "fairseq.tasks" not in sys.modules


def test_namespace_and_fairseq_dictionary_become_data(tmp_path):
    names = ["fairseq", "fairseq.data", "fairseq.data.dictionary"]

    class Dictionary:
        def __init__(self):
            self.symbols = ["<s>", "a"]
            self.indices = {"<s>": 0, "a": 1}

    Dictionary.__module__ = "fairseq.data.dictionary"
    Dictionary.__qualname__ = "Dictionary"
    for n in names:
        sys.modules[n] = types.ModuleType(n)
    sys.modules["fairseq.data.dictionary"].Dictionary = Dictionary
    path = tmp_path / "cfg.pt"
    try:
        torch.save({"args": argparse.Namespace(normalize=True, encoder_layers=3),
                    "task_state": {"dictionaries": [Dictionary()]}, "s": {1, 2}}, path)
    finally:
        for n in names:
            del sys.modules[n]
    obj = safe_load(path)
    assert obj["args"].normalize is True and obj["args"].encoder_layers == 3
    plain = to_plain(obj)
    assert plain["args"] == {"normalize": True, "encoder_layers": 3}
    assert plain["task_state"]["dictionaries"][0]["symbols"] == ["<s>", "a"]
    assert "fairseq" not in sys.modules


def test_omegaconf_config_becomes_dict(tmp_path):
    import omegaconf  # test-only dependency (tests/requirements-peers.txt)
    cfg = omegaconf.OmegaConf.create({"model": {"_name": "hubert", "layers": [1, 2], "x": None},
                                      "task": {"normalize": False}})
    path = tmp_path / "oc.pt"
    torch.save({"cfg": cfg}, path)
    plain = to_plain(safe_load(path))
    assert plain == {"cfg": {"model": {"_name": "hubert", "layers": [1, 2], "x": None},
                             "task": {"normalize": False}}}


def test_torchscript_refused(tmp_path):
    path = tmp_path / "ts.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    with pytest.raises(UnsafeCheckpointError, match="TorchScript"):
        safe_load(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        safe_load("/nonexistent/ckpt.pt")


def test_check_state_dict_lists_names():
    with pytest.raises(CheckpointKeyError) as info:
        check_state_dict(["a", "b", "c"], ["a", "d", "quantizer.x", "mask_emb"], [r"quantizer\.", r"mask_emb$"], "f.pt")
    assert info.value.missing == ["b", "c"] and info.value.unexpected == ["d"]
    assert "f.pt" in str(info.value) and "b, c" in str(info.value) and "d" in str(info.value)
    assert check_state_dict(["a"], ["a", "mask_emb"], [r"mask_emb$"]) == ["mask_emb"]


def _fairseq_ckpt_from_ours(tmp_path, edit=None):
    torch.manual_seed(0)
    small = dict(conv_layers=((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2, hidden_size=48,
                 num_layers=2, num_heads=4, ffn_dim=64, pos_conv_kernel=16, pos_conv_groups=4)
    ours = build_upstream("hubert", random_init=True, **small)
    state = {source_name(k, FAIRSEQ_KEY_MAP): v for k, v in ours.model.state_dict().items()}
    state["feature_extractor.conv_layers.0.2.weight"] = state.pop("feature_extractor.conv_layers.0.2.1.weight")
    state["feature_extractor.conv_layers.0.2.bias"] = state.pop("feature_extractor.conv_layers.0.2.1.bias")
    state["mask_emb"] = torch.zeros(48)
    if edit:
        edit(state)
    cfg = {"model": {"_name": "hubert", "conv_feature_layers": "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2",
                     "encoder_embed_dim": 48, "encoder_layers": 2, "encoder_attention_heads": 4,
                     "encoder_ffn_embed_dim": 64, "conv_pos": 16, "conv_pos_groups": 4},
           "task": {"normalize": False}}
    path = tmp_path / "ckpt.pt"
    torch.save({"cfg": cfg, "model": state}, path)
    return ours, path


def test_roundtrip_own_weights(tmp_path):
    ours, path = _fairseq_ckpt_from_ours(tmp_path)
    loaded = build_upstream("hubert", ckpt=path)
    wavs = torch.randn(2, 3000)
    lens = torch.tensor([3000, 2000])
    with torch.no_grad():
        for a, b in zip(ours(wavs, lens).hidden_states, loaded(wavs, lens).hidden_states):
            assert torch.equal(a, b)


def test_missing_weight_is_listed(tmp_path):
    _, path = _fairseq_ckpt_from_ours(tmp_path, lambda s: s.pop("encoder.layers.1.fc2.weight"))
    with pytest.raises(CheckpointKeyError) as info:
        build_upstream("hubert", ckpt=path)
    assert info.value.missing == ["encoder.layers.1.fc2.weight"]
    assert "encoder.layers.1.fc2.weight" in str(info.value) and str(path) in str(info.value)


def test_unexpected_weight_is_listed(tmp_path):
    _, path = _fairseq_ckpt_from_ours(tmp_path, lambda s: s.update({"encoder.layers.7.fc1.weight": torch.zeros(1),
                                                                    "decoder.embed": torch.zeros(1)}))
    with pytest.raises(CheckpointKeyError) as info:
        build_upstream("hubert", ckpt=path)
    assert info.value.unexpected == ["decoder.embed", "encoder.layers.7.fc1.weight"]


def test_wrong_shape_is_listed(tmp_path):
    _, path = _fairseq_ckpt_from_ours(tmp_path, lambda s: s.update({"encoder.layers.0.fc1.bias": torch.zeros(3)}))
    with pytest.raises(CheckpointKeyError, match=r"encoder.layers.0.fc1.bias has shape \(3,\)"):
        build_upstream("hubert", ckpt=path)


def test_unrecognised_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": {}}, path)
    with pytest.raises(ValueError, match="not a recognised"):
        build_upstream("hubert", ckpt=path)


def test_safetensors_reader_matches_package(tmp_path):
    import safetensors.torch as st  # test-only dependency (tests/requirements-peers.txt)
    tensors = {"f32": torch.randn(3, 4), "f16": torch.randn(5).half(), "bf16": torch.randn(2, 2).bfloat16(),
               "i64": torch.arange(6).view(2, 3), "b": torch.tensor([True, False]), "empty": torch.zeros(0, 3)}
    path = tmp_path / "t.safetensors"
    st.save_file(tensors, str(path))
    got = load_safetensors(path)
    assert set(got) == set(tensors)
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v)


def test_safetensors_garbage(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_safetensors(path)
