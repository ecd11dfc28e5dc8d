"""Tests of the embedded eSpeak NG "mini" corpus (tiny profile, temporary cache directories)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from superb.downstream.audio import SAMPLE_RATE
from superb.downstream.mini import build as mini, noise
from superb.downstream.mini.common import read_labels
from superb.downstream.mini.espeak import VoiceSpec, get_engine
from superb.downstream.mini.grammar import VOCABULARY, sentence
from superb.downstream.mini.speakers import SpeakerPool
from superb.downstream.mini.writers.speech_commands import COMMANDS, UNKNOWN_WORDS

KS_TRAIN = "speech_commands_v0.01"
KS_TEST = "speech_commands_test_set_v0.01"
CLIP_RE = re.compile(r"^([a-z]+)/([0-9a-f]{8})_nohash_(\d+)\.wav$")
TEST_LABELS = set(COMMANDS) | {"_unknown_", "_silence_"}
FLAC_RE = re.compile(r"^LibriSpeech/(train|dev|test)/(\d+)/(\d+)/(\d+)-(\d+)-(\d{4})\.flac$")
TRANS_LINE_RE = re.compile(r"^(\d+-\d+-\d{4}) ([A-Z' ]+)$")


def _hashes(split_dir: Path) -> dict[str, str]:
    return {p.relative_to(split_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(split_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Both splits, tiny profile, seed 0, in one cache directory."""
    cache = tmp_path_factory.mktemp("cache-a")
    return {split: mini.ensure_split(split, "tiny", cache_dir=cache, seed=0, progress=False)
            for split in ("speech_commands", "librispeech")} | {"cache": cache}


# ------------------------------------------------------------------------------------------
# cache location, names, reuse
# ------------------------------------------------------------------------------------------
def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SUPERB_CACHE_DIR", str(tmp_path / "sup"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mini.default_cache_dir() == tmp_path / "sup"
    monkeypatch.delenv("SUPERB_CACHE_DIR")
    assert mini.default_cache_dir() == tmp_path / "xdg" / "superb"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert mini.default_cache_dir() == tmp_path / "home" / ".cache" / "superb"


def test_split_dir_naming_and_env_reuse(built, monkeypatch):
    cache = built["cache"]
    for split in ("speech_commands", "librispeech"):
        assert built[split] == cache / f"mini-tiny-seed0-v{mini.GENERATOR_VERSION}" / split
        marker = json.loads((built[split] / "COMPLETE").read_text())
        assert marker["split"] == split and marker["profile"] == "tiny" and marker["seed"] == 0
        assert marker["files"] > 0 and marker["audio_seconds"] > 0
    # SUPERB_CACHE_DIR is honoured when no cache_dir is given (already built: no rebuild)
    monkeypatch.setenv("SUPERB_CACHE_DIR", str(cache))
    monkeypatch.setitem(mini.SPLITS, "librispeech", _must_not_build)
    assert mini.ensure_split("librispeech", "tiny", progress=False) == built["librispeech"]


def _must_not_build(out_dir, ctx):
    raise AssertionError("split was rebuilt although it is complete")


def test_unknown_names_raise(tmp_path):
    with pytest.raises(ValueError, match=r"'nope'.*librispeech.*speech_commands"):
        mini.ensure_split("nope", "tiny", cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"'huge'.*'tiny', 'default'"):
        mini.ensure_split("librispeech", "huge", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="seed"):
        mini.ensure_split("librispeech", "tiny", cache_dir=tmp_path, seed=-1)
    assert not any(tmp_path.iterdir())  # nothing was created


