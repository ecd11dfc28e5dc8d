"""ASR with a KenLM n-gram: flashlight-text lexicon beam search (``task.decoder: kenlm``).

The language model is an ARPA file written by :func:`superb.downstream.decoders.write_arpa` from
the fixture transcripts (no lmplz needed).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from superb.benchmark.cli import main
from superb.benchmark.config import ConfigError, resolve_config
from superb.benchmark.export import collect
from superb.benchmark.runner import Runner, evaluate_run
from superb.benchmark.submit import plan_submission
from superb.downstream.decoders import write_arpa
from superb.downstream.heads.ctc import CHAR_TO_ID, VOCAB, decode_ids
from superb.downstream.tasks.asr import Hypotheses, SpeechRecognition

from conftest import write_librispeech  # noqa: F401  (the libri_data fixture's writer)

FIXTURE_TEXTS = ("HELLO WORLD", "IT'S A TEST", "GOOD MORNING TO YOU")  # conftest.write_librispeech
SPLITS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}

def _have_flashlight() -> bool:
    try:
        import flashlight.lib.text.decoder  # noqa: F401
    except ImportError:
        return False
    return True


needs_flashlight = pytest.mark.skipif(not _have_flashlight(), reason="flashlight-text not installed (superb[lm])")


@needs_flashlight
def test_arpa_writer_is_a_normalised_model(tmp_path):
    """The fixture LM, read by the KenLM that flashlight-text bundles: every context's next-word
    distribution (vocabulary, <unk> and </s>) sums to one, and word order matters."""
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import create_word_dict

    words = sorted({w for s in FIXTURE_TEXTS for w in s.split()}) + ["<unk>"]
    word_dict = create_word_dict({w: [] for w in words})
    lm = KenLM(str(write_arpa(FIXTURE_TEXTS, tmp_path / "lm.arpa")), word_dict)

    def state_after(context):
        state = lm.start(False)
        for c in context:
            state, _ = lm.score(state, word_dict.get_index(c))
        return state

    def log10_prob(sentence):
        state, total = lm.start(False), 0.0
        for w in sentence.split():
            state, s = lm.score(state, word_dict.get_index(w))
            total += s
        return total + lm.finish(state)[1]

    for context in ([], ["HELLO"], ["GOOD", "MORNING"], ["TO", "WORLD"]):
        state = state_after(context)
        total = sum(10 ** lm.score(state, word_dict.get_index(w))[1] for w in words) + 10 ** lm.finish(state)[1]
        assert total == pytest.approx(1.0, abs=1e-4), context
    assert log10_prob("HELLO WORLD") > log10_prob("WORLD HELLO")


def _ambiguous_log_probs(margin: float = 1.0) -> torch.Tensor:
    """'HELLO' clearly, then frames where the letters of TEST beat those of WORLD by ``margin`` nats
    each: acoustics prefer 'HELLO TEST', the fixture LM prefers 'HELLO WORLD'."""
    rows = []

    def frame(*pairs):
        r = torch.full((len(VOCAB),), -12.0)
        for ch, lp in pairs:
            r[0 if ch == "-" else CHAR_TO_ID[ch]] = lp
        rows.append(r)

    for ch in "HELLO":
        frame((ch, 0.0))
        frame(("-", 0.0))
    frame(("|", 0.0))
    for a, b in zip("TEST-", "WORLD"):
        frame((a, 0.0), (b, -margin))
        frame(("-", 0.0))
    return torch.stack(rows).log_softmax(-1)


@needs_flashlight
def test_decoder_honours_lm_weight_and_beam_size(tmp_path):
    from superb.downstream.decoders import KenLMDecoder

    lm = write_arpa(FIXTURE_TEXTS, tmp_path / "lm.arpa")
    lp = _ambiguous_log_probs()
    assert decode_ids(lp.argmax(-1).tolist()) == "HELLO TEST"  # greedy CTC follows the acoustics
    assert KenLMDecoder(VOCAB, lm, beam_size=5, lm_weight=0.0).decode(lp) == "HELLO TEST"  # acoustics only
    assert KenLMDecoder(VOCAB, lm, beam_size=5, lm_weight=5.0).decode(lp) == "HELLO WORLD"  # the LM wins
    # a beam of one prunes the WORLD path before the LM sees the word
    assert KenLMDecoder(VOCAB, lm, beam_size=1, lm_weight=5.0).decode(lp) == "HELLO TEST"
    d = KenLMDecoder(VOCAB, lm, beam_size=7, lm_weight=1.5, word_score=-0.5, beam_threshold=20)
    desc = d.describe()
    assert (desc["beam_size"], desc["lm_weight"], desc["word_score"], desc["beam_threshold"]) == (7, 1.5, -0.5, 20.0)
    assert desc["beam_size_token"] == len(VOCAB) and desc["lexicon_words"] == 9


@needs_flashlight
def test_task_options_reach_the_decoder_and_lexicon_file(tmp_path):
    lm = write_arpa(FIXTURE_TEXTS, tmp_path / "lm.arpa")
    lexicon = tmp_path / "lexicon.lst"  # fairseq letter format, trailing word boundary
    lexicon.write_text("".join(f"{w}\t{' '.join(w)} |\n" for w in ("HELLO", "WORLD", "TEST")))
    task = SpeechRecognition({"splits": SPLITS, "decoder": "kenlm",
                              "kenlm": {"lm_path": str(lm), "lexicon": str(lexicon), "beam_size": 3,
                                        "lm_weight": 5.0, "word_score": -1.0}})
    d = task.build_lm_decoder()
    assert d.options["beam_size"] == 3 and d.options["lm_weight"] == 5.0 and d.num_words == 3
    assert d.decode(_ambiguous_log_probs()) == "HELLO WORLD"
    bad = tmp_path / "bad.lst"
    bad.write_text("HELLO\th e l l o |\n")
    task.cfg["kenlm"]["lexicon"] = str(bad)
    with pytest.raises(ValueError, match=r"bad.lst:1: spelling of 'HELLO'"):
        task.build_lm_decoder()


def test_missing_lm_file_and_bad_options_are_errors(tmp_path):
    missing = tmp_path / "nowhere" / "4-gram.arpa"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        SpeechRecognition({"splits": SPLITS, "decoder": "kenlm", "kenlm": {"lm_path": str(missing)}})
    with pytest.raises(ValueError, match="task.kenlm.lm_path"):
        SpeechRecognition({"splits": SPLITS, "decoder": "kenlm", "kenlm": {"lm_path": None}})
    with pytest.raises(ValueError, match="task.decoder must be one of greedy, kenlm"):
        SpeechRecognition({"splits": SPLITS, "decoder": "beam"})
    lm = write_arpa(FIXTURE_TEXTS, tmp_path / "lm.arpa")
    with pytest.raises(ValueError, match="task.kenlm.beam_size must be a whole number"):
        SpeechRecognition({"splits": SPLITS, "decoder": "kenlm", "kenlm": {"lm_path": str(lm), "beam_size": 0}})
    with pytest.raises(ValueError, match="unknown task.kenlm key"):
        SpeechRecognition({"splits": SPLITS, "decoder": "kenlm", "kenlm": {"lm_path": str(lm), "beam": 5}})


def test_greedy_stays_the_default():
    recipe = resolve_config("asr", use_mini=False)
    assert recipe["task"]["decoder"] == "greedy" and recipe["task"]["kenlm"]["lm_path"] is None
    assert (recipe["task"]["kenlm"]["beam_size"], recipe["task"]["kenlm"]["lm_weight"],
            recipe["task"]["kenlm"]["word_score"], recipe["task"]["kenlm"]["beam_threshold"]) == (5, 2.0, -1.0, 25.0)
    task = SpeechRecognition({"splits": SPLITS})
    assert task.decoder_name == "greedy" and task.data_notes == {}
    lp = _ambiguous_log_probs()[None]
    assert task.predict(lambda f, n: lp, None, torch.tensor([lp.shape[1]]), [None]) == ["HELLO TEST"]


@needs_flashlight
def test_lm_decoding_lowers_wer_of_a_trained_checkpoint(tmp_path, libri_data):
    """A short real ASR run on the tone fixture: greedy still misspells every word; the LM beam
    search over the same checkpoint's outputs recovers words (s3prl's default search options)."""
    lm = write_arpa(FIXTURE_TEXTS, tmp_path / "lm.arpa")
    sets = {"runner.total_steps": 600, "runner.eval_every": 600, "runner.save_every": 600, "runner.log_every": 600,
            "optimizer.lr": 1e-2, "task.projector_dim": 16, "task.rnn_dim": 16, "batch.max_seconds": 3.0,
            "task.decoder": "kenlm", "task.kenlm.lm_path": str(lm)}
    cfg = resolve_config("asr", use_mini=False, sets=[f"{k}={v}" for k, v in sets.items()])
    cfg.update({"upstream": {"name": "fbank", "ckpt": None, "random_init": False, "options": {}},
                "data": {"dir": str(libri_data)}, "device": "cpu"})
    out = tmp_path / "run"
    results = Runner(cfg, out, progress=False).run()
    test = results["metrics"]["test"]
    assert set(test) == {"wer", "cer", "wer_lm", "cer_lm"}
    assert test["wer_lm"] < test["wer"], test
    assert results["metric_units"]["wer_lm"].startswith("percent") and results["primary_metric"] == "wer"
    notes = results["data"]["notes"]["decoder"]
    assert notes["type"] == "kenlm" and notes["lm_path"] == str(lm)
    assert (notes["beam_size"], notes["lm_weight"], notes["word_score"]) == (5, 2.0, -1.0)
    assert sorted(results["predictions"]["test"]) == ["predictions/test/predict.ark", "predictions/test/predict_lm.ark"]
    lm_words = {w for line in (out / "predictions/test/predict_lm.ark").read_text().splitlines()
                for w in line.split()[1:]}
    assert lm_words and lm_words <= {w for s in FIXTURE_TEXTS for w in s.split()}
    json.dumps(results, allow_nan=False)  # -inf unknown-word score is recorded as a string
    assert isinstance(Hypotheses("a", "b"), Hypotheses)

    # the same checkpoint re-decoded with other search options: `superb evaluate --set`
    assert main(["evaluate", str(out), "--split", "test", "--quiet", "--set", "task.kenlm.lm_weight=0",
                 "--set", "task.kenlm.beam_size=1"]) == 0
    ev = json.loads((out / "evaluate-test.json").read_text())
    assert ev["settings"] == ["task.kenlm.lm_weight=0", "task.kenlm.beam_size=1"]
    assert (ev["decoder"]["lm_weight"], ev["decoder"]["beam_size"]) == (0.0, 1)
    assert ev["metrics"]["wer"] == test["wer"]  # greedy is untouched by the LM options
    with pytest.raises(ConfigError, match=r"only decoding settings \(task.decoder, task.kenlm\); task.rnn_dim"):
        evaluate_run(out, sets=["task.rnn_dim=8"])
    with pytest.raises(ConfigError, match=r"optimizer"):
        evaluate_run(out, sets=["optimizer.lr=1"])

    # the leaderboard's ASR+LM column: superb submit adds asr_lm_public/predict.ark
    plan = plan_submission(collect([out]))
    assert sorted(plan.files) == ["predict/asr_lm_public/predict.ark", "predict/asr_public/predict.ark"]
    lm_lines = (out / "predictions/test/predict_lm.ark").read_text().split("\n")
    assert plan.files["predict/asr_lm_public/predict.ark"].decode().split("\n") == [
        " ".join(line.split()) for line in lm_lines]
