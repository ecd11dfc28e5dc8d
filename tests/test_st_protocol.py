"""ST protocol details that follow s3prl's CoVoST 2 preparation (``downstream/speech_translation/
prepare_data/``): the paired-corpus filter on every split (``REMOVE``, no words, word-count ratio
over 5), Moses punctuation normalisation of the translations (the SentencePiece text, the targets
and the BLEU references), and the recipe's training settings (Adam 1e-3, sqrt-decay warm-up,
10,000-frame batches)."""
import sys

import numpy as np
import pytest
import soundfile as sf

from superb.benchmark.config import resolve_config
from superb.downstream.tasks import get_task

SR = 16000
CV_HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\tlocale\tsegment\n"

# (clip number, English sentence or None when validated.tsv lacks the clip, translation, split, why dropped)
ROWS = [
    (1, "The dog is old.", "Der Hund ist alt.", "train", None),
    (2, "The cat is small.", "Er sagte: „Die Katze ist klein.“", "train_covost", None),
    (3, "Hello there.", "REMOVE", "train", "contains_remove"),
    (4, "I REMOVE nothing here.", "Ich entferne hier nichts.", "train", "contains_remove"),
    (5, "Yes.", "Ja, das ist wirklich eine sehr gute und schöne Idee.", "train", "word_ratio"),  # 10 : 1
    (6, "One two three four five.", "Eins.", "train", None),  # ratio exactly 5: kept
    (7, "Good.", "   ", "train", "no_words"),
    (8, None, "Ohne Satz.", "train", "no_source_sentence"),
    (9, "Please remove the box.", "Bitte entferne die Kiste.", "train", None),  # lower-case "remove": kept
    (10, "We see the house.", "Wir sehen « das Haus ».", "dev", None),
    (11, "Thanks.", "Danke REMOVE", "dev", "contains_remove"),
    (12, " ", "Leer.", "dev", "no_words"),
    (13, "Two apples, please.", "Zwei Äpfel – bitte…", "test", None),
    (14, "a b c d e f", "Eins.", "test", "word_ratio"),  # 6 : 1 (source longer)
    (15, "It works.", "Es geht ?", "test", None),
]
KEPT = {"train": [1, 2, 6, 9], "dev": [10], "test": [13, 15]}
SPLIT_OF = {"train": ("train", "train_covost"), "dev": ("dev",), "test": ("test",)}


def name(n):
    return f"common_voice_en_{n}.wav"


def write_covost(root, split_files=False, clips_of_dropped=True):
    """CoVoST 2 En->De in its release layout (table + Common Voice validated.tsv + clips), or as
    ``get_covost_splits.py`` writes it (one table per split with a ``sentence`` column)."""
    for n, _, _, _, why in ROWS:
        if why is None or clips_of_dropped:
            p = root / "en" / "clips" / name(n)
            p.parent.mkdir(parents=True, exist_ok=True)
            t = np.arange(int((0.4 + 0.02 * n) * SR)) / SR
            sf.write(p, (0.2 * np.sin(2 * np.pi * (150 + 20 * n) * t)).astype(np.float32), SR, subtype="PCM_16")
    if split_files:
        for split, values in SPLIT_OF.items():
            (root / f"covost_v2.en_de.{split}.tsv").write_text(
                "path\tsentence\ttranslation\tclient_id\n"
                + "".join(f"{name(n)}\t{s}\t{t}\tabc\n" for n, s, t, sp, _ in ROWS if sp in values and s is not None),
                encoding="utf-8")
    else:
        (root / "covost_v2.en_de.tsv").write_text(
            "path\ttranslation\tsplit\n" + "".join(f"{name(n)}\t{t}\t{s}\n" for n, _, t, s, _ in ROWS),
            encoding="utf-8")
        (root / "en" / "validated.tsv").write_text(
            CV_HEADER + "".join(f"abc\t{name(n)}\t{s}\t2\t0\t\t\t\ten\t\n" for n, s, _, _, _ in ROWS if s is not None),
            encoding="utf-8")
    return root


def st_task(**sets):
    cfg = resolve_config("st", use_mini=False, sets=[f"{k}={v}" for k, v in sets.items()])
    return get_task("st")(cfg["task"])


