"""SID — speaker identification on VoxCeleb1 (SUPERB speaker task).

Layout (``--data`` points at the VoxCeleb1 folder)::

    VoxCeleb1/
        wav/<speaker id>/<youtube id>/<nnnnn>.wav      # vox1_dev_wav + vox1_test_wav unpacked together
        iden_split.txt                                  # "<1|2|3> <id>/<youtube id>/<nnnnn>.wav"

s3prl's layout with the two archives unpacked apart (``dev/wav/...`` and ``test/wav/...``) is
accepted as well: a listed path is looked up under ``wav/``, ``dev/wav/`` and ``test/wav/``; it
must exist under exactly one of them (a missing or duplicated file is an error naming it).
``iden_split.txt`` (``task.split_file``, relative to ``--data`` unless absolute) assigns each file
to train (1), dev (2) or test (3); a line in any other form is an error naming the line.

Speaker classes are the speakers of the training split, sorted (1,251 in VoxCeleb1); a dev or test
speaker without training files is an error. Example ids are ``<id>-<youtube id>-<nnnnn>`` (the
names s3prl writes into ``sid_public/predict.txt``).

Head (s3prl v0.4.18 ``downstream/voxceleb1/config.yaml``): linear projector 256 -> mean pooling
-> linear over speakers, cross entropy. Training reads random crops of ``task.crop_seconds``
(8 s, s3prl ``max_timestep: 128000``) of longer files; dev and test read whole files. Unlike
s3prl's ``random.randint`` the crop offset is a pure function of (runner seed, epoch, utterance
id), so a resumed run sees the same crops (:class:`RandomCrops`); training examples carry
their first crop-length window so duration batches are packed by crop length. Metric: accuracy (%), higher is
better. Predictions: ``predict.txt`` with ``<utterance id> <speaker id>`` lines.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F

from ..audio import SAMPLE_RATE
from ..corpora.voxceleb1 import prepare_voxceleb1
from ..crops import RandomCrops
from ..heads.pooling import UtterancePooledHead
from ..metrics.classification import accuracy
from .base import Example, Task, write_lines
from .declaration import Board, Column, HIGHER, Metric, PERCENT, Submission


class SpeakerIdentification(Task):
    name = "sid"
    title = "Speaker identification"
    category = "speaker"
    dataset = "VoxCeleb1 (iden_split.txt)"
    metrics = {"accuracy": Metric(HIGHER, PERCENT)}
    primary_metric = "accuracy"
    loss_mean_over = "utterances"  # cross entropy, batch mean
    leaderboard = Board("Speaker identification", (Column("Acc", ("accuracy", "acc"), 20.058174, 90.3),), position=4)
    submission = (Submission("sid_public", "predict.txt", "utt_label", ("predict.txt", "test_predict.txt")),)
    mini_split = "voxceleb1"
    linear_pooled_head = True  # UtterancePooledHead, used only as head(feats, lengths)
    data_help = "VoxCeleb1 folder holding wav/ (or dev/wav/ and test/wav/) and iden_split.txt"

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("SID needs --data pointing at the VoxCeleb1 folder")
        splits = prepare_voxceleb1(Path(data_dir), self.cfg.get("split_file") or "iden_split.txt",
                                   self.min_samples)
        self.speakers = sorted({e.label for e in splits["train"]})
        self._index = {s: i for i, s in enumerate(self.speakers)}
        self.crops = RandomCrops(int(round(float(self.cfg.get("crop_seconds") or 0) * SAMPLE_RATE)))
        splits["train"] = self.crops.register(splits["train"])
        self.data_notes = {
            "speakers": len(self.speakers),
            "train_crop_seconds": float(self.cfg.get("crop_seconds") or 0),
            "train_files_longer_than_crop": self.crops.num_cropped(),
        }
        return splits

    def training_examples(self, examples, epoch, seed):
        return self.crops.apply(examples, epoch, seed)

    def build_head(self, input_dim: int, downsample_rate: int):
        return UtterancePooledHead(input_dim, int(self.cfg["projector_dim"]), len(self.speakers))

    def loss(self, head, feats, lengths, examples):
        logits = head(feats, lengths)
        targets = torch.tensor([self._index[e.label] for e in examples], device=logits.device)
        return F.cross_entropy(logits.float(), targets)

    def predict(self, head, feats, lengths, examples):
        return [self.speakers[i] for i in head(feats, lengths).argmax(-1).tolist()]

    def score(self, examples, predictions):
        return {"accuracy": accuracy([e.label for e in examples], predictions)}

    def write_predictions(self, out_dir: Path, split: str, examples: Sequence[Example], predictions):
        lines = [f"{e.id} {p}" for e, p in sorted(zip(examples, predictions), key=lambda x: x[0].id)]
        return [write_lines(Path(out_dir) / split / "predict.txt", lines)]


__all__ = ["SpeakerIdentification"]
