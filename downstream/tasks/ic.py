"""IC — intent classification on Fluent Speech Commands (SUPERB semantic task).

Layout (``--data`` points at the ``fluent_speech_commands_dataset`` folder)::

    data/train_data.csv        # header ",path,speakerId,transcription,action,object,location"
    data/valid_data.csv
    data/test_data.csv
    wavs/speakers/<speakerId>/<name>.wav

Each CSV row names a wav (``path``, relative to ``--data``) and its three slots. Example ids are
the wav file names without extension (what s3prl writes into ``ic_public/predict.csv``); they
must be unique within a split. A missing column, file or empty slot is an error naming the
CSV line.

Slot values are those of the training CSV, sorted per slot (FSC: 6 actions, 14 objects,
4 locations); a dev/test value never seen in training is an error naming the line (it could
never be predicted).

Head (s3prl v0.4.18 ``downstream/fluent_commands``): linear projector 256 -> mean pooling ->
one linear layer over the concatenated action/object/location logits; the loss is the sum of
the three slots' cross entropies; each slot is predicted by the argmax of its own logits.
Metric: accuracy (%) = all three slots right, higher is better. Predictions: ``predict.csv``
with ``<id>,<action>,<object>,<location>`` lines (no header), as s3prl writes them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..corpora.fluent_speech_commands import SLOTS, SPLIT_FILES, prepare_fluent_speech_commands
from ..heads.pooling import UtterancePooledHead
from ..metrics.classification import accuracy
from .base import Example, Task, write_lines
from .declaration import Board, Column, HIGHER, Metric, PERCENT, Submission


class IntentClassification(Task):
    name = "ic"
    title = "Intent classification"
    category = "semantic"
    dataset = "Fluent Speech Commands"
    metrics = {"accuracy": Metric(HIGHER, PERCENT)}
    primary_metric = "accuracy"
    loss_mean_over = "utterances"  # a sum of cross entropies (one per slot), each a mean over utterances
    leaderboard = Board("Intent classification", (Column("Acc", ("accuracy", "acc"), 9.649354219, 98.76),), position=3)
    submission = (Submission("ic_public", "predict.csv", "ic_csv", ("predict.csv", "test_predict.csv")),)
    mini_split = "fluent_commands"
    linear_pooled_head = True  # UtterancePooledHead, used only as head(feats, lengths)
    data_help = "fluent_speech_commands_dataset folder holding data/*.csv and wavs/"

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("IC needs --data pointing at the fluent_speech_commands_dataset folder")
        splits = prepare_fluent_speech_commands(Path(data_dir), self.min_samples)
        self.values: Tuple[Tuple[str, ...], ...] = tuple(
            tuple(sorted({e.label[k] for e in splits["train"]})) for k in range(len(SLOTS)))
        for split in ("dev", "test"):
            for e in splits[split]:
                for k, slot in enumerate(SLOTS):
                    if e.label[k] not in self.values[k]:
                        raise ValueError(f"{Path(data_dir) / 'data' / SPLIT_FILES[split]}: {e.id} has {slot} "
                                         f"{e.label[k]!r}, which no training row has ({', '.join(self.values[k])})")
        self._index = [{v: i for i, v in enumerate(vals)} for vals in self.values]
        self.data_notes = {f"{slot}_values": list(vals) for slot, vals in zip(SLOTS, self.values)}
        self.data_notes["intents_in_train"] = len({e.label for e in splits["train"]})
        return splits

    def build_head(self, input_dim: int, downsample_rate: int):
        return UtterancePooledHead(input_dim, int(self.cfg["projector_dim"]), sum(len(v) for v in self.values))

    def _slices(self, logits):
        out, start = [], 0
        for vals in self.values:
            out.append(logits[:, start:start + len(vals)])
            start += len(vals)
        return out

    def loss(self, head, feats, lengths, examples):
        logits = head(feats, lengths).float()
        total = logits.new_zeros(())
        for k, part in enumerate(self._slices(logits)):
            targets = torch.tensor([self._index[k][e.label[k]] for e in examples], device=logits.device)
            total = total + F.cross_entropy(part, targets)
        return total

    def predict(self, head, feats, lengths, examples):
        parts = [p.argmax(-1).tolist() for p in self._slices(head(feats, lengths))]
        return [tuple(self.values[k][parts[k][i]] for k in range(len(SLOTS))) for i in range(len(examples))]

    def score(self, examples, predictions):
        return {"accuracy": accuracy([tuple(e.label) for e in examples], [tuple(p) for p in predictions])}

    def write_predictions(self, out_dir: Path, split: str, examples: Sequence[Example], predictions):
        lines = [f"{e.id},{','.join(p)}" for e, p in sorted(zip(examples, predictions), key=lambda x: x[0].id)]
        return [write_lines(Path(out_dir) / split / "predict.csv", lines)]


__all__ = ["IntentClassification"]
