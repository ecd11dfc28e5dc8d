"""``superb inspect`` / ``superb extract`` logic (superb.upstream.inspection,
superb.benchmark.extract). Needs only torch and soundfile."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from superb.benchmark import cli
from superb.benchmark.extract import extract_features
from superb.upstream import build_upstream
from superb.upstream.inspection import format_inspection, inspect_checkpoint
from superb.upstream.wav2vec2.import_fairseq import FAIRSEQ_KEY_MAP
from superb.upstream.wav2vec2.loading import source_name

SMALL = dict(conv_layers=((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2, hidden_size=48,
             num_layers=2, num_heads=4, ffn_dim=64, pos_conv_kernel=16, pos_conv_groups=4)
FAIRSEQ_CFG = {"_name": "wav2vec2", "conv_feature_layers": "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2",
               "encoder_embed_dim": 48, "encoder_layers": 2, "encoder_attention_heads": 4,
               "encoder_ffn_embed_dim": 64, "conv_pos": 16, "conv_pos_groups": 4,
               "extractor_mode": "layer_norm", "conv_bias": True, "layer_norm_first": True}


@pytest.fixture
def fairseq_ckpt(tmp_path):
    torch.manual_seed(0)
    ours = build_upstream("wav2vec2_large", random_init=True, conv_bias=True, **SMALL)
    state = {source_name(k, FAIRSEQ_KEY_MAP): v for k, v in ours.model.state_dict().items()}
    state["quantizer.vars"] = torch.zeros(1, 4, 2)
    path = tmp_path / "w2v2.pt"
    torch.save({"cfg": {"model": FAIRSEQ_CFG, "task": {"normalize": True}}, "model": state}, path)
    return path


@pytest.fixture
def cli_with_extra(monkeypatch):
    if "superb.benchmark.extract" not in cli.EXTRA_COMMANDS:
        monkeypatch.setattr(cli, "EXTRA_COMMANDS", (*cli.EXTRA_COMMANDS, "superb.benchmark.extract"))
    return cli


def test_inspect_fairseq(fairseq_ckpt):
    info = inspect_checkpoint(fairseq_ckpt)
    assert info["family"] == "wav2vec2" and info["format"] == "fairseq"
    assert info["num_layers"] == 3 and info["downsample_rate"] == 320 and info["hidden_size"] == 48
    assert info["normalize"] is True and "task normalize=True" in info["normalize_source"]
    assert info["config"]["layer_norm_first"] is True and info["config"]["extractor_mode"] == "layer_norm"
    assert info["dropped_weights"] == ["quantizer.vars"]
    model = build_upstream("wav2vec2", ckpt=fairseq_ckpt)
    assert info["num_parameters"] == sum(p.numel() for p in model.parameters())
    text = format_inspection(info)
    for needle in ("family:          wav2vec2", "format:          fairseq", "hidden states:   3", "320 samples/frame",
                   "parameters:"):
        assert needle in text


def test_inspect_unknown_lists_loaders(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"weights": {}}, path)
    with pytest.raises(ValueError, match="no upstream loader recognises"):
        inspect_checkpoint(path)


def test_cli_inspect(fairseq_ckpt, cli_with_extra, capsys):
    assert cli_with_extra.main(["inspect", str(fairseq_ckpt)]) == 0
    assert "family:          wav2vec2" in capsys.readouterr().out
    assert cli_with_extra.main(["inspect", "--json", str(fairseq_ckpt)]) == 0
    assert json.loads(capsys.readouterr().out)["num_layers"] == 3


def _audio(tmp_path, lens):
    paths = []
    rng = np.random.default_rng(0)
    for i, n in enumerate(lens):
        p = tmp_path / f"a{i}.wav"
        sf.write(p, (0.1 * rng.standard_normal(n)).astype(np.float32), 16000, subtype="FLOAT")
        paths.append(p)
    return paths


def test_extract_writes_all_layers(fairseq_ckpt, tmp_path):
    paths = _audio(tmp_path, [8000, 12345])
    model = build_upstream("wav2vec2", ckpt=fairseq_ckpt)
    out = tmp_path / "feats.pt"
    extract_features(model, paths, out)
    saved = torch.load(out, weights_only=True)
    assert saved["num_layers"] == 3 and saved["downsample_rate"] == 320
    for p, entry in zip(paths, saved["files"]):
        wav, _ = sf.read(p, dtype="float32")
        with torch.no_grad():
            ref = model(torch.from_numpy(wav)[None], torch.tensor([len(wav)]))
        assert entry["num_frames"] == int(ref.lengths[0]) == (len(wav) - 400) // 320 + 1
        assert len(entry["hidden_states"]) == 3
        for a, b in zip(entry["hidden_states"], ref.hidden_states):
            assert torch.equal(a, b[0])


def test_cli_extract(fairseq_ckpt, tmp_path, cli_with_extra):
    paths = _audio(tmp_path, [6000])
    out = tmp_path / "f.pt"
    argv = ["extract", "--upstream", "wav2vec2", "--upstream-ckpt", str(fairseq_ckpt), "--output", str(out),
            "--device", "cpu", "--quiet", *map(str, paths)]
    assert cli_with_extra.main(argv) == 0
    saved = torch.load(out, weights_only=True)
    assert saved["checkpoint"] == str(fairseq_ckpt) and len(saved["files"][0]["hidden_states"]) == 3
    argv = ["extract", "--upstream", "hubert", "--random-init", "--upstream-option", "num_layers=1",
            "--output", str(out), "--quiet", str(paths[0])]
    assert cli_with_extra.main(argv) == 0
    assert len(torch.load(out, weights_only=True)["files"][0]["hidden_states"]) == 2


def test_cli_unsafe_checkpoint_is_a_user_error(tmp_path, cli_with_extra, capsys):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    assert cli_with_extra.main(["inspect", str(path)]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists()


def _write_all_formats(tmp_path):
    """The same small HuBERT in the three formats, written from our own weights (no peers)."""
    from superb.upstream.wav2vec2.import_hf import HF_KEY_MAP

    torch.manual_seed(3)
    ours = build_upstream("hubert", random_init=True, **SMALL)
    sd = ours.model.state_dict()
    fs = {source_name(k, FAIRSEQ_KEY_MAP): v for k, v in sd.items()}
    for p in ("weight", "bias"):  # group-norm CNN: the norm sits at conv_layers.0.2
        fs[f"feature_extractor.conv_layers.0.2.{p}"] = fs.pop(f"feature_extractor.conv_layers.0.2.1.{p}")
    model_cfg = dict(FAIRSEQ_CFG, _name="hubert", extractor_mode="default", conv_bias=False, layer_norm_first=False)
    paths = {}
    paths["fairseq"] = tmp_path / "hubert_fairseq.pt"
    torch.save({"cfg": {"model": model_cfg, "task": {"normalize": False}}, "model": fs}, paths["fairseq"])
    paths["s3prl"] = tmp_path / "hubert_s3prl.pt"
    torch.save({"task_cfg": {"normalize": False}, "model_cfg": model_cfg, "model_weight": fs,
                "dictionaries_symbols": [["a", "b"]]}, paths["s3prl"])
    hf = tmp_path / "hubert_hf"
    hf.mkdir()
    torch.save({source_name(k, HF_KEY_MAP): v for k, v in sd.items()}, hf / "pytorch_model.bin")
    (hf / "config.json").write_text(json.dumps({
        "model_type": "hubert", "architectures": ["HubertModel"], "hidden_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 64, "conv_dim": [32] * 7,
        "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_bias": False,
        "feat_extract_norm": "group", "do_stable_layer_norm": False, "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4}))
    paths["huggingface"] = hf
    return ours, paths


def test_all_formats_load_identically(tmp_path):
    ours, paths = _write_all_formats(tmp_path)
    wavs, lens = torch.randn(2, 4000), torch.tensor([4000, 2500])
    with torch.no_grad():
        ref = ours(wavs, lens)
        for fmt, path in paths.items():
            model = build_upstream("hubert", ckpt=path)
            assert model.source_format == fmt and inspect_checkpoint(path)["format"] == fmt
            for a, b in zip(model(wavs, lens).hidden_states, ref.hidden_states):
                assert torch.equal(a, b), fmt


@pytest.mark.parametrize("fmt", ["fairseq", "s3prl", "huggingface"])
def test_cli_run_ks_with_every_format(fmt, tmp_path, cli_with_extra):
    _, paths = _write_all_formats(tmp_path)
    out = tmp_path / "run"
    argv = ["run", "--upstream", "hubert", "--upstream-ckpt", str(paths[fmt]), "--task", "ks", "--max-steps", "2",
            "--mini-profile", "tiny", "--output", str(out), "--device", "cpu", "--quiet"]
    assert cli_with_extra.main(argv) == 0
    assert (out / "results.json").is_file()