def test_reuse_and_interrupted_rebuild(tmp_path, monkeypatch):
    calls = []
    real = mini.SPLITS["librispeech"]

    def counting(out_dir, ctx):
        calls.append(out_dir)
        real(out_dir, ctx)

    monkeypatch.setitem(mini.SPLITS, "librispeech", counting)
    d = mini.ensure_split("librispeech", "tiny", cache_dir=tmp_path, progress=False)
    before = _hashes(d)
    stamp = (d / "COMPLETE").stat().st_mtime_ns
    flac = next(d.rglob("*.flac"))
    flac_stamp = flac.stat().st_mtime_ns
    assert mini.ensure_split("librispeech", "tiny", cache_dir=tmp_path, progress=False) == d
    assert len(calls) == 1  # reused
    assert (d / "COMPLETE").stat().st_mtime_ns == stamp and flac.stat().st_mtime_ns == flac_stamp

    # an interrupted build: marker missing, a stray partial file, a leftover temp dir
    (d / "COMPLETE").unlink()
    (d / "partial.tmp").write_text("x")
    leftover = d.parent / ".librispeech.tmp-dead"
    leftover.mkdir()
    assert mini.ensure_split("librispeech", "tiny", cache_dir=tmp_path, progress=False) == d
    assert len(calls) == 2
    assert not (d / "partial.tmp").exists() and not leftover.exists()
    assert _hashes(d) == before  # rebuilt identically

    # a failing build leaves no split dir and no temp dir behind
    def failing(out_dir, ctx):
        (out_dir / "half.txt").write_text("x")
        raise RuntimeError("boom")

    monkeypatch.setitem(mini.SPLITS, "librispeech", failing)
    other = tmp_path / "other"
    with pytest.raises(RuntimeError, match="boom"):
        mini.ensure_split("librispeech", "tiny", cache_dir=other, progress=False)
    root = other / f"mini-tiny-seed0-v{mini.GENERATOR_VERSION}"
    assert not (root / "librispeech").exists()
    assert not list(root.glob(".librispeech.tmp-*"))


# ------------------------------------------------------------------------------------------
# determinism
# ------------------------------------------------------------------------------------------
def test_same_seed_identical_bytes_other_seed_differs(built, tmp_path):
    for split in ("speech_commands", "librispeech"):
        again = mini.ensure_split(split, "tiny", cache_dir=tmp_path / "b", seed=0, progress=False)
        assert again != built[split]
        first, second = _hashes(built[split]), _hashes(again)
        assert len(first) > 10
        assert first == second, f"{split}: files differ between two builds with seed 0"

        other = mini.ensure_split(split, "tiny", cache_dir=tmp_path / "c", seed=1, progress=False)
        third = _hashes(other)
        audio = lambda h: {v for k, v in h.items() if k.endswith((".wav", ".flac"))}
        assert audio(first) and audio(third)
        assert not audio(first) & audio(third), f"{split}: seed 1 repeated audio of seed 0"


def test_engine_calls_are_order_independent(built):
    engine = get_engine(mini.espeak_data_dir(built["cache"]))
    formants = tuple((100, 100, 100) for _ in range(9))
    shaky = VoiceSpec("male", 90, 130, formants, breath=(0, 2, 3, 3, 3, 3, 3, 2), roughness=3,
                      flutter=30)
    a1 = engine.synth("the cat sat", shaky, seed=5)
    engine.synth("something else entirely", shaky, seed=9)
    engine.synth("and another one", "en-us", seed=3)
    a2 = engine.synth("the cat sat", shaky, seed=5)
    b = engine.synth("the cat sat", shaky, seed=6)
    assert a1.audio.dtype == np.float32 and len(a1.audio) > SAMPLE_RATE // 2
    assert np.array_equal(a1.audio, a2.audio)
    assert not np.array_equal(a1.audio, b.audio)
    assert [w.word for w in a1.words] == ["the", "cat", "sat"]


