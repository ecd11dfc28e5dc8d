"""SUPERB-SG loaders on small fixtures written in the official layouts (VoiceBank-DEMAND, Libri2Mix,
VCC2020, CoVoST 2 + Common Voice, Common Voice), and their refusals of broken corpora."""
import numpy as np
import pytest
import soundfile as sf

from superb.benchmark.config import resolve_config
from superb.downstream.audio import AudioError
from superb.downstream.tasks import get_task

SR = 16000


def tone(seconds, freq, seed=0, level=0.2):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * freq * t) + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def wav(path, audio, sr=SR, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "MP3":
        sf.write(path, audio, sr, format="MP3", subtype="MPEG_LAYER_III")
    else:
        sf.write(path, audio, sr, subtype="PCM_16")
    return path


def task(name, **sets):
    cfg = resolve_config(name, use_mini=False, sets=[f"{k}={v}" for k, v in sets.items()])
    return get_task(name)(cfg["task"])


# -- VoiceBank-DEMAND ---------------------------------------------------------------------------
def write_voicebank(root, suffix="_16k", speakers=("p226", "p287", "p230", "p231"), test=("p232", "p257")):
    for kind in ("clean", "noisy"):
        for i, spk in enumerate(speakers):
            for u in (1, 2):
                a = tone(0.5 + 0.1 * u, 200 + 20 * i, seed=i * 10 + u)
                if kind == "noisy":
                    a = a + 0.05 * np.random.default_rng(u).standard_normal(len(a)).astype(np.float32)
                wav(root / f"{kind}_trainset_28spk_wav{suffix}" / f"{spk}_{u:03d}.wav", a)
        for i, spk in enumerate(test):
            a = tone(0.6, 300 + 30 * i, seed=99 + i)
            wav(root / f"{kind}_testset_wav{suffix}" / f"{spk}_{1:03d}.wav",
                a if kind == "clean" else a + np.float32(0.02))
    return root


@pytest.mark.parametrize("suffix", ["_16k", ""])
def test_voicebank_layout(tmp_path, suffix):
    root = write_voicebank(tmp_path / "vb", suffix)
    splits = task("se").prepare(root)
    assert sorted(e.id for e in splits["dev"]) == ["p226_001", "p226_002", "p287_001", "p287_002"]
    assert sorted(e.id for e in splits["train"]) == ["p230_001", "p230_002", "p231_001", "p231_002"]
    assert sorted(e.id for e in splits["test"]) == ["p232_001", "p257_001"]
    e = splits["test"][0]
    assert e.audio.path.endswith(f"noisy_testset_wav{suffix}/p232_001.wav")
    assert e.label == (str(root / f"clean_testset_wav{suffix}" / "p232_001.wav"),)
    assert e.audio.num_samples == int(0.6 * SR)


def test_voicebank_refuses_unpaired_and_misaligned_files(tmp_path):
    root = write_voicebank(tmp_path / "vb")
    (root / "clean_testset_wav_16k" / "p257_001.wav").unlink()
    with pytest.raises(FileNotFoundError, match="no clean file for noisy p257_001.wav"):
        task("se").prepare(root)
    wav(root / "clean_testset_wav_16k" / "p257_001.wav", tone(0.3, 300))
    with pytest.raises(ValueError, match="p257_001.wav holds 4800 samples but"):
        task("se").prepare(root)
    with pytest.raises(ValueError, match=r"dev_speakers \['p999'\]"):
        write_voicebank(tmp_path / "ok")
        task("se", **{"task.dev_speakers": "[p999]"}).prepare(tmp_path / "ok")
    wav(tmp_path / "r48" / "noisy_testset_wav" / "p232_001.wav", tone(0.5, 300), sr=48000)
    write_voicebank(tmp_path / "r48", suffix="", test=())
    wav(tmp_path / "r48" / "clean_testset_wav" / "p232_001.wav", tone(0.5, 300), sr=48000)
    with pytest.raises(AudioError, match="48000 Hz, expected 16000 Hz"):
        task("se").prepare(tmp_path / "r48")


# -- Libri2Mix ------------------------------------------------------------------------------------
def write_libri2mix(root, splits=("train-100", "dev", "test")):
    base = root / "Libri2Mix" / "wav16k" / "min"
    for k, split in enumerate(splits):
        for m in range(2):
            mid = f"{100 + k}-{200 + m}-0001_{300 + k}-{400 + m}-0002"
            s1, s2 = tone(0.5, 220 + m * 30, seed=m), tone(0.5, 500 + m * 40, seed=m + 7)
            wav(base / split / "s1" / f"{mid}.wav", s1)
            wav(base / split / "s2" / f"{mid}.wav", s2)
            wav(base / split / "mix_clean" / f"{mid}.wav", s1 + s2)
    return root


def test_libri2mix_layout_from_any_level(tmp_path):
    root = write_libri2mix(tmp_path / "lm")
    for data in (root, root / "Libri2Mix", root / "Libri2Mix" / "wav16k" / "min"):
        splits = task("ss").prepare(data)
        assert {k: len(v) for k, v in splits.items()} == {"train": 2, "dev": 2, "test": 2}
    e = splits["test"][0]
    assert e.id == "102-200-0001_302-400-0002"
    assert e.label[0].endswith("test/s1/102-200-0001_302-400-0002.wav") and e.label[1].endswith("/s2/" + e.id + ".wav")


def test_libri2mix_refuses_missing_source(tmp_path):
    root = write_libri2mix(tmp_path / "lm")
    (root / "Libri2Mix/wav16k/min/dev/s2/101-201-0001_301-401-0002.wav").unlink()
    with pytest.raises(FileNotFoundError, match="s2/101-201-0001_301-401-0002.wav: source file missing"):
        task("ss").prepare(root)
    with pytest.raises(FileNotFoundError, match="Libri2Mix folder not found"):
        task("ss").prepare(tmp_path)


# -- VCC2020 --------------------------------------------------------------------------------------
def write_vcc2020(root, n_train=5, n_eval=2, sources=("SEF1", "SEF2", "SEM1", "SEM2"), target="TEF1"):
    d = root / "vcc2020"
    for i, spk in enumerate(sources + (target,)):
        for k in range(n_train):
            wav(d / spk / f"E1{k + 1:04d}.wav", tone(0.6, 150 + 40 * i, seed=k))
        for k in range(n_eval):
            wav(d / spk / f"E3{k + 1:04d}.wav", tone(0.7, 150 + 40 * i, seed=50 + k))
    (d / "prompts").mkdir(parents=True, exist_ok=True)
    (d / "prompts" / "Eng_transcriptions.txt").write_text(
        "".join(f"1{k + 1:04d} Training sentence {k}.\n" for k in range(n_train))
        + "".join(f"3{k + 1:04d} Evaluation sentence {k}.\n" for k in range(n_eval)))
    return root


def test_vcc2020_layout(tmp_path):
    root = write_vcc2020(tmp_path / "data")
    t = task("vc", **{"task.dev_utterances": 2})
    splits = t.prepare(root)
    assert [e.id for e in splits["train"]] == ["TEF1_E10001", "TEF1_E10002", "TEF1_E10003"]
    assert [e.id for e in splits["dev"]] == ["TEF1_E10004", "TEF1_E10005"]
    assert len(splits["test"]) == 8
    e = next(x for x in splits["test"] if x.id == "SEM1_E30002")
    assert e.audio.path.endswith("vcc2020/SEM1/E30002.wav")
    assert e.label["reference"].endswith("vcc2020/TEF1/E30002.wav") and e.label["source"] == "SEM1"
    # the judges are skipped, with the reason recorded
    assert "no ASR model" in t.data_notes["vc_metrics"]["wer"]
    assert "no ASV model" in t.data_notes["vc_metrics"]["accept"]
    from superb.downstream.corpora.vcc2020 import read_prompts

    assert read_prompts(root / "vcc2020/prompts/Eng_transcriptions.txt")["E30002"] == "Evaluation sentence 1."


def test_vcc2020_refuses_missing_reference(tmp_path):
    root = write_vcc2020(tmp_path / "data")
    (root / "vcc2020/TEF1/E30002.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"TEF1/E30002.wav: the target speaker's reference"):
        task("vc", **{"task.dev_utterances": 2}).prepare(root)
    with pytest.raises(ValueError, match="need more than task.dev_utterances=10"):
        task("vc").prepare(write_vcc2020(tmp_path / "small"))


# -- CoVoST 2 -------------------------------------------------------------------------------------
COVOST_ROWS = [("common_voice_en_1.mp3", "Der Hund ist alt.", "train"),
               ("common_voice_en_2.mp3", "Die Katze ist klein.", "train_covost"),
               ("common_voice_en_3.mp3", "Der Hund ist alt.", "train"),
               ("common_voice_en_4.mp3", "Ich sehe das Haus.", "dev"),
               ("common_voice_en_5.mp3", "Wir haben zwei Äpfel.", "test"),
               ("common_voice_en_6.mp3", "Nicht verwendet.", "excluded")]


def write_covost(root, split_files=False):
    for k, (name, _, _) in enumerate(COVOST_ROWS):
        wav(root / "en" / "clips" / name, tone(0.5 + 0.05 * k, 200 + 30 * k, seed=k), fmt="MP3")
    if split_files:
        for split, values in (("train", ("train", "train_covost")), ("dev", ("dev",)), ("test", ("test",))):
            rows = [r for r in COVOST_ROWS if r[2] in values]
            (root / f"covost_v2.en_de.{split}.tsv").write_text(
                "path\tsentence\ttranslation\tclient_id\n"
                + "".join(f"{p}\tan english sentence\t{t}\tabc\n" for p, t, _ in rows), encoding="utf-8")
    else:
        (root / "covost_v2.en_de.tsv").write_text(
            "path\ttranslation\tsplit\n" + "".join(f"{p}\t{t}\t{s}\n" for p, t, s in COVOST_ROWS), encoding="utf-8")
    return root


@pytest.mark.parametrize("split_files", [False, True])
def test_covost_layout_with_mp3_clips(tmp_path, split_files):
    root = write_covost(tmp_path / "covost", split_files)
    t = task("st")
    splits = t.prepare(root)
    assert [e.id for e in splits["train"]] == ["common_voice_en_1", "common_voice_en_2", "common_voice_en_3"]
    assert [e.label for e in splits["test"]] == ["Wir haben zwei Äpfel."]
    assert splits["dev"][0].audio.num_samples == int(0.65 * SR)  # MP3 decoded to the exact length
    if not split_files:
        assert t.data_notes["rows_with_unused_split_values"] == {"excluded": 1}
    assert t._constant == "Der Hund ist alt."
    sp = __import__("superb.downstream.tasks.st", fromlist=["load_sentencepiece"]).load_sentencepiece(t._spm_proto)
    assert sp.decode(sp.encode("Die Katze ist alt.")) == "Die Katze ist alt."


def test_covost_refuses_missing_clip_and_column(tmp_path):
    root = write_covost(tmp_path / "covost")
    (root / "en/clips/common_voice_en_4.mp3").unlink()
    with pytest.raises(FileNotFoundError, match="common_voice_en_4.mp3 listed in the CoVoST table"):
        task("st").prepare(root)
    (root / "covost_v2.en_de.tsv").write_text("path\tsplit\ncommon_voice_en_1.mp3\ttrain\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['translation'\]"):
        task("st").prepare(root)


# -- Common Voice (OOD-ASR) ----------------------------------------------------------------------
CV_HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\tlocale\tsegment\n"


def write_common_voice(root, lang, sentences, accent=""):
    d = root / lang
    for split, items in sentences.items():
        lines = []
        for k, text in enumerate(items):
            name = f"common_voice_{lang}_{split}{k}.mp3"
            wav(d / "clips" / name, tone(0.5, 200 + 50 * k, seed=k), fmt="MP3")
            lines.append(f"abc\t{name}\t{text}\t2\t0\t\t\t{accent}\t{lang}\t\n")
        (d / f"{split}.tsv").write_text(CV_HEADER + "".join(lines), encoding="utf-8")
    return root


def test_common_voice_spanish_and_mandarin(tmp_path):
    root = tmp_path / "cv"
    write_common_voice(root, "es", {"train": ["¿Dónde está el niño?", "El perro come pan."], "dev": ["Hola, señor."],
                                    "test": ["El niño come."]}, accent="mexicano")
    write_common_voice(root, "zh-CN", {"train": ["我喜欢吃苹果。", "今天天气很好！"], "dev": ["你好？"], "test": ["我很好。"]})
    es = task("ood_asr")
    splits = es.prepare(root)
    assert splits["train"][0].label == "DÓNDE ESTÁ EL NIÑO" and splits["dev"][0].label == "HOLA SEÑOR"
    assert es.vocab[:2] == ["<blank>", "|"] and "Ñ" in es.vocab and "¿" not in es.vocab
    assert es.primary_metric == "wer"
    zh = task("ood_asr", **{"task.language": "zh-CN"})
    splits = zh.prepare(root)
    assert splits["train"][1].label == "今天天气很好" and zh.primary_metric == "cer"
    assert zh.vocab == ["<blank>", "|"] + sorted(set("我喜欢吃苹果今天天气很好"))
    # --data may also point at the language folder itself
    assert len(task("ood_asr").prepare(root / "es")["train"]) == 2


def test_common_voice_refusals(tmp_path):
    root = write_common_voice(tmp_path / "cv", "es", {"train": ["Uno.", "¿?"], "dev": ["Dos."], "test": ["Tres."]},
                              accent="mexicano")
    with pytest.raises(ValueError, match=r"train.tsv:3: empty sentence after normalisation"):
        task("ood_asr").prepare(root)
    with pytest.raises(FileNotFoundError, match="Common Voice tables for language 'ar' not found"):
        task("ood_asr", **{"task.language": "ar"}).prepare(root)
