"""Corpus inputs of the task loaders: list files in other encodings, upper-case ``.WAV`` names,
empty test-label folders, atomic prediction files, and the audio checks of ``downstream.audio``
(non-finite samples, truncated WAVs, case-insensitive listing)."""
from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from superb.downstream import fileio
from superb.downstream.audio import AudioError, AudioSegment, audio_files, audio_info, load_audio, segment_for
from superb.downstream.corpora.audio_snips import snips_manifest
from superb.downstream.corpora.common_voice import read_tsv
from superb.downstream.corpora.fluent_speech_commands import fluent_commands_manifest
from superb.downstream.corpora.iemocap import iemocap_manifest
from superb.downstream.corpora.librimix import read_rttm
from superb.downstream.corpora.quesst14 import read_language_key
from superb.downstream.corpora.speech_commands import speech_commands_manifest
from superb.downstream.corpora.vcc2020 import read_prompts
from superb.downstream.corpora.voxceleb1 import read_trials, voxceleb1_identification, voxceleb1_verification
from superb.downstream.tasks.asr import librispeech_manifest
from superb.downstream.tasks.base import write_lines
from superb.downstream.tasks.pr import read_lexicon
from superb.downstream.tasks.qbe import write_stdlist

from conftest import SR, tone, write_librispeech
from test_tasks_sid_asv_er_ic import write_fsc, write_iemocap, write_voxceleb1


def _spoil(path: Path) -> Path:
    """Put a byte that is not UTF-8 (a Latin-1 'ÿ') in the middle of a text file."""
    raw = path.read_bytes()
    cut = raw.find(b"\n") + 1 if b"\n" in raw[:-1] else len(raw) // 2
    path.write_bytes(raw[:cut] + b"caf\xff " + raw[cut:])
    return path


def _assert_names(excinfo, path: Path):
    msg = str(excinfo.value)
    assert path.name in msg and "UTF-8" in msg, msg


# -- 1. list files that are not UTF-8 ------------------------------------------------------------
def test_librispeech_transcript_not_utf8_names_the_file(tmp_path):
    root = write_librispeech(tmp_path, "dev-clean") / "LibriSpeech"
    trans = _spoil(root / "dev-clean" / "19" / "198" / "19-198.trans.txt")
    with pytest.raises(ValueError) as excinfo:
        librispeech_manifest(root, "dev-clean")
    _assert_names(excinfo, trans)


def test_voxceleb_lists_not_utf8_name_the_file(tmp_path):
    root = write_voxceleb1(tmp_path / "vox")
    iden = _spoil(root / "iden_split.txt")
    with pytest.raises(ValueError) as excinfo:
        voxceleb1_identification(root)
    _assert_names(excinfo, iden)
    trials = _spoil(root / "veri_test.txt")
    with pytest.raises(ValueError) as excinfo:
        voxceleb1_verification(root)
    _assert_names(excinfo, trials)
    with pytest.raises(ValueError) as excinfo:
        read_trials(trials)
    _assert_names(excinfo, trials)


def test_iemocap_label_file_not_utf8_names_the_file(tmp_path):
    root = write_iemocap(tmp_path / "iemocap")
    label = _spoil(root / "Session3" / "dialog" / "EmoEvaluation" / "Ses03F_impro01.txt")
    with pytest.raises(ValueError) as excinfo:
        iemocap_manifest(root)
    _assert_names(excinfo, label)


def test_speech_commands_list_not_utf8_names_the_file(ks_data):
    lst = _spoil(ks_data / "speech_commands_v0.01" / "validation_list.txt")
    with pytest.raises(ValueError) as excinfo:
        speech_commands_manifest(ks_data / "speech_commands_v0.01", ks_data / "speech_commands_test_set_v0.01")
    _assert_names(excinfo, lst)


def test_fluent_commands_csv_not_utf8_names_the_file(tmp_path):
    root = write_fsc(tmp_path / "fsc")
    csv_path = _spoil(root / "data" / "valid_data.csv")
    with pytest.raises(ValueError) as excinfo:
        fluent_commands_manifest(root)
    _assert_names(excinfo, csv_path)


def test_snips_label_file_not_utf8_names_the_file(tmp_path):
    from superb.downstream.corpora.audio_snips import LABEL_FILE

    root = tmp_path / "snips"
    root.mkdir()
    label = root / LABEL_FILE
    label.parent.mkdir(parents=True, exist_ok=True)
    label.write_bytes(b"utt1 BOS caf\xff EOS O\n")
    with pytest.raises(ValueError) as excinfo:
        snips_manifest(root, {"train": [], "dev": [], "test": []})
    _assert_names(excinfo, label)