def test_merged_word_events_get_one_timing_per_word(built):
    engine = get_engine(mini.espeak_data_dir(built["cache"]))
    words = "he said that the dog and the cat".split()
    syn = engine.synth(" ".join(words) + ".", words=words, seed=1)  # eSpeak merges "that the"
    assert [w.word for w in syn.words] == words
    for w, nxt in zip(syn.words, syn.words[1:]):
        assert 0 <= w.start < w.end <= nxt.start + 1e-9
    assert syn.words[-1].end <= syn.duration
    assert engine.phonemize("chair", stress=False) == ["tʃ ɛɹ"]
    assert engine.phonemize("the cat") == ["ð ə", "k ˈæ t"]


def test_speakers_are_distinct_and_stable():
    pool = SpeakerPool(0)
    speakers = pool.take(0, 200)
    assert len({s.key for s in speakers}) == 200
    assert all(re.fullmatch(r"[0-9a-f]{8}", s.key) for s in speakers)
    assert len({s.voice.name for s in speakers}) == 200
    assert {s.gender for s in speakers} == {"male", "female"}
    assert SpeakerPool(0)[57] == speakers[57]  # order-free: index 57 built directly
    assert SpeakerPool(1)[0].voice != speakers[0].voice
    pitches = [s.voice.pitch_base for s in speakers]
    assert min(pitches) < 100 < 160 < max(pitches)


def test_grammar_sentences():
    rng = np.random.default_rng(0)
    lengths = []
    for _ in range(300):
        words = sentence(rng)
        assert 3 <= len(words) <= 12 and set(words) <= set(VOCABULARY)
        lengths.append(len(words))
    assert 200 <= len(VOCABULARY) <= 600
    assert min(lengths) == 3 and max(lengths) == 12


# ------------------------------------------------------------------------------------------
# speech_commands layout
# ------------------------------------------------------------------------------------------
def test_speech_commands_layout(built):
    d = built["speech_commands"]
    train_root, test_root = d / KS_TRAIN, d / KS_TEST
    assert sorted(p.name for p in d.iterdir()) == sorted(["COMPLETE", "labels.jsonl", KS_TRAIN, KS_TEST])
    clips = sorted(p.relative_to(train_root).as_posix() for p in train_root.rglob("*.wav")
                   if p.parent.name != "_background_noise_")
    words = {c.split("/")[0] for c in clips}
    assert set(COMMANDS) <= words <= set(COMMANDS) | set(UNKNOWN_WORDS) and words - set(COMMANDS)
    for rel in clips:
        assert CLIP_RE.match(rel), rel
        info = sf.info(str(train_root / rel))
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000), rel
        assert (info.format, info.subtype) == ("WAV", "PCM_16"), rel

    lists = {}
    for name in ("validation", "testing"):
        lines = (train_root / f"{name}_list.txt").read_text().splitlines()
        assert lines and lines == sorted(lines)
        for rel in lines:
            assert CLIP_RE.match(rel) and (train_root / rel).is_file(), rel
        lists[name] = set(lines)
    train = set(clips) - lists["validation"] - lists["testing"]
    spk = {k: {CLIP_RE.match(r).group(2) for r in v} for k, v in
           (("train", train), ("validation", lists["validation"]), ("testing", lists["testing"]))}
    assert all(spk.values())
    assert not spk["train"] & spk["validation"] and not spk["train"] & spk["testing"]
    assert not spk["validation"] & spk["testing"]

    noises = sorted((train_root / "_background_noise_").glob("*.wav"))
    assert {p.stem for p in noises} == {"white_noise", "pink_noise", "brown_noise", "running_tap",
                                        "machine_hum", "babble"}
    for p in noises:
        audio, sr = sf.read(str(p))
        assert sr == 16000 and audio.ndim == 1 and len(audio) == 3 * 16000  # tiny: 3 s
        assert 0.01 < np.sqrt(np.mean(audio ** 2)) < 0.1

    # test archive: 12 labels, balanced, file names like the corpus
    assert {p.name for p in test_root.iterdir()} == TEST_LABELS
    counts = Counter()
    for p in test_root.rglob("*.wav"):
        label = p.parent.name
        assert CLIP_RE.match(f"x/{p.name}"), p
        assert sf.info(str(p)).frames == 16000
        counts[label] += 1
        if label in COMMANDS:  # the command folders hold the testing_list clips
            assert f"{label}/{p.name}" in lists["testing"]
            assert p.read_bytes() == (train_root / label / p.name).read_bytes()
    assert set(counts) == TEST_LABELS and len(set(counts.values())) == 1


