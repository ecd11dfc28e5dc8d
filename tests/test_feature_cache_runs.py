"""Runs with the feature store against runs without it: the same numbers, fewer upstream calls.

The upstream here has three hidden states with temporal context (a fixed random convolution over
FBANK frames), so the weighted sum, the time-mean store of linear pooled heads and frame crops are
all exercised on something that is not frame-local."""
import json
from pathlib import Path

import pytest
import torch

from superb.benchmark import pipeline
from superb.benchmark.runner import Runner, resume_run
from superb.upstream import Upstream, UpstreamOutput, build_upstream
from superb.upstream.base import valid_mask

from test_runner import Killed, KilledRunner, _config


class ContextUpstream(Upstream):
    """FBANK, then two fixed random 5-frame convolutions with tanh: 3 hidden states of 80."""

    downsample_rate = 160
    hidden_sizes = [80, 80, 80]
    calls = 0

    def __init__(self):
        super().__init__()
        self.fbank = build_upstream("fbank")
        g = torch.Generator().manual_seed(0)
        self.conv1 = torch.nn.Conv1d(80, 80, 5, padding=2)
        self.conv2 = torch.nn.Conv1d(80, 80, 5, padding=2)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.05

    def forward(self, wavs, wav_lens):
        ContextUpstream.calls += len(wavs)
        out = self.fbank(wavs, wav_lens)
        mask = valid_mask(out.lengths, out.hidden_states[0].shape[1]).unsqueeze(-1)
        h0 = out.hidden_states[0] / 10
        h1 = torch.tanh(self.conv1(h0.transpose(1, 2)).transpose(1, 2)) * mask
        h2 = torch.tanh(self.conv2(h1.transpose(1, 2)).transpose(1, 2)) * mask
        return UpstreamOutput(hidden_states=[h0, h1, h2], lengths=out.lengths)


def _run(cfg, out, model=None, **kwargs):
    return Runner(cfg, out, progress=False, upstream_model=model, **kwargs).run()


def _ks(data, tmp_path, mode, name="store", **sets):
    cfg = _config("ks", data, **{"runner.total_steps": 20, "runner.eval_every": 10, **sets})
    cfg["upstream"]["name"] = "in-memory:test_feature_cache_runs.ContextUpstream"
    cfg["cache"] = {"features": mode, "max_gb": None, "dtype": "fp32", "dir": str(tmp_path / name)}
    cfg["workers"] = 0
    return cfg


def _same_numbers(a, b, dir_a=None, dir_b=None):
    for split in ("dev", "test"):
        assert a["metrics"][split] == pytest.approx(b["metrics"][split], abs=1e-6)
    assert [h["accuracy"] for h in a["dev_history"]] == [h["accuracy"] for h in b["dev_history"]]
    assert a["layer_weights"] == pytest.approx(b["layer_weights"], abs=1e-5)
    assert a["best_step"] == b["best_step"]
    if dir_a is not None:  # the trained parameters themselves, not only the metrics
        pa = torch.load(dir_a / "checkpoints" / "best.pt")
        pb = torch.load(dir_b / "checkpoints" / "best.pt")
        for part in ("featurizer", "head"):
            for key in pa[part]:
                assert torch.allclose(pa[part][key], pb[part][key], atol=1e-5), (part, key)


@pytest.mark.parametrize("mode", ["auto", "frames"])
def test_stored_features_train_the_same_model_as_computed_ones(mode, tmp_path, ks_data):
    model = ContextUpstream()
    off = _run(_ks(ks_data, tmp_path, "off"), tmp_path / "off", model)
    assert off["feature_cache"] == {"used": False, "reason": "--feature-cache off"}

    ContextUpstream.calls = 0
    cold = _run(_ks(ks_data, tmp_path, mode), tmp_path / "cold", model)
    cold_calls = ContextUpstream.calls
    ContextUpstream.calls = 0
    warm = _run(_ks(ks_data, tmp_path, mode), tmp_path / "warm", model)

    kind = "time_mean" if mode == "auto" else "frames"  # KS has SUPERB's linear pooled head
    assert cold["feature_cache"]["used"] and cold["feature_cache"]["kind"] == kind
    _same_numbers(cold, off, tmp_path / "cold", tmp_path / "off")
    _same_numbers(warm, off, tmp_path / "warm", tmp_path / "off")
    # the cold run computed each utterance it met once (twice only where class-balanced sampling,
    # which draws with replacement, put it twice in one batch), the warm one never
    num = cold["data"]["num_examples"]
    stored = [p for p in Path(cold["feature_cache"]["dir"]).rglob("*") if p.is_file() and p.name != "identity.json"]
    assert num["dev"] + num["test"] + 0.8 * num["train"] <= len(stored) <= sum(num.values())
    assert len(stored) <= cold_calls == cold["feature_cache"]["misses"] < 1.5 * len(stored)
    assert ContextUpstream.calls == 0 and warm["feature_cache"]["misses"] == 0 and warm["feature_cache"]["writes"] == 0
    assert warm["feature_cache"]["key"] == cold["feature_cache"]["key"]


