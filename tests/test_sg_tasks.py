"""SUPERB-SG tasks end to end on the tiny mini corpus: SE, SS, VC, ST, OOD-ASR through the runner
(few steps, tiny heads), their files (metrics, listening examples, spectrograms, predictions),
re-evaluation of the saved run, and the leaderboard submission picking the files up."""
import json
import os

import numpy as np
import pytest
import soundfile as sf

from superb.benchmark.config import resolve_config
from superb.benchmark.runner import Runner, evaluate_run

TINY = {
    "se": {"task.hidden_size": 16, "task.rnn_layers": 2, "task.num_examples": 2},
    "ss": {"task.hidden_size": 16, "task.rnn_layers": 2, "task.num_examples": 2},
    "vc": {"task.model.hidden_dim": 32, "task.model.conv_channels": 16, "task.model.prenet_dim": 16,
           "task.dev_utterances": 2, "task.num_examples": 1, "task.mel.gl_iters": 8,
           "task.source_speakers": "[SEF1, SEM1]"},
    "st": {"task.model.d_model": 32, "task.model.heads": 2, "task.model.ffn_dim": 64, "task.model.conv_channels": 32,
           "task.beam": 3, "task.max_len_b": 30},
    "ood_asr": {"task.projector_dim": 16, "task.rnn_dim": 16},
}


def _run(task, out, cache, **extra):
    sets = {"runner.total_steps": 2, "runner.eval_every": 2, "runner.save_every": 2, "runner.log_every": 1}
    sets.update(TINY[task])
    sets.update(extra)
    cfg = resolve_config(task, use_mini=True, sets=[f"{k}={v}" for k, v in sets.items()])
    cfg.update({"upstream": {"name": "fbank", "ckpt": None, "random_init": False, "options": {}},
                "data": {"dir": None, "mini_profile": "tiny", "cache_dir": str(cache), "mini_seed": 0}, "device": "cpu"})
    return Runner(cfg, out, progress=False).run()


