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

import hashlib
import re
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import SAMPLE_RATE, AudioSegment, check_unique_ids, segment_for
from ..fileio import read_lines
from .base import Example, Task, UtterancePooledHead, write_lines

#: where a VoxCeleb1 ``<id>/<video>/<n>.wav`` path is looked for, relative to ``--data``
WAV_ROOTS = ("wav", "dev/wav", "test/wav")
_REL_RE = re.compile(r"[^/\s]+/[^/\s]+/[^/\s]+\.wav")


def voxceleb_roots(data_dir: Path, names: Sequence[str] = WAV_ROOTS) -> List[Path]:
    """The existing wav roots of a VoxCeleb1 folder (``wav/``, ``dev/wav/``, ``test/wav/``)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"VoxCeleb1 folder not found: {data_dir}")
    roots = [data_dir / n for n in names if (data_dir / n).is_dir()]
    if not roots:
        raise FileNotFoundError(f"{data_dir}: no VoxCeleb1 audio folder (expected one of {', '.join(n + '/' for n in names)})")
    return roots


def check_rel_path(rel: str, where: str) -> str:
    if not _REL_RE.fullmatch(rel):
        raise ValueError(f"{where}: {rel!r} is not a VoxCeleb path of the form <id>/<youtube id>/<nnnnn>.wav")
    return rel


def resolve_wav(roots: Sequence[Path], rel: str, where: str) -> Path:
    """The one file ``<root>/<rel>`` among ``roots``; missing or ambiguous is an error naming it."""
    found = [r / rel for r in roots if (r / rel).is_file()]
    if not found:
        raise FileNotFoundError(f"{where}: audio file {rel} not found under {', '.join(str(r) for r in roots)}")
    if len(found) > 1:
        raise ValueError(f"{where}: {rel} exists under several roots ({', '.join(str(f) for f in found)}); keep one copy")
    return found[0]


def utterance_name(rel: str) -> str:
    """``id10001/1zcIwhmdeo4/00001.wav`` -> ``id10001-1zcIwhmdeo4-00001`` (s3prl's prediction names)."""
    spk, video, name = rel.split("/")
    return f"{spk}-{video}-{Path(name).stem}"


def crop_window(segment: AudioSegment, crop_samples: int, key: str, epoch: int, seed: int) -> AudioSegment:
    """A ``crop_samples`` window of a longer segment; the offset is drawn from (seed, epoch, key)."""
    if crop_samples <= 0 or segment.num_samples <= crop_samples:
        return segment
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), h])
    offset = int(rng.integers(0, segment.num_samples - crop_samples + 1))
    return AudioSegment(segment.path, crop_samples, segment.start + offset)


class RandomCrops:
    """Training on random crops with duration batching that sees the cropped lengths.

    ``register`` keeps each training file's full segment and returns an example whose audio is
    its first ``crop_samples`` (so the duration batch sampler packs batches by crop length);
    ``apply`` swaps in the crop of ``(seed, epoch, id)`` when a batch is drawn.
    """

    def __init__(self, crop_samples: int):
        self.crop_samples = int(crop_samples)
        self.full: Dict[str, AudioSegment] = {}

    def register(self, examples: Sequence[Example]) -> List[Example]:
        out = []
        for e in examples:
            self.full[e.id] = e.audio
            if self.crop_samples > 0 and e.audio.num_samples > self.crop_samples:
                e = Example(e.id, AudioSegment(e.audio.path, self.crop_samples, e.audio.start), e.label)
            out.append(e)
        return out

    def apply(self, examples: Sequence[Example], epoch: int, seed: int) -> List[Example]:
        return [Example(e.id, crop_window(self.full[e.id], self.crop_samples, e.id, epoch, seed), e.label)
                if e.id in self.full else e for e in examples]

    def num_cropped(self) -> int:
        return sum(s.num_samples > self.crop_samples for s in self.full.values()) if self.crop_samples > 0 else 0


def read_iden_split(path: Path) -> List[tuple]:
    """``[(split number, relative path, line number)]`` of an ``iden_split.txt``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VoxCeleb1 identification split file not found: {path}")
    out = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("1", "2", "3"):
            raise ValueError(f"{path}:{n}: expected '<1|2|3> <id>/<youtube id>/<nnnnn>.wav', got {line.strip()!r}")
        out.append((int(parts[0]), check_rel_path(parts[1], f"{path}:{n}"), n))
    if not out:
        raise ValueError(f"{path}: the identification split file lists no files")
    return out


def voxceleb1_identification(data_dir: Path, split_file="iden_split.txt", min_samples: int = 400) -> Dict[str, List[Example]]:
    """Parse VoxCeleb1 with ``iden_split.txt`` into train/dev/test examples labelled with speaker ids."""
    data_dir = Path(data_dir)
    roots = voxceleb_roots(data_dir)
    split_path = Path(split_file) if Path(split_file).is_absolute() else data_dir / split_file
    names = {1: "train", 2: "dev", 3: "test"}
    splits: Dict[str, List[Example]] = {"train": [], "dev": [], "test": []}
    seen: Dict[str, int] = {}
    for num, rel, n in read_iden_split(split_path):
        where = f"{split_path}:{n}"
        if rel in seen:
            raise ValueError(f"{where}: {rel} is listed twice (first on line {seen[rel]})")
        seen[rel] = n
        wav = resolve_wav(roots, rel, where)
        splits[names[num]].append(Example(utterance_name(rel), segment_for(wav, min_samples), rel.split("/")[0]))
    for split, examples in splits.items():
        if not examples:
            raise ValueError(f"{split_path}: the {split} split (number {[k for k, v in names.items() if v == split][0]}) is empty")
        check_unique_ids((e.id for e in examples), f"{split_path} ({split})")
    train_speakers = {e.label for e in splits["train"]}
    for split in ("dev", "test"):
        unknown = sorted({e.label for e in splits[split]} - train_speakers)
        if unknown:
            raise ValueError(f"{split_path}: {split} speakers without training files: {', '.join(unknown[:5])}"
                             f"{' ...' if len(unknown) > 5 else ''} ({len(unknown)})")
    return splits


class SpeakerIdentification(Task):
    name = "sid"
    title = "Speaker identification"
    category = "speaker"
    dataset = "VoxCeleb1 (iden_split.txt)"
    metrics = {"accuracy": True}
    primary_metric = "accuracy"
    mini_split = "voxceleb1"
    data_help = "VoxCeleb1 folder holding wav/ (or dev/wav/ and test/wav/) and iden_split.txt"

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("SID needs --data pointing at the VoxCeleb1 folder")
        splits = voxceleb1_identification(Path(data_dir), self.cfg.get("split_file") or "iden_split.txt",
                                          int(self.cfg.get("min_samples", 400)))
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


def accuracy(labels: Sequence, predictions: Sequence) -> float:
    """Percentage of predictions equal to their label."""
    if len(labels) != len(predictions) or not labels:
        raise ValueError(f"accuracy needs equally many labels and predictions (got {len(labels)} and {len(predictions)})")
    return 100.0 * sum(a == b for a, b in zip(labels, predictions)) / len(labels)


__all__ = ["RandomCrops", "SpeakerIdentification", "accuracy", "crop_window", "resolve_wav", "utterance_name",
           "voxceleb1_identification", "voxceleb_roots"]
