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

import csv
import io
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..audio import check_unique_ids, segment_for
from ..fileio import read_text
from .base import Example, Task, UtterancePooledHead, write_lines
from .sid import accuracy

SLOTS = ("action", "object", "location")
SPLIT_FILES = {"train": "train_data.csv", "dev": "valid_data.csv", "test": "test_data.csv"}
COLUMNS = ("path", "speakerId", "transcription") + SLOTS


def read_fsc_csv(root: Path, csv_path: Path, min_samples: int = 400) -> List[Example]:
    """Examples of one FSC CSV; labels are ``(action, object, location)`` tuples."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"Fluent Speech Commands CSV not found: {csv_path}")
    examples: List[Example] = []
    with io.StringIO(read_text(csv_path), newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {', '.join(missing)} (header {reader.fieldnames})")
        for row in reader:
            line = reader.line_num
            rel = (row["path"] or "").strip()
            slots = tuple((row[s] or "").strip() for s in SLOTS)
            if not rel or not all(slots):
                raise ValueError(f"{csv_path}:{line}: empty path or slot value in {row}")
            wav = root / rel
            if not wav.is_file():
                raise FileNotFoundError(f"{csv_path}:{line}: audio file {rel} not found under {root}")
            examples.append(Example(Path(rel).stem, segment_for(wav, min_samples), slots))
    if not examples:
        raise ValueError(f"{csv_path}: no rows")
    check_unique_ids((e.id for e in examples), str(csv_path))
    return examples


def fluent_commands_manifest(root: Path, min_samples: int = 400) -> Dict[str, List[Example]]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Fluent Speech Commands folder not found: {root}")
    return {split: read_fsc_csv(root, root / "data" / name, min_samples) for split, name in SPLIT_FILES.items()}


class IntentClassification(Task):
    name = "ic"
    title = "Intent classification"
    category = "semantic"
    dataset = "Fluent Speech Commands"
    metrics = {"accuracy": True}
    primary_metric = "accuracy"
    mini_split = "fluent_commands"
    data_help = "fluent_speech_commands_dataset folder holding data/*.csv and wavs/"

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("IC needs --data pointing at the fluent_speech_commands_dataset folder")
        splits = fluent_commands_manifest(Path(data_dir), int(self.cfg.get("min_samples", 400)))
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


__all__ = ["IntentClassification", "SLOTS", "fluent_commands_manifest", "read_fsc_csv"]