@pytest.fixture(scope="module")
def run_of(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "superb-cache"
    os.environ.setdefault("SUPERB_TEST_CACHE", str(cache))
    done = {}

    def get(task):
        if task not in done:
            out = tmp_path_factory.mktemp(f"run-{task}")
            done[task] = (out, _run(task, out, cache))
        return done[task]

    return get


def _png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("task", ["se", "ss"])
def test_mask_tasks_write_metrics_examples_and_spectrograms(run_of, task):
    out, res = run_of(task)
    test = res["metrics"]["test"]
    for key in ("si_sdri", "si_sdr", "si_sdr_input", "pesq", "stoi", "pesq_input", "stoi_input"):
        assert np.isfinite(test[key]), key
    assert test["si_sdri"] == pytest.approx(test["si_sdr"] - test["si_sdr_input"])
    assert 0.0 <= test["stoi"] <= 1.0 and -0.5 <= test["pesq"] <= 4.64
    if task == "ss":
        assert "pesq" not in res["metrics"]["dev"]  # quality metrics on test only (quality_on_dev: false)
    lines = (out / "predictions/test/metrics.txt").read_text().splitlines()
    names = [line.split()[0] for line in lines]
    assert names == (["pesq", "stoi", "si_sdri"] if task == "se" else ["si_sdri", "stoi", "pesq"])
    for line in lines:
        k, v = line.split()
        assert float(v) == pytest.approx(test[k], abs=1e-5)
    rows = (out / "predictions/test/utterances.tsv").read_text().splitlines()
    assert len(rows) == 1 + res["data"]["num_examples"]["test"]
    pngs = sorted((out / "predictions/test/examples").glob("*.png"))
    wavs = sorted((out / "predictions/test/examples").glob("*.wav"))
    assert len(pngs) == 2 and all(_png(p) for p in pngs)  # task.num_examples
    per_example = 3 if task == "se" else 5  # input, estimate(s), reference(s)
    assert len(wavs) == per_example * len(pngs)
    info = {w.name: sf.info(str(w)) for w in wavs}
    assert all(i.samplerate == 16000 and i.channels == 1 for i in info.values())
    assert len({i.frames for n, i in info.items() if n.startswith(pngs[0].stem + "_")}) == 1


def test_vc_metrics_baseline_and_reproducible_evaluation(run_of):
    out, res = run_of("vc")
    test = res["metrics"]["test"]
    assert set(test) == {"mcd", "mcd_source"} and test["mcd"] > 0 and test["mcd_source"] > 0
    assert set(res["metrics"]["dev"]) == {"mcd"}
    notes = res["data"]["notes"]["vc_metrics"]
    assert notes["wer"].startswith("skipped") and notes["accept"].startswith("skipped")
    ex = out / "predictions/test/examples"
    assert len(list(ex.glob("*_converted.wav"))) == 1 and len(list(ex.glob("*.png"))) == 1
    # prenet dropout at inference is seeded per utterance and Griffin-Lim's start is fixed
    assert evaluate_run(out, "test", progress=False) == pytest.approx(test)


class FakeASR:
    def transcribe(self, wav, sample_rate):
        assert sample_rate == 16000 and wav.ndim == 1
        return "the old dog is here"


class FakeASV:
    def embed(self, wav, sample_rate):
        spec = np.abs(np.fft.rfft(wav[:8000], 1024))[:64]
        return np.log(spec + 1e-3)


def make_asr():
    return FakeASR()


def make_asv():
    return FakeASV()


def test_vc_with_user_asr_and_asv_models(tmp_path, run_of):
    run_of("vc")  # the corpus is built
    res = _run("vc", tmp_path / "judged", os.environ["SUPERB_TEST_CACHE"],
               **{"task.asr_model": "test_sg_tasks:make_asr", "task.asv_model": "test_sg_tasks:make_asv",
                  "task.source_speakers": "[SEF1]",
                  "runner.total_steps": 1, "runner.eval_every": 1, "runner.save_every": 1})
    test = res["metrics"]["test"]
    assert 0 < test["wer"] <= 200 and 0 <= test["cer"] <= 200
    assert 0.0 <= test["accept"] <= 100.0
    assert "notes" not in res["data"] or "vc_metrics" not in res["data"]["notes"]


def test_st_bleu_predict_tsv_and_saved_tokenizer(run_of):
    out, res = run_of("st")
    test = res["metrics"]["test"]
    assert set(test) == {"bleu", "bleu_constant"} and 0 <= test["bleu"] <= 100
    rows = (out / "predictions/test/predict.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "id\thyp\tref" and len(rows) == 1 + res["data"]["num_examples"]["test"]
    assert all(len(r.split("\t")) == 3 for r in rows)
    import torch

    best = torch.load(out / "checkpoints/best.pt", weights_only=True)
    assert isinstance(best["head"]["_extra_state"]["spm_proto"], bytes)
    assert evaluate_run(out, "test", progress=False) == pytest.approx(test)


def test_ood_asr_vocabulary_travels_with_the_head(run_of):
    out, res = run_of("ood_asr")
    test = res["metrics"]["test"]
    assert set(test) == {"wer", "cer", "wer_constant", "cer_constant"}
    assert res["primary_metric"] == "wer" and res["data"]["notes"]["language"] == "es"
    import torch

    vocab = torch.load(out / "checkpoints/best.pt", weights_only=True)["head"]["_extra_state"]["vocab"]
    assert vocab[:2] == ["<blank>", "|"] and len(vocab) == res["data"]["notes"]["vocabulary_size"]
    lines = (out / "predictions/test/predict.ark").read_text(encoding="utf-8").splitlines()
    assert len(lines) == res["data"]["num_examples"]["test"] and lines[0].startswith("common_voice_es_")
    assert evaluate_run(out, "test", progress=False) == pytest.approx(test)


def test_submission_picks_up_se_ss_and_st(run_of):
    from superb.benchmark.export import collect
    from superb.benchmark.submit import plan_submission

    dirs = [run_of(t)[0] for t in ("se", "ss", "st")]
    plan = plan_submission(collect(dirs))
    assert sorted(plan.included) == ["se", "ss", "st"]
    se = plan.files["predict/se_public/metrics.txt"].decode().split()
    assert se[0::2] == ["pesq", "stoi"]  # exactly the lines the server reads (docs/submission.md)
    assert plan.files["predict/ss_public/metrics.txt"].decode().split()[0::2] == ["si_sdri"]
    assert plan.files["predict/st_public/predict.tsv"].decode().startswith("id\thyp\tref\n")
    assert json.loads((dirs[1] / "results.json").read_text())["primary_metric"] == "si_sdri"
