"""PR: LibriSpeech + g2p lexicon loader, CTC decoding, PER, a short run and the mini split."""
import pytest

from conftest import write_librispeech
from superb.benchmark.config import resolve_config
from superb.benchmark.runner import Runner
from superb.downstream.tasks.pr import PhonemeRecognition, ctc_greedy, read_lexicon

SPLITS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}
LEXICON = (
    "HELLO\tHH AH0 L OW1\n"
    "WORLD\tW ER1 L D\n"
    "IT'S\tIH1 T S\n"
    "A\tAH0\n"
    "A\tEY1\n"  # a second pronunciation: the first one read wins
    "TEST\tT EH1 S T\n"
    "GOOD\tG UH1 D\n"
    "MORNING\tM AO1 R N IH0 NG\n"
)


@pytest.fixture
def pr_data(tmp_path):
    root = tmp_path / "libri"
    for split in SPLITS.values():
        write_librispeech(root, split)
    (root / "lexicon.txt").write_text(LEXICON)
    (root / "extra.txt").write_text("TO T UW1\nTEST T EH2 S T\nYOU Y UW1\n")  # space-separated g2p format too
    return root


def test_lexicon_maps_words_to_phones(pr_data):
    task = PhonemeRecognition({"splits": SPLITS, "lexicon": ["lexicon.txt", "extra.txt"], "projector_dim": 256})
    splits = task.prepare(pr_data)
    by_id = {e.id: e.label for e in splits["dev"]}
    assert by_id["19-198-0000"] == ("HH", "AH0", "L", "OW1", "W", "ER1", "L", "D")
    assert by_id["19-198-0001"] == ("IH1", "T", "S", "AH0", "T", "EH1", "S", "T")  # first entries win
    assert by_id["19-198-0002"] == ("G", "UH1", "D", "M", "AO1", "R", "N", "IH0", "NG", "T", "UW1", "Y", "UW1")
    # the vocabulary holds the phones of the pronunciations in use (not EY1, EH2 of the second entries)
    phones = {"AH0", "AO1", "D", "EH1", "ER1", "G", "HH", "IH0", "IH1", "L", "M", "N", "NG", "OW1",
              "R", "S", "T", "UH1", "UW1", "W", "Y"}
    assert task.vocab == ("<blank>",) + tuple(sorted(phones))
    head = task.build_head(80, 160)
    assert head.projector.out_features == 256 and head.output.out_features == len(phones) + 1


def test_missing_word_and_bad_lexicon_are_named(pr_data, tmp_path):
    task = PhonemeRecognition({"splits": SPLITS})  # default lexicon: <data>/lexicon.txt, lacks "TO"
    with pytest.raises(ValueError, match=r"word .TO. is missing from the lexicon .*lexicon.txt"):
        task.prepare(pr_data)
    (tmp_path / "bad.txt").write_text("HELLO HH AH0\nWORLD\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: lexicon entry 'WORLD' has no phones"):
        read_lexicon([tmp_path / "bad.txt"])
    with pytest.raises(FileNotFoundError, match="lexicon file not found: .*nope.txt"):
        read_lexicon([tmp_path / "nope.txt"])


def test_ctc_greedy_by_hand():
    assert ctc_greedy([0, 3, 3, 0, 3, 5, 5, 0]) == [3, 3, 5]  # (PER itself: tests/test_metrics_error_rates.py)


def test_short_run_writes_phone_predictions(pr_data, tmp_path):
    sets = {"runner.total_steps": 3, "runner.eval_every": 3, "runner.save_every": 3, "runner.log_every": 1,
            "task.lexicon": str(pr_data / "lexicon.txt"), "task.projector_dim": 16}
    cfg = resolve_config("pr", use_mini=False, sets=[f"{k}={v}" for k, v in sets.items()])
    (pr_data / "lexicon.txt").write_text(LEXICON + "TO\tT UW1\nYOU\tY UW1\n")
    cfg.update({"upstream": {"name": "fbank", "ckpt": None, "random_init": False, "options": {}},
                "data": {"dir": str(pr_data)}, "device": "cpu"})
    res = Runner(cfg, tmp_path / "run", progress=False).run()
    assert set(res["metrics"]["test"]) == {"per"} and res["metrics"]["test"]["per"] >= 0
    lines = (tmp_path / "run" / "predictions" / "test" / "predict.ark").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == sorted(f"{s}-198-{u:04d}" for s in (19, 26) for u in range(3))


def test_mini_librispeech_lexicon_parses(tmp_path):
    from superb.downstream.mini import ensure_split

    data = ensure_split("librispeech", profile="tiny", progress=False)
    task = PhonemeRecognition({"splits": {"train": "train", "dev": "dev", "test": "test"}, "lexicon": None})
    splits = task.prepare(data)
    assert all(e.label for e in splits["train"]) and len(task.vocab) > 20
