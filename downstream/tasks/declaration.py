"""The facts a task declares about itself, as plain torch-free values.

Each task class states, in its own body, everything the rest of the toolkit needs to know about
it (:class:`superb.downstream.tasks.base.Task` lists the attributes):

* ``metrics = {"wer": Metric(LOWER, PERCENT), ...}`` -- every metric the task reports, with its
  direction and unit (``results.json`` ``higher_is_better`` / ``metric_units`` are derived from it);
* ``leaderboard = Board(...)`` -- the leaderboard columns its results fill, with the FBANK and SOTA
  reference points of SUPERB_s (:mod:`superb.benchmark.leaderboard` builds its table from these);
* ``submission = (Submission(...), ...)`` -- the folder and file the leaderboard server reads and
  the prediction files they come from (:mod:`superb.benchmark.submit` builds its layout from these).

The declarations are written as calls of the classes below with literal arguments, so that
``superb list tasks``, ``superb export`` and ``superb submit`` read them from the task module's
source without importing torch (:func:`superb.downstream.tasks.task_info`); the same values are
the class attributes when the module is imported, and ``tests/test_cli_fast.py`` checks that both
agree for every task.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

#: directions of a metric
HIGHER = True
LOWER = False

#: unit names used by several tasks (``results.json`` ``metric_units``)
PERCENT = "percent"
DB = "dB"

INF = math.inf


@dataclass(frozen=True)
class Metric:
    """One metric a task reports.

    ``internal``: a reference value or counter reported next to the scores to help read them (the
    score of a constant prediction, of the unprocessed input, the number of failed utterances); no
    leaderboard column is one and ``superb list`` leaves them out."""

    higher_is_better: bool
    unit: str
    internal: bool = False


@dataclass(frozen=True)
class Column:
    """One leaderboard column and how to read it from ``results.json``.

    Reference points (``fbank``, ``sota``) are in displayed units; ``result_keys`` are the accepted
    metric names in ``results.json`` (the first is the one the task writes); ``scale`` converts:
    results.json value x scale = displayed value; ``valid`` is the plausible displayed range (a
    value outside it is a unit mistake and fails loudly)."""

    name: str
    result_keys: Tuple[str, ...]
    fbank: float
    sota: float
    unit: str = "%"
    scale: float = 1.0
    valid: Tuple[float, float] = (0.0, 100.0)

    @property
    def higher_is_better(self) -> bool:
        return self.sota > self.fbank

    def points(self, displayed: float) -> float:
        """SUPERB_s points of a displayed value: ``1000 * (value - FBANK) / (SOTA - FBANK)``."""
        return 1000.0 * (displayed - self.fbank) / (self.sota - self.fbank)


@dataclass(frozen=True)
class Board:
    """Where a task sits on the SUPERB leaderboard.

    ``position``: the column order of the board's tables (1 = leftmost); ``splits``: the splits of
    ``results.json`` whose metrics the leaderboard reports, in order of preference. A task with
    folds (ER) needs all of them for the leaderboard (the number comes from ``Task.folds``)."""

    title: str
    columns: Tuple[Column, ...]
    position: int
    splits: Tuple[str, ...] = ("test",)


@dataclass(frozen=True)
class Submission:
    """One file of a leaderboard submission zip (``predict/<folder>/<file>``).

    ``fmt`` names the validator/converter in :mod:`superb.benchmark.submit`; ``sources`` are the
    prediction file names accepted from a run, the first being the one the task writes; ``folder``
    may hold ``{fold}`` for cross-validated tasks (one folder per ``Task.folds`` entry);
    ``server_metrics``: for ``fmt="metrics"``, the metric lines the server reads. A task's further
    submissions (after its first) are filled only from prediction files named in their ``sources``
    (ASR's ``predict_lm.ark``, written when decoding with the KenLM n-gram)."""

    folder: str
    file: str
    fmt: str
    sources: Tuple[str, ...] = ()
    server_metrics: Tuple[str, ...] = ()


#: the classes a task declaration may call (read from source by :mod:`superb.downstream.tasks`)
DECLARATION_CLASSES = {cls.__name__: cls for cls in (Metric, Column, Board, Submission)}
#: the constants a task declaration may name
DECLARATION_CONSTANTS = {"HIGHER": HIGHER, "LOWER": LOWER, "PERCENT": PERCENT, "DB": DB, "INF": INF}

__all__ = ["Board", "Column", "DB", "DECLARATION_CLASSES", "DECLARATION_CONSTANTS", "HIGHER", "INF", "LOWER",
           "Metric", "PERCENT", "Submission"]