def test_speech_commands_audio_and_labels(built):
    d = built["speech_commands"]
    records = read_labels(d)
    files = sorted(p.relative_to(d).as_posix() for p in d.rglob("*.wav"))
    assert [r["path"] for r in records] == files
    voice_of = {}
    for r in records:
        audio, sr = sf.read(str(d / r["path"]), dtype="float32")
        assert sr == 16000 and r["duration"] == pytest.approx(len(audio) / sr)
        assert np.max(np.abs(audio)) < 0.99  # no clipping
        if r["label"] in ("_silence_", "_noise_"):
            assert r["words"] == [] and r["speaker"] == ""
            continue
        assert r["word"] == r["text"] and r["path"].endswith(f"{r['speaker']}_nohash_0.wav")
        assert r["label"] == (r["word"] if r["word"] in COMMANDS else "_unknown_")
        assert voice_of.setdefault(r["speaker"], r["voice"]) == r["voice"]  # hash = speaker
        (w,) = r["words"]
        assert w["word"] == r["word"] and 0 <= w["start"] < w["end"] <= 1.0
        a, b = int(w["start"] * sr), int(w["end"] * sr)
        inside = np.sqrt(np.mean(audio[a:b] ** 2))
        assert inside > 2 * np.sqrt(np.mean(np.concatenate([audio[:a], audio[b:]]) ** 2) + 1e-12) \
            or "snr_db" in r, r["path"]  # the word is where the timing says (clean clips)
        assert r["phonemes"] and "ˈ" not in r["phonemes"]


# ------------------------------------------------------------------------------------------
# librispeech layout
# ------------------------------------------------------------------------------------------
def test_librispeech_layout(built):
    d = built["librispeech"]
    assert sorted(p.name for p in d.iterdir()) == ["COMPLETE", "LibriSpeech", "labels.jsonl",
                                                   "lexicon.txt"]
    assert sorted(p.name for p in (d / "LibriSpeech").iterdir()) == ["dev", "test", "train"]
    flacs = sorted(p.relative_to(d).as_posix() for p in d.rglob("*.flac"))
    assert len(flacs) == 3 * 3 + 2 + 2  # tiny profile
    speakers: dict[str, set] = {}
    ids_by_chapter: dict[Path, set] = {}
    for rel in flacs:
        m = FLAC_RE.match(rel)
        assert m, rel
        subset, spk, chap, spk2, chap2, _ = m.groups()
        assert (spk, chap) == (spk2, chap2)
        speakers.setdefault(subset, set()).add(spk)
        info = sf.info(str(d / rel))
        assert (info.samplerate, info.channels, info.format, info.subtype) == \
            (16000, 1, "FLAC", "PCM_16"), rel
        ids_by_chapter.setdefault((d / rel).parent, set()).add(Path(rel).stem)
    assert not speakers["train"] & speakers["dev"] and not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"]

    lexicon = {}
    for line in (d / "lexicon.txt").read_text(encoding="utf-8").splitlines():
        word, phones = line.split("\t")
        assert re.fullmatch(r"[A-Z']+", word) and phones and "ˈ" not in phones
        lexicon[word] = phones
    assert len(lexicon) == len(VOCABULARY) and lexicon["THE"] == "ð ə"
    assert lexicon["A"] == "ɐ" and lexicon["CHAIR"] == "tʃ ɛɹ"

    for chapter_dir, ids in ids_by_chapter.items():
        trans = list(chapter_dir.glob("*.trans.txt"))
        assert [t.name for t in trans] == [f"{chapter_dir.parent.name}-{chapter_dir.name}.trans.txt"]
        lines = trans[0].read_text().splitlines()
        parsed = [TRANS_LINE_RE.match(line) for line in lines]
        assert all(parsed), lines
        assert [m.group(1) for m in parsed] == sorted(ids)  # ids match the flac files
        for m in parsed:
            text = m.group(2)
            assert text == text.strip() and "  " not in text and 3 <= len(text.split()) <= 12
            assert all(w in lexicon for w in text.split())


