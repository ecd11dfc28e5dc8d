"""The KS and ASR loaders parse their real layouts (fixtures written in those layouts)."""
from superb.downstream.tasks.asr import SpeechRecognition, decode_ids, encode_transcript, librispeech_manifest
from superb.downstream.corpora.speech_commands import CLASSES, speech_commands_manifest


def test_speech_commands_v001_layout(ks_data):
    splits = speech_commands_manifest(ks_data / "speech_commands_v0.01", ks_data / "speech_commands_test_set_v0.01")
    train, dev, test = splits["train"], splits["dev"], splits["test"]
    # 12 word folders x 4 speakers; speaker 4 is in validation_list, speaker 3 in testing_list
    words = [e for e in train if not e.id.startswith("_background_noise_")]
    assert len(words) == 24 and {e.id.split("/")[1].split("_")[0] for e in words} == {"aaaa0001", "bbbb0002"}
    assert sorted({e.id for e in dev if e.label != "_silence_"}) == sorted(
        f"{w}/dddd0004_nohash_0.wav" for w in ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bed", "cat"))
    assert not any("cccc0003" in e.id for e in train + dev)  # testing_list is not trained or validated on
    # non-command words become _unknown_
    assert {e.label for e in words if e.id.startswith(("bed/", "cat/"))} == {"_unknown_"}
    # 12 s of background noise -> 12 one-second _silence_ segments, every 10th one in dev
    silence_train = [e for e in train if e.label == "_silence_"]
    silence_dev = [e for e in dev if e.label == "_silence_"]
    assert len(silence_train) == 10 and len(silence_dev) == 2
    assert [e.audio.start for e in silence_dev] == [0, 10 * 16000]
    assert all(e.audio.num_samples == 16000 for e in silence_train + silence_dev)
    # the official test archive: one clip per label folder
    assert sorted(e.label for e in test) == sorted(CLASSES)
    assert all(e.audio.num_samples == 16000 for e in test)


def test_librispeech_layout(libri_data):
    examples = librispeech_manifest(libri_data / "LibriSpeech", "dev-clean")
    assert [e.id for e in examples] == [f"{s}-198-{u:04d}" for s in (19, 26) for u in range(3)]
    assert examples[1].label == "IT'S A TEST"
    assert [e.audio.num_samples for e in examples[:3]] == [8000, 12000, 16000]
    assert examples[0].audio.path.endswith("LibriSpeech/dev-clean/19/198/19-198-0000.flac")
    task = SpeechRecognition({"splits": {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}})
    splits = task.prepare(libri_data)  # accepts the folder holding LibriSpeech/
    assert {k: len(v) for k, v in splits.items()} == {"train": 6, "dev": 6, "test": 6}


def test_character_vocabulary_round_trip():
    ids = encode_transcript("IT'S A TEST", "x")
    # CTC collapse: repeats merge unless separated by a blank (id 0)
    doubled = [i for i in ids for _ in range(2)]
    assert decode_ids(doubled) == "IT'S A TEST"
    assert decode_ids([0] + ids + [0]) == "IT'S A TEST"