def expected_drops(split, split_files=False):
    counts = dict.fromkeys(("contains_remove", "no_words", "word_ratio", "no_source_sentence"), 0)
    for _, s, _, sp, why in ROWS:
        if sp in SPLIT_OF[split] and why and not (split_files and s is None):
            counts[why] += 1
    return dict(counts, total=sum(counts.values()))


# -- s3prl's paired-corpus filter -------------------------------------------------------------------
@pytest.mark.parametrize("split_files", [False, True])
def test_filter_drops_remove_empty_and_ratio_rows_on_every_split(tmp_path, split_files):
    t = st_task()
    splits = t.prepare(write_covost(tmp_path / "covost", split_files))
    for split, kept in KEPT.items():
        assert [e.id for e in splits[split]] == [f"common_voice_en_{n}" for n in kept], split
    dropped = t.data_notes["dropped_rows"]
    assert dropped == {k: expected_drops(k, split_files) for k in KEPT}
    assert dropped["train"]["total"] == (4 if split_files else 5) and dropped["dev"]["total"] == 2
    assert dropped["test"]["total"] == 1
    assert "source_filters" not in t.data_notes


def test_dropped_rows_need_no_clip_and_filters_follow_the_config(tmp_path):
    root = write_covost(tmp_path / "covost", clips_of_dropped=False)
    assert [e.id for e in st_task().prepare(root)["train"]] == [f"common_voice_en_{n}" for n in KEPT["train"]]
    t = st_task(**{"task.clean.max_ratio": 0})  # ratio test off: rows 5 (train) and 14 (test) come back
    root2 = write_covost(tmp_path / "covost2")
    splits = t.prepare(root2)
    assert "common_voice_en_5" in [e.id for e in splits["train"]]
    assert "common_voice_en_14" in [e.id for e in splits["test"]]


def test_without_source_sentences_only_the_target_is_filtered_and_noted(tmp_path):
    root = write_covost(tmp_path / "covost")
    (root / "en" / "validated.tsv").unlink()
    t = st_task()
    splits = t.prepare(root)
    assert "not applied" in t.data_notes["source_filters"]
    train = [e.id for e in splits["train"]]
    assert "common_voice_en_4" in train and "common_voice_en_8" in train  # source-side reasons unknown
    assert "common_voice_en_3" not in train and "common_voice_en_7" not in train  # target REMOVE / blank
    with pytest.raises(FileNotFoundError, match="task.cv_tsv"):
        st_task(**{"task.cv_tsv": "nope.tsv"}).prepare(root)


def test_split_emptied_by_the_filter_is_an_error(tmp_path):
    root = write_covost(tmp_path / "covost")
    table = root / "covost_v2.en_de.tsv"
    table.write_text(table.read_text(encoding="utf-8").replace("Wir sehen « das Haus ».", "REMOVE"), encoding="utf-8")
    with pytest.raises(ValueError, match="dev split: all 3 rows dropped"):
        st_task().prepare(root)


# -- Moses punctuation normalisation of the translations --------------------------------------------
def test_normalise_target_matches_sacremoses_and_s3prl_post_steps():
    from superb.downstream.tasks.st import normalize_target, punct_normalizer

    moses = punct_normalizer("de")
    # the normaliser's own output (sacremoses 0.2.0, lang de, unicode punctuation replaced first)
    assert moses.normalize("Er sagte: „Die Katze ist klein.“") == 'Er sagte: "Die Katze ist klein."'
    assert moses.normalize("Wir sehen « das Haus ».") == 'Wir sehen " das Haus ".'
    assert moses.normalize("Zwei Äpfel – bitte…") == "Zwei Äpfel - bitte..."
    assert moses.normalize("Preis：５ €（netto）！") == "Preis:5 € (netto)!"
    assert moses.normalize("Das ist ‚gut‘ so") == "Das ist 'gut' so"
    assert moses.normalize("Was ?  Ja , gut .") == "Was ? Ja , gut ."
    # then s3prl's prepare_normalize_tsv.py rejoins " ." " ?" " ," " '" and "do n't", and superb
    # collapses whitespace (no-break spaces and tabs too); control characters are removed
    assert normalize_target("Was ?  Ja , gut .", moses) == "Was? Ja, gut."
    assert normalize_target("I do n't know", moses) == "I don't know"
    assert normalize_target("Er sagte\u00a0„ja“\x07.", moses) == 'Er sagte "ja".'
    assert normalize_target("Zwei\tÄpfel", None) == "Zwei Äpfel"