def test_the_store_key_follows_the_upstream_and_the_layers(tmp_path, ks_data):
    model = ContextUpstream()
    a = _run(_ks(ks_data, tmp_path, "auto"), tmp_path / "a", model)
    cfg = _ks(ks_data, tmp_path, "auto")
    cfg["upstream"]["feature"] = "layers:1,2"
    b = _run(cfg, tmp_path / "b", model)
    other = ContextUpstream()
    with torch.no_grad():
        other.conv2.bias.add_(1.0)
    c = _run(_ks(ks_data, tmp_path, "auto"), tmp_path / "c", other)
    keys = {r["feature_cache"]["key"] for r in (a, b, c)}
    assert len(keys) == 3
    assert b["upstream"]["layers"] == [1, 2] and b["feature_cache"]["misses"] > 0


def test_kill_while_filling_the_store_then_resume(tmp_path, ks_data):
    model = ContextUpstream()
    full = _run(_ks(ks_data, tmp_path, "auto", name="store_full"), tmp_path / "full", model)
    cfg = _ks(ks_data, tmp_path, "auto", name="store_killed", **{"runner.save_every": 4})
    killed = KilledRunner(cfg, tmp_path / "killed", progress=False, upstream_model=model)
    killed.kill_at = 6
    with pytest.raises(Killed):
        killed.run()
    resumed = Runner(cfg, tmp_path / "killed", resume=True, progress=False, upstream_model=model).run()
    _same_numbers(resumed, full)
    from superb.benchmark.feature_store import FeatureStore

    store = FeatureStore(tmp_path / "store_killed")
    (info,) = store.info()
    ns = store.namespace(info["identity"], dtype=info["dtype"])
    entries = [p for p in ns.dir.rglob("*") if p.is_file() and p.name != "identity.json"]
    assert len(entries) == info["entries"] > 0
    for p in entries:  # every entry reads back whole
        assert ns.get(p.stem) is not None, p


def test_workers_read_the_same_batches_as_the_main_thread(tmp_path, ks_data):
    model = ContextUpstream()
    cfg0 = _ks(ks_data, tmp_path, "off")
    cfg2 = _ks(ks_data, tmp_path, "off")
    cfg2["workers"] = 2
    a = _run(cfg0, tmp_path / "w0", model)
    b = _run(cfg2, tmp_path / "w2", model)
    assert b["workers"] == 2
    assert a["metrics"] == b["metrics"] and a["dev_history"] == b["dev_history"]
    assert a["layer_weights"] == b["layer_weights"]


def test_a_worker_error_is_raised_as_itself(tmp_path, ks_data):
    dev = sorted((ks_data / "speech_commands_v0.01").rglob("*.wav"))[0]
    reader = pipeline.BatchReader([], None)
    from superb.downstream.audio import AudioError, AudioSegment
    from superb.downstream.example import Example

    bad = tmp_path / "bad.wav"
    bad.write_bytes(dev.read_bytes()[:100])
    ex = Example("x", AudioSegment(str(bad), 16000), "yes")
    reader.examples = [ex]
    with pytest.raises(AudioError, match="bad.wav"):
        list(pipeline.batches(reader, pipeline.EvalKeys([[0]]), workers=1, seed=0))


def test_training_crops_are_computed_not_stored(tmp_path, ks_data):
    calls = []
    model = ContextUpstream()
    cfg = _ks(ks_data, tmp_path, "frames")
    runner = Runner(cfg, tmp_path / "crop", progress=False, upstream_model=model)
    try:
        from dataclasses import replace

        def crop(examples, epoch, seed):
            calls.append(epoch)
            return [replace(e, audio=replace(e.audio, num_samples=e.audio.num_samples - 320)) for e in examples]

        runner.task.training_examples = crop
        results = runner._run()
    finally:
        runner.close()
    assert calls and results["feature_cache"]["crops_uncached"] > 0
    n_eval = results["data"]["num_examples"]["dev"] + results["data"]["num_examples"]["test"]
    assert results["feature_cache"]["writes"] == n_eval  # only the uncropped dev/test utterances


def test_resume_of_a_run_from_before_the_store(tmp_path, ks_data):
    cfg = _ks(ks_data, tmp_path, "auto", **{"runner.save_every": 4})
    cfg["upstream"] = {"name": "fbank", "ckpt": None, "random_init": False, "options": {}}
    killed = KilledRunner(cfg, tmp_path / "old", progress=False)
    killed.kill_at = 5
    with pytest.raises(Killed):
        killed.run()
    saved = json.loads((tmp_path / "old" / "config.json").read_text())
    del saved["cache"], saved["workers"]  # as a config.json written before the store existed
    (tmp_path / "old" / "config.json").write_text(json.dumps(saved))
    results = resume_run(tmp_path / "old", progress=False)
    assert results["steps"] == 20 and results["feature_cache"]["used"]
