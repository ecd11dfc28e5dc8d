"""What every task module provides.

A task turns a corpus directory into examples (``prepare``), builds its fixed SUPERB head
(``build_head``), computes the training loss and predictions from featurizer output, scores
predictions with the task's official metric, and writes the prediction files the leaderboard
reads. It never sees the upstream: the runner hands it ``feats [B, T, D]`` and exact ``lengths``.

Metrics are reported in the units SUPERB displays (percentages for accuracy and error rates);
each task declares the unit of every metric it reports (``Metric(direction, unit)``), and
``results.json`` ``metric_units`` / ``higher_is_better`` come from that declaration.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..audio import DEFAULT_MIN_SAMPLES
from ..example import Example  # noqa: F401  (re-exported: tasks import it from here)
from ..fileio import atomic_write_text
from .declaration import Board, Metric, Submission


@dataclass(frozen=True)
class TaskContext:
    """What a task may know of the run it is part of; the runner builds it once, after loading the
    upstream, and hands it to the task's constructor. Nothing else of the runner reaches a task.

    ``upstream_states(examples)`` returns every hidden state the featurizer would see (float32
    ``[B, T, D]`` each) and the exact frame lengths; tasks without training (QbE) use it in
    :meth:`Task.run_untrained`. ``layer`` is ``featurizer.layer`` of the config (None: the
    weighted sum). Tests build tasks with only the fields they need."""

    #: 16 kHz samples per upstream frame (SD frames its labels with it)
    downsample_rate: int = 0
    #: feature size of each hidden state reaching the featurizer
    hidden_sizes: Tuple[int, ...] = ()
    #: the run directory (predictions go to ``<output_dir>/predictions``)
    output_dir: Optional[Path] = None
    upstream_states: Optional[Callable[[Sequence[Example]], Tuple[List[torch.Tensor], torch.Tensor]]] = None
    #: the evaluation batch budget (``batch.eval_max_seconds``)
    eval_max_seconds: float = 0.0
    layer: Optional[int] = None


class Task:
    """One SUPERB task. The class body declares everything about the task (read without importing
    it by :func:`superb.downstream.tasks.task_info`; values are literals or calls of the classes of
    :mod:`.declaration`); the methods implement it."""

    name: str = ""
    title: str = ""
    category: str = ""
    dataset: str = ""
    #: every metric the task reports (scores, then internal reference values), with direction and unit
    metrics: Dict[str, Metric] = {}
    primary_metric: str = ""
    #: the corpus split of the mini corpus this task trains on
    mini_split: str = ""
    #: the recipe: a name in ``superb.recipes`` (default: the task's name) or a ``.yaml`` file next
    #: to the task's module (plug-in tasks)
    recipe: str = ""
    #: the task's place on the leaderboard (None: not a leaderboard task)
    leaderboard: Optional[Board] = None
    #: the files of a leaderboard submission it fills (first: its main output)
    submission: Tuple[Submission, ...] = ()
    #: what --data points at
    data_help: str = ""
    #: False for tasks without training (QbE): the runner builds no featurizer or head and calls
    #: ``run_untrained(splits)`` instead
    trainable: bool = True
    #: True when the head is SUPERB's projector -> masked mean over time -> linear classifier and
    #: ``loss``/``predict`` read the features only through ``head(feats, lengths)``: weighted sum,
    #: projection and mean pooling commute, so the runner may store each layer's time-mean
    #: (L x D per utterance) and train on those, the same model exactly (issue #14)
    linear_pooled_head: bool = False
    #: what ``loss`` is a mean over: ``"utterances"`` (each utterance's loss, averaged over the
    #: batch: cross entropy, CTC with ``reduction="mean"``) or None (not declared). A data-parallel
    #: run (:mod:`superb.benchmark.distributed`) weights each process's loss by its share of the
    #: batch's utterances, so it trains only tasks that declare it
    loss_mean_over: Optional[str] = None
    #: fold names for cross-validated tasks (ER); ``task.fold: all`` in the config runs every fold
    folds: tuple = ()
    #: filled by ``prepare``: counts of what the loader filtered or dropped (and why), copied into
    #: ``results.json`` under ``data.notes`` so no filtering is silent
    data_notes: Dict[str, Any] = {}
    #: task config keys that change only how a trained head's outputs are decoded (ASR:
    #: ``decoder``, ``kenlm``): ``superb evaluate RUN --set task.<key>=...`` may change them
    decode_settings: tuple = ()

    def __init__(self, cfg: Dict[str, Any], context: Optional[TaskContext] = None):
        self.cfg = dict(cfg)
        self.context = context if context is not None else TaskContext()

    @property
    def min_samples(self) -> int:
        """``task.min_samples``: a shorter clip is an error naming the file, never skipped (default:
        :data:`superb.downstream.audio.DEFAULT_MIN_SAMPLES`, the shortest clip every upstream frames)."""
        return int(self.cfg.get("min_samples", DEFAULT_MIN_SAMPLES))

    # -- data ---------------------------------------------------------------------------------
    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        """Parse the corpus at ``data_dir`` into ``{"train", "dev", "test"}`` example lists."""
        raise NotImplementedError

    def mini_data(self, profile: str, cache_dir, seed: int) -> Path:
        """Build (on first use) and return the mini-corpus directory for this task."""
        from ..mini import ensure_split

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

    def run_untrained(self, splits: Dict[str, List[Example]]) -> Dict[str, Any]:
        """For ``trainable = False`` tasks: evaluate ``splits`` with ``self.context.upstream_states``
        and return ``{"metrics": {split: {...}}, "predictions": {split: [paths relative to the run
        directory]}, "layer_weights": [...]}`` (extra keys are copied into results.json)."""
        raise NotImplementedError

    @classmethod
    def higher_is_better(cls) -> Dict[str, bool]:
        """``{metric: higher is better}`` of every metric the task declares."""
        return {m: d.higher_is_better for m, d in cls.metrics.items()}

    @classmethod
    def metric_units(cls, names=None) -> Dict[str, str]:
        """``{metric: unit}`` for ``names`` (default: the task's metrics); a name the task does not
        declare in ``metrics`` is an error."""
        names = sorted(names if names is not None else cls.metrics)
        missing = [n for n in names if n not in cls.metrics]
        if missing:
            raise KeyError(f"task {cls.name} reported metric(s) {', '.join(missing)} it does not declare: add them to "
                           f"the metrics of {cls.__module__}.{cls.__qualname__}")
        return {n: cls.metrics[n].unit for n in names}

    def is_better(self, new: float, old) -> bool:
        if old is None:
            return True
        return new > old if self.metrics[self.primary_metric].higher_is_better else new < old


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path
