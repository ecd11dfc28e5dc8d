"""KS — keyword spotting on Speech Commands v0.01 (SUPERB content task).

Layout (``--data`` points at the folder holding both archives, or set ``task.train_root`` and
``task.test_root`` in the config)::

    speech_commands_v0.01/                       # the training archive
        <word>/<speaker-hash>_nohash_<n>.wav     # 30 words, 1 s, 16 kHz mono
        _background_noise_/*.wav                 # long noise recordings
        validation_list.txt                      # "<word>/<file>.wav", one per line
        testing_list.txt                         # (not used: SUPERB tests on the test archive)
    speech_commands_test_set_v0.01/              # the official test archive
        <label>/<file>.wav                       # 10 words, _unknown_, _silence_

SUPERB's 12 classes: yes no up down left right on off stop go, ``_unknown_`` (every other word)
and ``_silence_``. Training uses every word file not in the validation or testing list; dev is the
validation list; test is the official test archive. ``_silence_`` examples for train and dev are
the background-noise files cut into consecutive 1 s segments (deterministic, instead of random
crops at load time): every 10th segment goes to dev, the rest to train.

Head (s3prl ``downstream/speech_commands/config.yaml``): linear projector 256 -> mean pooling ->
linear, cross entropy, class-balanced sampling. Metric: accuracy (%), higher is better -- SUPERB's
metric, the primary one (it picks the best dev checkpoint). Also reported: ``balanced_accuracy``
(%), the mean over the classes present in the split of each class's recall (sklearn's
``balanced_accuracy_score``). Dev keeps the validation list's class mix, where ``_unknown_`` (20
of the 30 words) dominates -- 56 % of the mini corpus's dev split, while the test archive is
balanced -- so a head that always answers ``_unknown_`` scores a high dev accuracy but a balanced
accuracy of 100/12 % (docs/tasks/ks.md).
Predictions: ``predict.txt`` with ``<file id> <label>`` lines, the file id in the leaderboard
server's form: the last two path parts joined with ``-`` (``yes/0a2b400e_nohash_0.wav`` is written
``yes-0a2b400e_nohash_0.wav``; the server's ``ks_public/truth.txt`` is keyed that way, as s3prl's
``speech_commands`` expert writes its ``test_predict.txt``). Inside the toolkit (results, manifests)
an example's id stays its path below the archive, ``<label>/<file>.wav``. Beside it,
``per_class.tsv``: per class the examples, correct ones, accuracy (%) and how often it was predicted
(results.json metrics are single numbers, so the per-class values go to this file).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F

from ..audio import SAMPLE_RATE, AudioError, audio_files, segment_for
from ..fileio import read_lines
from .base import Example, Task, UtterancePooledHead, write_lines

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


def speech_commands_manifest(train_root: Path, test_root: Path, min_samples: int = 400) -> Dict[str, List[Example]]:
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


def per_class_counts(labels: Sequence[str], predictions: Sequence[str]) -> Dict[str, Dict[str, int]]:
    """``{class: {"examples", "correct", "predicted"}}`` for every class among the labels or the
    predictions, in :data:`CLASSES` order (then any other label, sorted)."""
    if len(labels) != len(predictions):
        raise ValueError(f"KS: {len(predictions)} predictions for {len(labels)} examples")
    seen = set(labels) | set(predictions)
    order = [c for c in CLASSES if c in seen] + sorted(seen - set(CLASSES))
    counts = {c: {"examples": 0, "correct": 0, "predicted": 0} for c in order}
    for label, pred in zip(labels, predictions):
        counts[label]["examples"] += 1
        counts[label]["correct"] += int(label == pred)
        counts[pred]["predicted"] += 1
    return counts


def balanced_accuracy(labels: Sequence[str], predictions: Sequence[str]) -> float:
    """Mean recall (%) over the classes present in ``labels`` (sklearn's ``balanced_accuracy_score``
    x 100): every class weighs the same however many examples it has."""
    recalls = [c["correct"] / c["examples"] for c in per_class_counts(labels, predictions).values() if c["examples"]]
    if not recalls:
        raise ValueError("KS: balanced accuracy of an empty split")
    return 100.0 * sum(recalls) / len(recalls)


def prediction_id(example_id: str) -> str:
    """The leaderboard's KS id of an example: its last two path parts joined with ``-``."""
    return "-".join(example_id.split("/")[-2:])


class KeywordSpotting(Task):
    name = "ks"
    title = "Keyword spotting"
    category = "content"
    dataset = "Speech Commands v0.01"
    metrics = {"accuracy": True, "balanced_accuracy": True}
    primary_metric = "accuracy"
    mini_split = "speech_commands"
    data_help = f"folder holding {TRAIN_DIR}/ and {TEST_DIR}/"

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        data_dir = Path(data_dir) if data_dir is not None else None
        train_root = self.cfg.get("train_root") or (data_dir / TRAIN_DIR if data_dir else None)
        test_root = self.cfg.get("test_root") or (data_dir / TEST_DIR if data_dir else None)
        if train_root is None or test_root is None:
            raise ValueError("KS needs --data DIR (holding both archives) or task.train_root and task.test_root")
        return speech_commands_manifest(Path(train_root), Path(test_root), int(self.cfg.get("min_samples", 400)))

    def class_labels(self, examples):
        return [e.label for e in examples] if self.cfg.get("class_balanced", True) else None

    def build_head(self, input_dim: int, downsample_rate: int):
        return UtterancePooledHead(input_dim, int(self.cfg["projector_dim"]), len(CLASSES))

    def _targets(self, examples, device):
        return torch.tensor([CLASSES.index(e.label) for e in examples], device=device)

    def loss(self, head, feats, lengths, examples):
        logits = head(feats, lengths)
        return F.cross_entropy(logits.float(), self._targets(examples, logits.device))

    def predict(self, head, feats, lengths, examples):
        return [CLASSES[i] for i in head(feats, lengths).argmax(-1).tolist()]

    def score(self, examples, predictions):
        labels = [e.label for e in examples]
        correct = sum(label == p for label, p in zip(labels, predictions))
        return {"accuracy": 100.0 * correct / len(examples),
                "balanced_accuracy": balanced_accuracy(labels, predictions)}

    def write_predictions(self, out_dir: Path, split: str, examples: Sequence[Example], predictions):
        rows = sorted((prediction_id(e.id), p) for e, p in zip(examples, predictions))
        ids = [i for i, _ in rows]
        if len(set(ids)) != len(ids):  # e.g. one file name under two folders of another layout
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"KS {split}: two examples share the prediction id {dup!r} (label-file)")
        predict = write_lines(Path(out_dir) / split / "predict.txt", [f"{i} {p}" for i, p in rows])
        self.write_per_class(Path(out_dir) / split / "per_class.tsv", examples, predictions)
        return [predict]  # the prediction files (results.json `predictions`); per_class.tsv is a report beside them

    @staticmethod
    def write_per_class(path: Path, examples: Sequence[Example], predictions) -> Path:
        """``class, examples, correct, accuracy (%, nan without examples), predicted`` per class."""
        counts = per_class_counts([e.label for e in examples], list(predictions))
        table = ["class\texamples\tcorrect\taccuracy\tpredicted"] + [
            f"{c}\t{n['examples']}\t{n['correct']}\t"
            f"{100.0 * n['correct'] / n['examples'] if n['examples'] else float('nan'):.2f}\t{n['predicted']}"
            for c, n in counts.items()]
        return write_lines(path, table)


__all__ = ["AudioError", "CLASSES", "KeywordSpotting", "balanced_accuracy", "per_class_counts", "prediction_id",
           "speech_commands_manifest"]
