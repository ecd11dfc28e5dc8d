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

from ..corpora.speech_commands import CLASSES, TEST_DIR, TRAIN_DIR, prepare_speech_commands
from ..heads.pooling import UtterancePooledHead
from ..metrics.classification import accuracy, balanced_accuracy, per_class_counts
from .base import Example, Task, write_lines
from .declaration import Board, Column, HIGHER, Metric, PERCENT, Submission


def prediction_id(example_id: str) -> str:
    """The leaderboard's KS id of an example: its last two path parts joined with ``-``."""
    return "-".join(example_id.split("/")[-2:])


class KeywordSpotting(Task):
    name = "ks"
    title = "Keyword spotting"
    category = "content"
    dataset = "Speech Commands v0.01"
    metrics = {"accuracy": Metric(HIGHER, PERCENT), "balanced_accuracy": Metric(HIGHER, PERCENT)}
    primary_metric = "accuracy"
    loss_mean_over = "utterances"  # cross entropy, batch mean
    leaderboard = Board("Keyword spotting", (Column("Acc", ("accuracy", "acc"), 41.3826674, 96.66),), position=2)
    submission = (Submission("ks_public", "predict.txt", "ks_label", ("predict.txt", "test_predict.txt")),)
    mini_split = "speech_commands"
    linear_pooled_head = True  # UtterancePooledHead, used only as head(feats, lengths)
    data_help = f"folder holding {TRAIN_DIR}/ and {TEST_DIR}/"

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        data_dir = Path(data_dir) if data_dir is not None else None
        train_root = self.cfg.get("train_root") or (data_dir / TRAIN_DIR if data_dir else None)
        test_root = self.cfg.get("test_root") or (data_dir / TEST_DIR if data_dir else None)
        if train_root is None or test_root is None:
            raise ValueError("KS needs --data DIR (holding both archives) or task.train_root and task.test_root")
        return prepare_speech_commands(data_dir, Path(train_root), Path(test_root), self.min_samples)

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
        return {"accuracy": accuracy(labels, predictions),
                "balanced_accuracy": balanced_accuracy(labels, predictions, CLASSES)}

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
        counts = per_class_counts([e.label for e in examples], list(predictions), CLASSES)
        table = ["class\texamples\tcorrect\taccuracy\tpredicted"] + [
            f"{c}\t{n['examples']}\t{n['correct']}\t"
            f"{100.0 * n['correct'] / n['examples'] if n['examples'] else float('nan'):.2f}\t{n['predicted']}"
            for c, n in counts.items()]
        return write_lines(path, table)


__all__ = ["KeywordSpotting", "prediction_id"]
