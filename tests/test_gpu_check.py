"""The prepared GPU check (benchmark/perf/gpu_check.py): arguments and result files.

Its CPU smoke mode (``--quick``) takes ~25-30 s here (HuBERT Base on CPU, two KS runs), over the
20 s a fast test may take, so it is not run in the suite: run it by hand with
``python -m superb.benchmark.perf.gpu_check OUT --quick`` (docs/performance.md)."""
import json

import pytest

from superb.benchmark.perf import gpu_check


def test_defaults_full_and_quick():
    full = gpu_check.parse_args(["out"])
    assert full.device == "cuda" and full.parts == ["hubert", "ks"] and not full.quick
    assert full.ks_steps == 200 and full.hubert_seconds[0] == 2.0 and full.hubert_seconds[-1] == 16.0
    assert full.hubert_timeout_s + full.ks_timeout_s < 8 * 60 - 30  # the whole check fits in 8 minutes
    quick = gpu_check.parse_args(["out", "--quick"])
    assert quick.device == "cpu" and quick.ks_steps < full.ks_steps and max(quick.hubert_seconds) <= 1.0
    custom = gpu_check.parse_args(["out", "--quick", "--device", "cuda:1", "--parts", "ks", "--ks-steps", "7"])
    assert (custom.device, custom.parts, custom.ks_steps) == ("cuda:1", ["ks"], 7)


def test_unknown_part_is_an_error(capsys):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["out", "--parts", "hubert,bogus"])
    assert "bogus" in capsys.readouterr().err


def results():
    run = {"device": "cuda", "precision": "fp32", "metrics": {"test": {"accuracy": 50.0}, "dev": {"accuracy": 40.0}},
           "best_step": 200, "run_wall_s": 3.0, "total_wall_s": 4.0, "peak_memory_mib": 120.5}
    hub = {"rounds": 10, "wall_s": 1.0, "rtf_audio_s_per_s": 720.0, "ms_per_batch": 100.0, "hidden_states": 13,
           "peak_memory_mib": 2048.0}
    parts = {
        "hubert": {"status": "ok", "part_wall_s": 30.0, "batch_seconds": [2.0, 16.0], "audio_s_per_batch": 18.0,
                   "params_m": 94.37, "bf16": dict(hub, rtf_audio_s_per_s=1440.0), "fp32": hub,
                   "bf16_vs_fp32_last_layer": {"max_abs_diff": 0.05, "fp32_max_abs": 4.0, "relative": 0.0125},
                   "bf16_speedup": 2.0},
        "ks": {"status": "ok", "part_wall_s": 20.0, "max_steps": 200, "seed": 0,
               "runs": {"device": run, "cpu": dict(run, device="cpu", peak_memory_mib=None)},
               "identical_metrics": True, "max_metric_abs_diff": 0.0},
    }
    return {"mode": "full", "environment": {"torch": "2.x", "device": "cuda", "gpu": "H200"}, "parts": parts,
            "peak_memory_mib": gpu_check.overall_peak(parts), "total_wall_s": 55.0, "finished_at": "now"}


def test_write_results_json_and_text(tmp_path):
    res = results()
    assert res["peak_memory_mib"] == 2048.0
    paths = gpu_check.write_results(tmp_path / "new", res)
    assert json.loads(paths["json"].read_text()) == res
    text = paths["text"].read_text()
    for needle in ("bf16:", "1440.0 s audio / s", "speed-up 2.0x", "max |diff| 5.000e-02", "[ks] ok",
                   "identical metrics: True", "peak torch.cuda.max_memory_allocated: 2048.0 MiB"):
        assert needle in text, needle


def test_failed_and_timed_out_parts_are_reported(tmp_path):
    res = results()
    res["parts"]["hubert"] = {"status": "timeout", "timeout_s": 240, "part_wall_s": 240.0, "log": "gpu_check-hubert.log"}
    res["parts"]["ks"] = {"status": "failed", "part_wall_s": 1.0, "error": "RuntimeError: boom"}
    res["peak_memory_mib"] = gpu_check.overall_peak(res["parts"])
    text = gpu_check.write_results(tmp_path, res)["text"].read_text()
    assert "[hubert] timeout" in text and "gpu_check-hubert.log" in text
    assert "[ks] failed" in text and "RuntimeError: boom" in text
    assert "max_memory_allocated: - MiB" in text
