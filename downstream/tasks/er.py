"""ER — emotion recognition on IEMOCAP, leave-one-session-out (SUPERB paralinguistic task).

Layout: ``--data`` points at the IEMOCAP release folder (e.g. ``IEMOCAP_full_release/``), read by
:mod:`superb.downstream.corpora.iemocap` (which documents the files it reads).

Classes (SUPERB): ``neu``, ``hap`` (``hap`` and ``exc`` merged), ``ang``, ``sad``. Utterances
with the other IEMOCAP labels (``fru sur fea dis oth xxx``) are dropped; how many of each is
counted, printed on stderr and written into ``results.json`` (``data.notes``). A label outside
the IEMOCAP set is an error naming the file and line.

Folds: ``folds = ("1", ..., "5")``; fold k tests on Session k. ``task.fold: all`` (the recipe
default) makes ``superb run`` train and test all five folds and report their mean (SUPERB
requires all five); ``task.fold: 3`` runs one. Within a fold, s3prl v0.4.18
(``downstream/emotion/expert.py``, ``valid_ratio: 0.2``) splits the four training sessions at
random into 80 % train and 20 % dev (``random_split`` after ``torch.manual_seed(0)``); superb does
the same with a numpy permutation seeded by ``task.dev_seed`` (0) over the utterances sorted by
id: the first ``int(0.8 n)`` train, the rest dev. Dev therefore shares speakers with train.

Head (s3prl ``downstream/emotion/config.yaml``): linear projector 256 -> mean pooling -> linear
over the 4 classes, cross entropy. Metric: accuracy (%), higher is better. Predictions:
``predict.txt`` (``<utterance> <label>``) per fold, as the leaderboard's ``er_fold<k>_public``.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..corpora.iemocap import SESSIONS, prepare_iemocap
from ..heads.pooling import UtterancePooledHead
from ..metrics.classification import accuracy
from .base import Example, Task, write_lines
from .declaration import Board, Column, HIGHER, Metric, PERCENT, Submission

CLASSES = ("neu", "hap", "ang", "sad")


def fold_splits(by_session: Dict[str, List[Example]], fold: str, valid_ratio: float = 0.2,
                dev_seed: int = 0) -> Dict[str, List[Example]]:
    """Test on Session ``fold``; the other sessions split at random into train and dev."""
    if fold not in by_session:
        raise ValueError(f"ER fold {fold!r} is not one of {', '.join(SESSIONS)}")
    pool = sorted((e for s, ex in by_session.items() if s != fold for e in ex), key=lambda e: e.id)
    order = np.random.default_rng(int(dev_seed)).permutation(len(pool))
    n_train = int((1.0 - float(valid_ratio)) * len(pool))
    train = [pool[i] for i in sorted(order[:n_train])]
    dev = [pool[i] for i in sorted(order[n_train:])]
    if not train or not dev:
        raise ValueError(f"ER fold {fold}: valid_ratio {valid_ratio} leaves an empty train or dev split")
    return {"train": train, "dev": dev, "test": list(by_session[fold])}


class EmotionRecognition(Task):
    name = "er"
    title = "Emotion recognition"
    category = "paralinguistic"
    dataset = "IEMOCAP (4 classes, 5 folds)"
    metrics = {"accuracy": Metric(HIGHER, PERCENT)}
    primary_metric = "accuracy"
    loss_mean_over = "utterances"  # cross entropy, batch mean
    leaderboard = Board("Emotion recognition", (Column("Acc", ("accuracy", "acc"), 48.23672168, 67.62),), position=5)
    submission = (Submission("er_fold{fold}_public", "predict.txt", "utt_label", ("predict.txt",)),)
    mini_split = "iemocap"
    linear_pooled_head = True  # UtterancePooledHead, used only as head(feats, lengths)
    data_help = "IEMOCAP release folder holding Session1/ ... Session5/"
    folds = SESSIONS

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("ER needs --data pointing at the IEMOCAP folder")
        fold = str(self.cfg.get("fold"))
        if fold not in SESSIONS:
            raise ValueError(f"task.fold={fold!r}: ER needs one fold of {', '.join(SESSIONS)} here; "
                             "'all' runs every fold through `superb run` (benchmark.runner.run_benchmark)")
        by_session, dropped = prepare_iemocap(Path(data_dir), self.min_samples)
        splits = fold_splits(by_session, fold, float(self.cfg.get("valid_ratio", 0.2)), int(self.cfg.get("dev_seed", 0)))
        kept = Counter(e.label for ex in by_session.values() for e in ex)
        self.data_notes = {
            "fold": fold, "test_session": f"Session{fold}",
            "utterances_kept": {c: kept.get(c, 0) for c in CLASSES},
            "utterances_dropped_by_label": dropped,
            "utterances_dropped": sum(dropped.values()),
        }
        print(f"er: fold {fold}: kept {sum(kept.values())} utterances {dict(self.data_notes['utterances_kept'])}, "
              f"dropped {sum(dropped.values())} with other labels {dropped}", file=sys.stderr)
        return splits

    def build_head(self, input_dim: int, downsample_rate: int):
        return UtterancePooledHead(input_dim, int(self.cfg["projector_dim"]), len(CLASSES))

    def loss(self, head, feats, lengths, examples):
        logits = head(feats, lengths)
        targets = torch.tensor([CLASSES.index(e.label) for e in examples], device=logits.device)
        return F.cross_entropy(logits.float(), targets)

    def predict(self, head, feats, lengths, examples):
        return [CLASSES[i] for i in head(feats, lengths).argmax(-1).tolist()]

    def score(self, examples, predictions):
        return {"accuracy": accuracy([e.label for e in examples], predictions)}

    def write_predictions(self, out_dir: Path, split: str, examples: Sequence[Example], predictions):
        lines = [f"{e.id} {p}" for e, p in sorted(zip(examples, predictions), key=lambda x: x[0].id)]
        return [write_lines(Path(out_dir) / split / "predict.txt", lines)]


__all__ = ["CLASSES", "EmotionRecognition", "fold_splits"]