@pytest.mark.parametrize("reader, content", [
    (lambda p: read_lexicon([p]), b"HELLO HH AH L OW\nCAF\xff K AE F\n"),
    (lambda p: read_language_key(p, p.parent, "nnenglish"), b"x/Audio/a.wav nnenglish\nx/Audio/\xff.wav nnenglish\n"),
    (read_rttm, b"SPEAKER rec 1 0.00 1.00 <NA> <NA> spk\xff <NA> <NA>\n"),
    (read_tsv, b"path\tsentence\na.mp3\tcaf\xff\n"),
    (read_prompts, b"30001 Hello there.\n30002 Caf\xff.\n"),
], ids=["pr-lexicon", "qbe-language-key", "sd-rttm", "st-tsv", "vc-prompts"])
def test_other_list_readers_name_a_non_utf8_file(tmp_path, reader, content):
    path = tmp_path / "list_file.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError) as excinfo:
        reader(path)
    _assert_names(excinfo, path)


def test_mini_corpus_label_file_not_utf8_names_the_file(tmp_path):
    from superb.downstream.mini.common import LABELS_FILE, read_labels

    (tmp_path / LABELS_FILE).write_bytes(b'{"path": "a.wav"}\r\n{"path": "b.wav"}\n')
    assert read_labels(tmp_path) == [{"path": "a.wav"}, {"path": "b.wav"}]  # unchanged for UTF-8
    (tmp_path / LABELS_FILE).write_bytes(b'{"path": "caf\xff.wav"}\n')
    with pytest.raises(ValueError) as excinfo:
        read_labels(tmp_path)
    _assert_names(excinfo, tmp_path / LABELS_FILE)


# -- 2. upper-case .WAV names are read -----------------------------------------------------------
def test_speech_commands_reads_upper_case_wav(ks_data):
    train, test = ks_data / "speech_commands_v0.01", ks_data / "speech_commands_test_set_v0.01"
    (train / "yes" / "aaaa0001_nohash_0.wav").rename(train / "yes" / "aaaa0001_nohash_0.WAV")
    (test / "no" / "eeee0001_nohash_0.wav").rename(test / "no" / "eeee0001_nohash_0.WAV")
    noise = train / "_background_noise_"
    (noise / "white_noise.wav").rename(noise / "white_noise.WAV")
    splits = speech_commands_manifest(train, test)
    train_ids = [e.id for e in splits["train"]]
    assert "yes/aaaa0001_nohash_0.WAV" in train_ids
    assert "no/eeee0001_nohash_0.WAV" in [e.id for e in splits["test"]]
    assert any(i.startswith("_background_noise_/white_noise.WAV#") for i in train_ids)
    # the order inside a word folder stays sorted
    yes_ids = [i for i in train_ids if i.startswith("yes/")]
    assert yes_ids == sorted(yes_ids)


def test_librispeech_reads_upper_case_flac(tmp_path):
    root = write_librispeech(tmp_path, "dev-clean") / "LibriSpeech"
    d = root / "dev-clean" / "19" / "198"
    (d / "19-198-0001.flac").rename(d / "19-198-0001.FLAC")
    ids = [e.id for e in librispeech_manifest(root, "dev-clean")]
    assert "19-198-0001" in ids and len(ids) == 6


def test_voxceleb_training_audio_reads_upper_case_wav(tmp_path):
    root = write_voxceleb1(tmp_path / "vox")
    src = root / "wav" / "id10002" / "b-b_bbbbbbb" / "00001.wav"
    src.rename(src.with_suffix(".WAV"))
    splits, _, _ = voxceleb1_verification(root)
    train = {e.id: e for e in splits["train"]}
    assert train["id10002-b-b_bbbbbbb-00001"].audio.path.endswith("00001.WAV")


# -- 3. an empty label folder of the Speech Commands test archive ---------------------------------
@pytest.mark.parametrize("leftover", [None, "README.txt"])
def test_speech_commands_empty_test_label_folder_is_an_error(ks_data, leftover):
    train, test = ks_data / "speech_commands_v0.01", ks_data / "speech_commands_test_set_v0.01"
    empty = test / "_silence_"
    for f in empty.iterdir():
        f.unlink()
    if leftover:
        (empty / leftover).write_text("not audio\n")
    with pytest.raises(ValueError, match="_silence_") as excinfo:
        speech_commands_manifest(train, test)
    assert str(empty) in str(excinfo.value) and "empty" in str(excinfo.value)


