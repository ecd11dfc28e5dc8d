"""`superb run` / `evaluate` / `list` end to end on the tiny profile of the embedded mini corpus."""
import json
import re

from superb.benchmark.cli import main


def test_run_ks_on_mini_corpus_and_evaluate(tmp_path, capsys):
    out = tmp_path / "ks"
    code = main(["run", "--upstream", "fbank", "--task", "ks", "--mini-profile", "tiny", "--max-steps", "6",
                 "--set", "runner.eval_every=3", "--output", str(out), "--quiet"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["data"]["dir"] is None and "mini-tiny-seed0" in results["data"]["dir"]
    assert results["steps"] == 6 and [h["step"] for h in results["dev_history"]] == [3, 6]
    assert results["config"]["runner"]["total_steps"] == 6
    assert results["config"]["runner"]["eval_every"] == 3
    # mini overrides applied, recipe values kept
    assert results["config"]["optimizer"]["lr"] == 1e-4
    assert 0.0 <= results["metrics"]["test"]["accuracy"] <= 100.0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--split", "test", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["metrics"]["accuracy"] == results["metrics"]["test"]["accuracy"]


def test_random_init_hubert_asr_runs_end_to_end(tmp_path):
    out = tmp_path / "asr"
    code = main(["run", "--upstream", "hubert", "--random-init", "--task", "asr", "--mini-profile", "tiny",
                 "--upstream-option", "num_layers=2", "--upstream-option", "hidden_size=96",
                 "--upstream-option", "num_heads=4", "--upstream-option", "ffn_dim=128",
                 "--set", "task.projector_dim=32", "--set", "task.rnn_dim=32",
                 "--max-steps", "2", "--output", str(out), "--quiet"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["upstream"]["weights"] == "random-init (seed 1337)"
    assert results["upstream"]["num_layers"] == 3 and results["upstream"]["downsample_rate"] == 320
    assert len(results["layer_weights"]) == 3 and abs(sum(results["layer_weights"]) - 1) < 1e-6
    assert set(results["metrics"]["test"]) == {"wer", "cer"}
    lines = (out / "predictions" / "test" / "predict.ark").read_text().splitlines()
    assert len(lines) == results["data"]["num_examples"]["test"]


def test_list_shows_upstreams_and_tasks(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("fbank", "mfcc", "hubert", "wav2vec2", "data2vec"):
        assert f"  {name} " in out
    assert re.search(r"^  ks +content +accuracy ↑", out, re.M) and "wer ↓" in out
