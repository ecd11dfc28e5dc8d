"""What every task module provides.

A task turns a corpus directory into examples (``prepare``), builds its fixed SUPERB head
(``build_head``), computes the training loss and predictions from featurizer output, scores
predictions with the task's official metric, and writes the prediction files the leaderboard
reads. It never sees the upstream: the runner hands it ``feats [B, T, D]`` and exact ``lengths``.

Metrics are reported in the units SUPERB displays (percentages for accuracy and error rates);
:data:`METRIC_UNITS` names the unit of every metric and goes into ``results.json``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence

import torch
from torch import nn

from ..audio import AudioSegment
from ..fileio import atomic_write_text


#: the unit of every metric a task reports (results.json ``metric_units``)
METRIC_UNITS: Dict[str, str] = {
    **{m: "percent" for m in ("accuracy", "wer", "cer", "per", "eer", "der", "miss", "false_alarm", "confusion",
                              "slot_type_f1", "slot_value_cer", "wer_constant", "cer_constant", "accept",
                              "balanced_accuracy")},
    "min_dcf": "detection cost (NIST SRE, not percent)",
    "mtwv": "MTWV x 100", "atwv": "ATWV x 100", "threshold": "detection score threshold",
    "pesq": "PESQ (wide-band MOS-LQO)", "pesq_input": "PESQ (wide-band MOS-LQO)", "pesq_failed": "utterances",
    "stoi": "STOI (fraction, 0-1)", "stoi_input": "STOI (fraction, 0-1)",
    "si_sdri": "dB", "si_sdr": "dB", "si_sdr_input": "dB",
    "mcd": "MCD dB", "mcd_source": "MCD dB",
    "bleu": "BLEU", "bleu_constant": "BLEU",
}


@dataclass(frozen=True)
class Example:
    """One labelled utterance (or segment of a file)."""

    id: str
    audio: AudioSegment
    label: Any


class Task:
    name: str = ""
    title: str = ""
    category: str = ""
    dataset: str = ""
    #: metric name -> higher is better
    metrics: Dict[str, bool] = {}
    primary_metric: str = ""
    #: the corpus split of the mini corpus this task trains on
    mini_split: str = ""
    #: what --data points at
    data_help: str = ""
    #: False for tasks without training (QbE): the runner calls ``run_untrained(runner)`` instead
    trainable: bool = True
    #: fold names for cross-validated tasks (ER); ``task.fold: all`` in the config runs every fold
    folds: tuple = ()
    #: the upstream's samples per frame; the runner sets it before ``prepare`` (SD frames its labels)
    downsample_rate = None
    #: filled by ``prepare``: counts of what the loader filtered or dropped (and why), copied into
    #: ``results.json`` under ``data.notes`` so no filtering is silent
    data_notes: Dict[str, Any] = {}
    #: task config keys that change only how a trained head's outputs are decoded (ASR:
    #: ``decoder``, ``kenlm``): ``superb evaluate RUN --set task.<key>=...`` may change them
    decode_settings: tuple = ()

    def __init__(self, cfg: Dict[str, Any]):
        self.cfg = dict(cfg)

    # -- data ---------------------------------------------------------------------------------
    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        """Parse the corpus at ``data_dir`` into ``{"train", "dev", "test"}`` example lists."""
        raise NotImplementedError

    def mini_data(self, profile: str, cache_dir, seed: int) -> Path:
        """Build (on first use) and return the mini-corpus directory for this task."""
        from ..corpora.mini import ensure_split

        return ensure_split(self.mini_split, profile=profile, cache_dir=cache_dir, seed=seed)

    def training_examples(self, examples: Sequence[Example], epoch: int, seed: int) -> List[Example]:
        """What one training batch feeds the upstream (default: the examples unchanged).

        Tasks that train on random crops (SID, ASV: SUPERB's 8 s crops) return cropped copies; the
        crop must be a pure function of ``(seed, epoch, example)`` so ``--resume`` reproduces it."""
        return list(examples)

    def class_labels(self, examples: Sequence[Example]):
        """Labels for class-balanced sampling, or None (the default) for plain shuffling."""
        return None

    # -- model --------------------------------------------------------------------------------
    def build_head(self, input_dim: int, downsample_rate: int) -> nn.Module:
        raise NotImplementedError

    def loss(self, head: nn.Module, feats: torch.Tensor, lengths: torch.Tensor,
             examples: Sequence[Example]) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, head: nn.Module, feats: torch.Tensor, lengths: torch.Tensor,
                examples: Sequence[Example]) -> List[Any]:
        raise NotImplementedError

    # -- scoring ------------------------------------------------------------------------------
    def score(self, examples: Sequence[Example], predictions: Sequence[Any]) -> Dict[str, float]:
        raise NotImplementedError

    def write_predictions(self, out_dir: Path, split: str, examples: Sequence[Example],
                          predictions: Sequence[Any]) -> List[Path]:
        raise NotImplementedError

    def run_untrained(self, runner) -> Dict[str, Any]:
        """For ``trainable = False`` tasks: evaluate with ``runner.upstream_states(examples)`` and
        return ``{"metrics": {split: {...}}, "predictions": {split: [relative paths]},
        "layer_weights": [...]}`` (extra keys are copied into results.json)."""
        raise NotImplementedError

    @classmethod
    def metric_units(cls, names=None) -> Dict[str, str]:
        """``{metric: unit}`` for ``names`` (default: the task's metrics); unknown names are an error."""
        names = sorted(names if names is not None else cls.metrics)
        missing = [n for n in names if n not in METRIC_UNITS]
        if missing:
            raise KeyError(f"no unit for metric(s) {', '.join(missing)} of task {cls.name}: add them to METRIC_UNITS "
                           "in superb/downstream/tasks/base.py")
        return {n: METRIC_UNITS[n] for n in names}

    def is_better(self, new: float, old) -> bool:
        if old is None:
            return True
        return new > old if self.metrics[self.primary_metric] else new < old


def masked_mean(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the valid frames of ``[B, T, D]`` features."""
    mask = (torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths[:, None]).to(feats.dtype)
    return (feats * mask.unsqueeze(-1)).sum(1) / lengths.clamp(min=1).to(feats.dtype).unsqueeze(-1)


class UtterancePooledHead(nn.Module):
    """SUPERB's utterance-level head: linear projector -> mean pooling -> linear classifier."""

    def __init__(self, input_dim: int, projector_dim: int, num_classes: int):
        super().__init__()
        self.projector = nn.Linear(input_dim, projector_dim)
        self.classifier = nn.Linear(projector_dim, num_classes)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classifier(masked_mean(self.projector(feats), lengths))


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path