# -- 4. prediction files are written atomically ---------------------------------------------------
def test_write_lines_uses_unique_temporary_files(tmp_path):
    target = tmp_path / "dev" / "predict.txt"
    target.parent.mkdir()
    # a fixed temporary name (predict.txt.tmp) held by someone else must not matter
    (target.parent / "predict.txt.tmp").mkdir()
    write_lines(target, ["a yes", "b no"])
    assert target.read_text(encoding="utf-8") == "a yes\nb no\n"


def test_write_lines_failure_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "predict.txt"
    write_lines(target, ["old"])

    def full_disk(fh, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "_write_all", full_disk)
    with pytest.raises(OSError, match="no space left on device") as excinfo:
        write_lines(target, ["new"])
    assert str(target) in str(excinfo.value)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predict.txt"]


def test_qbe_stdlist_is_written_atomically(tmp_path, monkeypatch):
    target = tmp_path / "benchmark.stdlist.xml"
    (tmp_path / "benchmark.stdlist.tmp").mkdir()  # the old fixed temporary name
    scores = np.array([[0.5, -1.0]])
    write_stdlist(target, ["q1"], ["d1", "d2"], scores, threshold=0.0)
    text = target.read_text(encoding="utf-8")
    assert text.startswith("<?xml") and 'file="d1"' in text and 'decision="YES"' in text
    before = target.read_bytes()
    monkeypatch.setattr(fileio, "_write_all", lambda fh, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(OSError, match="no space left on device"):
        write_stdlist(target, ["q1"], ["d1", "d2"], -scores, threshold=0.0)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benchmark.stdlist.tmp", "benchmark.stdlist.xml"]


# -- 5. the checks of downstream/audio.py ---------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused_naming_file_and_sample(tmp_path, bad):
    path = tmp_path / "float_clip.wav"
    audio = tone(300, 0.5, 1)
    audio[1234] = bad
    audio[4000] = bad
    sf.write(path, audio, SR, subtype="FLOAT")
    seg = segment_for(path)  # the header is fine
    with pytest.raises(AudioError) as excinfo:
        load_audio(seg)
    msg = str(excinfo.value)
    assert str(path) in msg and "sample 1234" in msg and "2 non-finite" in msg, msg
    assert isinstance(excinfo.value, ValueError)
    # a segment after the bad samples is read, one holding them names the absolute position
    assert np.isfinite(load_audio(segment_for(path, start=4001))).all()
    with pytest.raises(AudioError, match="sample 4000"):
        load_audio(segment_for(path, start=2000, num_samples=4000))


def _truncated_wav(tmp_path: Path, keep: float = 0.5) -> Path:
    path = tmp_path / "cut_short.wav"
    sf.write(path, tone(300, 1.0, 2), SR, subtype="PCM_16")  # 16000 samples
    raw = path.read_bytes()
    assert len(raw) == 44 + 2 * SR
    path.write_bytes(raw[:44 + int(2 * SR * keep)])  # header unchanged, samples cut
    return path


@pytest.mark.parametrize("keep", [0.5, 0.50003])  # also a cut in the middle of a sample
def test_truncated_wav_is_refused(tmp_path, keep):
    path = _truncated_wav(tmp_path, keep)
    for check in (audio_info, segment_for):
        with pytest.raises(AudioError) as excinfo:
            check(path)
        msg = str(excinfo.value)
        assert "truncated" in msg and str(path) in msg and "16000" in msg, msg
    # a segment made before the file was cut (or by hand) is refused when decoded
    with pytest.raises(AudioError) as excinfo:
        load_audio(AudioSegment(str(path), 16000))
    assert "truncated" in str(excinfo.value) and str(path) in str(excinfo.value)


def test_complete_wav_passes_the_checks(tmp_path):
    path = _truncated_wav(tmp_path, keep=1.0)
    assert audio_info(path) == 16000
    assert load_audio(segment_for(path)).shape == (16000,)


def test_audio_files_matches_the_extension_in_any_case(tmp_path):
    for name in ("b.WAV", "a.wav", "c.Wav", "d.flac", "notes.txt", "e.wav.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "dir.wav").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.WAV").write_bytes(b"")
    assert [p.name for p in audio_files(tmp_path)] == ["a.wav", "b.WAV", "c.Wav"]
    assert [p.name for p in audio_files(tmp_path, recursive=True)] == ["a.wav", "b.WAV", "c.Wav", "f.WAV"]
    assert [p.name for p in audio_files(tmp_path, "*/*")] == ["f.WAV"]
    assert [p.name for p in audio_files(tmp_path, ext=".FLAC")] == ["d.flac"]
    assert [p.name for p in audio_files(tmp_path, "b*")] == ["b.WAV"]
