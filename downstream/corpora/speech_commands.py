"""Speech Commands v0.01 (Warden 2018), read the SUPERB way (12 classes).

Layout (``root`` holds both archives)::

    speech_commands_v0.01/                       # the training archive
        <word>/<speaker-hash>_nohash_<n>.wav     # 30 words, 1 s, 16 kHz mono
        _background_noise_/*.wav                 # long noise recordings
        validation_list.txt                      # "<word>/<file>.wav", one per line
        testing_list.txt                         # files held out of train (the test archive replaces them)
    speech_commands_test_set_v0.01/              # the official test archive
        <label>/<file>.wav                       # 10 words, _unknown_, _silence_

Labels: the 10 command words, ``_unknown_`` (every other word) and ``_silence_``. Train is every
word file not in the validation or testing list, dev the validation list, test the test archive.
``_silence_`` examples for train and dev are the background-noise files cut into consecutive 1 s
segments: every 10th segment goes to dev, the rest to train. Example ids are paths below the
archive (``yes/0a2b400e_nohash_0.wav``, ``_background_noise_/<file>.wav#<i>``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from ..audio import DEFAULT_MIN_SAMPLES, SAMPLE_RATE, audio_files, segment_for
from ..example import Example
from ..fileio import read_lines

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
CLASSES = COMMANDS + (UNKNOWN, SILENCE)
TRAIN_DIR = "speech_commands_v0.01"
TEST_DIR = "speech_commands_test_set_v0.01"


def _read_list(path: Path) -> List[str]:
    if not path.is_file():
        raise FileNotFoundError(f"Speech Commands list file missing: {path}")
    return [line.strip() for line in read_lines(path) if line.strip()]


def speech_commands_manifest(train_root: Path, test_root: Path, min_samples: int = DEFAULT_MIN_SAMPLES) -> Dict[str, List[Example]]:
    """Parse the Speech Commands v0.01 archives into train/dev/test examples with 12 labels."""
    train_root, test_root = Path(train_root), Path(test_root)
    for root in (train_root, test_root):
        if not root.is_dir():
            raise FileNotFoundError(f"Speech Commands folder not found: {root}")
    cache: Dict[str, int] = {}
    val = set(_read_list(train_root / "validation_list.txt"))
    tst = set(_read_list(train_root / "testing_list.txt"))
    for listed in sorted(val | tst):
        if not (train_root / listed).is_file():
            raise FileNotFoundError(f"{train_root}: file {listed!r} named in a list file does not exist")
    splits: Dict[str, List[Example]] = {"train": [], "dev": [], "test": []}
    word_dirs = sorted(p for p in train_root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    if not word_dirs:
        raise FileNotFoundError(f"{train_root}: no word folders found")
    for word_dir in word_dirs:
        label = word_dir.name if word_dir.name in COMMANDS else UNKNOWN
        for wav in audio_files(word_dir):
            rel = f"{word_dir.name}/{wav.name}"
            if rel in tst:
                continue
            split = "dev" if rel in val else "train"
            splits[split].append(Example(rel, segment_for(wav, min_samples, info_cache=cache), label))
    noise_dir = train_root / "_background_noise_"
    noise_files = audio_files(noise_dir) if noise_dir.is_dir() else []
    if not noise_files:
        raise FileNotFoundError(f"{noise_dir}: no background noise files to make {SILENCE} examples from")
    k = 0
    for wav in noise_files:
        seg = segment_for(wav, min_samples, info_cache=cache)
        for i in range(seg.num_samples // SAMPLE_RATE):
            split = "dev" if k % 10 == 0 else "train"
            example_id = f"_background_noise_/{wav.name}#{i}"
            splits[split].append(Example(example_id, segment_for(wav, min_samples, start=i * SAMPLE_RATE,
                                                                num_samples=SAMPLE_RATE, info_cache=cache), SILENCE))
            k += 1
    label_dirs = sorted(p for p in test_root.iterdir() if p.is_dir())
    for label_dir in label_dirs:
        if label_dir.name not in CLASSES:
            raise ValueError(f"{label_dir}: unexpected label folder in the test archive (expected {', '.join(CLASSES)})")
        wavs = audio_files(label_dir)
        if not wavs:
            raise ValueError(f"{label_dir}: empty label folder in the test archive (no .wav files); "
                             "the test set must be complete")
        for wav in wavs:
            splits["test"].append(Example(f"{label_dir.name}/{wav.name}", segment_for(wav, min_samples, info_cache=cache),
                                          label_dir.name))
    for split, examples in splits.items():
        if not examples:
            raise ValueError(f"Speech Commands {split} split is empty (train {train_root}, test {test_root})")
    return splits


def prepare_speech_commands(root: Optional[Path], train_root: Optional[Path] = None, test_root: Optional[Path] = None,
                            min_samples: int = DEFAULT_MIN_SAMPLES) -> Dict[str, List[Example]]:
    """``{"train", "dev", "test"}`` examples of the archives below ``root`` (or at the given roots)."""
    train_root = Path(train_root) if train_root else Path(root) / TRAIN_DIR
    test_root = Path(test_root) if test_root else Path(root) / TEST_DIR
    return speech_commands_manifest(train_root, test_root, min_samples)