def test_librispeech_labels(built):
    d = built["librispeech"]
    records = read_labels(d)
    assert [r["path"] for r in records] == sorted(p.relative_to(d).as_posix()
                                                  for p in d.rglob("*.flac"))
    lexicon = dict(line.split("\t") for line in
                   (d / "lexicon.txt").read_text(encoding="utf-8").splitlines())
    trans = {}
    for t in d.rglob("*.trans.txt"):
        trans.update(line.split(" ", 1) for line in t.read_text().splitlines())
    for r in records:
        audio, sr = sf.read(str(d / r["path"]), dtype="float32")
        assert r["duration"] == pytest.approx(len(audio) / sr, abs=1e-4)
        assert np.max(np.abs(audio)) < 0.99
        assert trans[r["id"]] == r["text"] and r["path"].endswith(r["id"] + ".flac")
        assert r["path"].split("/")[2] == r["speaker"]
        words = r["words"]
        assert [w["word"].upper() for w in words] == r["text"].split()
        assert words[0]["start"] >= 0.1 - 1e-3  # lead-in silence
        assert words[-1]["end"] <= r["duration"] - 0.1 + 1e-3
        for w, nxt in zip(words, words[1:]):
            assert w["start"] < w["end"] <= nxt["start"] + 1e-4
        assert r["phonemes"] == " ".join(lexicon[w] for w in r["text"].split())
        assert len(r["ipa"].split()) >= len(words) - 2 and "ˈ" in r["ipa"]


# ------------------------------------------------------------------------------------------
# noise helpers and errors
# ------------------------------------------------------------------------------------------
def test_noise_spectra_and_snr():
    rng = np.random.default_rng(0)
    n = 4 * SAMPLE_RATE
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)

    def band_db(x, lo, hi):
        p = np.abs(np.fft.rfft(x)) ** 2
        return 10 * np.log10(p[(f >= lo) & (f < hi)].mean())

    slopes = {}
    for kind in ("white", "pink", "brown"):
        x = noise.make_noise(kind, rng, n)
        assert x.dtype == np.float32 and noise.rms(x) == pytest.approx(1.0, rel=1e-4)
        slopes[kind] = band_db(x, 1000, 1200) - band_db(x, 100, 120)  # one decade
    assert slopes["white"] == pytest.approx(0, abs=2)
    assert slopes["pink"] == pytest.approx(-10, abs=2)
    assert slopes["brown"] == pytest.approx(-20, abs=2)
    for kind in ("running_water", "hum"):
        x = noise.make_noise(kind, rng, n)
        assert noise.rms(x) == pytest.approx(1.0, rel=1e-4)

    speech = noise.white(rng, n) * 0.1
    extra = noise.pink(rng, n)
    mixed = noise.mix_at_snr(speech, extra, 5.0)
    measured = 20 * np.log10(noise.rms(speech) / noise.rms(mixed - speech))
    assert measured == pytest.approx(5.0, abs=1e-3)
    with pytest.raises(ValueError, match="unknown noise kind 'pinkish'"):
        noise.make_noise("pinkish", rng, 10)


def test_bad_audio_and_labels_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"clip\.wav: audio peak 1\.500"):
        noise.to_int16(np.array([0.0, 1.5]), "clip.wav")
    (tmp_path / "labels.jsonl").write_text('{"path": "a.wav"}\nnot json\n')
    with pytest.raises(ValueError, match=r"labels\.jsonl:2: not valid JSON"):
        read_labels(tmp_path)