def test_targets_spm_and_bleu_references_are_normalised(tmp_path):
    from superb.downstream.tasks.st import load_sentencepiece

    t = st_task()
    splits = t.prepare(write_covost(tmp_path / "covost"))
    assert t.cfg["tgt_lang"] == "de"
    labels = {e.id: e.label for s in splits.values() for e in s}
    assert labels["common_voice_en_2"] == 'Er sagte: "Die Katze ist klein."'
    assert labels["common_voice_en_10"] == 'Wir sehen " das Haus ".'
    assert labels["common_voice_en_13"] == "Zwei Äpfel - bitte..."
    assert labels["common_voice_en_15"] == "Es geht?"
    pieces = {load_sentencepiece(t._spm_proto).id_to_piece(i)
              for i in range(load_sentencepiece(t._spm_proto).get_piece_size())}
    assert '"' in pieces and not {"„", "“"} & pieces  # the tokenizer was trained on normalised text
    # the references BLEU scores against are the normalised translations
    test = splits["test"]
    assert t.score(test, ["Zwei Äpfel - bitte...", "Es geht?"])["bleu"] == pytest.approx(100.0)
    assert t.score(test, ["Zwei Äpfel – bitte…", "Es geht ?"])["bleu"] < 100.0
    (path,) = t.write_predictions(tmp_path / "pred", "test", test, ["x", "y"])
    refs = [r.split("\t")[2] for r in path.read_text(encoding="utf-8").splitlines()[1:]]
    assert refs == ["Zwei Äpfel - bitte...", "Es geht?"]


def test_normalisation_follows_target_language_and_can_be_turned_off(tmp_path, monkeypatch):
    import superb.downstream.tasks.st as st

    seen = []
    real = st.punct_normalizer
    monkeypatch.setattr(st, "punct_normalizer", lambda lang: seen.append(lang) or real(lang))
    root = write_covost(tmp_path / "covost")
    st_task().prepare(root)
    assert seen == ["de"]
    t = st_task(**{"task.normalize_punctuation": "false"})
    labels = {e.id: e.label for e in t.prepare(root)["train"]}
    assert labels["common_voice_en_2"] == "Er sagte: „Die Katze ist klein.“" and seen == ["de"]


def test_missing_sacremoses_is_a_clear_error(monkeypatch):
    from superb.downstream.tasks.st import punct_normalizer

    monkeypatch.setitem(sys.modules, "sacremoses", None)  # import fails
    with pytest.raises(ImportError, match=r"'sacremoses'.*pip install sacremoses"):
        punct_normalizer("de")


# -- recipe -----------------------------------------------------------------------------------------
def test_recipe_uses_s3prl_optimiser_schedule_and_frame_batches():
    cfg = resolve_config("st", use_mini=False)
    assert cfg["optimizer"]["name"] == "Adam" and cfg["optimizer"]["lr"] == pytest.approx(1e-3)
    assert cfg["scheduler"] == {"name": "sqrt_decay_warmup", "warmup_steps": 10000}
    assert cfg["batch"]["max_frames"] == 10000
    assert cfg["runner"]["total_steps"] == 32000 and cfg["runner"]["accumulate"] == 8
    assert cfg["task"]["clean"] == {"remove_marker": "REMOVE", "min_words": 1, "max_ratio": 5.0}
    assert cfg["task"]["normalize_punctuation"] is True
    mini = resolve_config("st", use_mini=True)
    assert mini["batch"]["max_frames"] is None and mini["batch"]["max_seconds"] == pytest.approx(30.0)
    assert mini["scheduler"] == {"name": "constant", "warmup_steps": 0}
    assert mini["optimizer"]["lr"] == pytest.approx(1e-3)
