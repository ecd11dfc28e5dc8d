"""The SUPERB leaderboard as data: reference points, views, published rows, SUPERB_s and SUPERB_r.

Sources (facts only, no code copied):

* Formula, reference points and views: the superbbenchmark.org site (repository
  ``superbbenchmark/website-react``, ``frontend/src/overall_metrics.js`` and ``Data.js``), as
  summarised in ``shared/superb-reference.md`` §6.
* Published rows: the SUPERB paper (arXiv 2105.01051, weighted-sum results) as stored by the
  leaderboard, ``shared/superb-reference.md`` §7.

SUPERB_s (the leaderboard's "score"): for each metric ``points = 1000 * (value - FBANK) / (SOTA -
FBANK)`` on the raw displayed values (the signed denominator handles lower-is-better metrics); a
task's points are the mean of its metrics' points (SF: slot-type F1 and slot-value CER; SE: PESQ
and STOI); SUPERB_s is the mean over the tasks of a view. A missing task means no SUPERB_s. The
leaderboard displays ``round(score)``. ASR with a language model and the per-fold ER results are
not part of the score.

SUPERB_r (the leaderboard's "Rank"), as the site computes it (source: repository
``superbbenchmark/website-react``, ``frontend/src/overall_metrics.js``, functions ``ranking`` and
``task_aggregate``, applied by ``overall_metric_adder`` to the interpolated points of the view's
metric columns and called from ``frontend/src/Leaderboard.js``; the formula is also stated in
``frontend/src/policy.js``, section "superb_r"; read at the repository's newest stored commit
cacb90e, where ``overall_metrics.js`` last changed in 988d245 "add fbank to leaderboard"). Rule,
reimplemented from that reading (no code copied):

1. Each metric *column* of the view is ranked on its own -- SF F1 and SF CER separately, SE PESQ
   and STOI separately -- over every upstream shown on the board (FBANK included).
2. The rank is computed on the column's points (``1000 * (value - FBANK) / (SOTA - FBANK)``; the
   site adds 1e-12 to the denominator, which changes no order), so
   higher is always better and a lower-is-better metric (PER, WER, CER, EER, DER) ranks by lower
   value. An upstream's rank in a column is the number of upstreams with *strictly fewer* points
   there (the site: index of the value in the ascending sorted list of present values), so the
   worst gets 0, the best gets n - 1, and tied upstreams share the lower rank (neither beats the
   other). No normalisation by the number of submissions.
3. An upstream without a value in a column gets rank 0 there ("it wins no one in that task", the
   site's comment) and is not counted in the others' ranks for that column; it is still scored.
4. A task's rank is the mean of its columns' ranks; SUPERB_r is the sum of the task ranks divided
   by the number of tasks of the view (10 in both views). The site displays it rounded to 2
   decimals, halves up (``Math.round(value * 100) / 100``): :func:`rank_display`.

So unlike SUPERB_s, a missing task never removes the rank score; it only contributes 0.

Where the facts live. Each task module declares its columns, reference points and board position
(``leaderboard = Board(...)`` of :mod:`superb.downstream.tasks.declaration`); :data:`TASKS` is
built from those declarations. This module holds what belongs to the board as a whole: the views,
the published rows and scores, and the SUPERB_s / SUPERB_r formulas.

Units. ``results.json`` metrics are in the units the task module reports (each task declares
them): percent for accuracy, error rates and F1, MTWV x 100 for QbE, a 0..1 fraction for STOI. The
leaderboard displays STOI x 100; a column's ``scale`` converts explicitly (results.json value x
scale = displayed value), and ``valid`` names the range a displayed value must lie in, so a unit
mistake fails loudly instead of producing a wrong score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from superb.downstream.tasks import describe_tasks
from superb.downstream.tasks.declaration import Column as LeaderboardMetric

SOURCE_SCORE = ("superbbenchmark.org website code (superbbenchmark/website-react: frontend/src/overall_metrics.js, "
                "frontend/src/Data.js), via shared/superb-reference.md section 6")
SOURCE_RANK = ("superbbenchmark.org website code (superbbenchmark/website-react: frontend/src/overall_metrics.js, "
               "functions ranking and task_aggregate)")
SOURCE_ROWS = "SUPERB paper arXiv 2105.01051 weighted-sum rows as stored by the leaderboard (superb-reference.md section 7)"


@dataclass(frozen=True)
class LeaderboardTask:
    """A task's place on the board, derived from its declaration (``Task.leaderboard``)."""

    id: str
    title: str
    metrics: Tuple[LeaderboardMetric, ...]
    #: the split of results.json whose metrics the leaderboard reports, in order of preference
    splits: Tuple[str, ...] = ("test",)
    #: cross-validation folds the leaderboard requires (ER: all 5)
    folds: int = 0
    position: int = 0

    @property
    def short(self) -> str:
        return short_name(self.id)


def short_name(task: str) -> str:
    """How the leaderboard writes a task id (QbE; every other id upper-cased)."""
    return "QbE" if task == "qbe" else task.upper()


def _board_tasks() -> Dict[str, LeaderboardTask]:
    """Every task that declares a leaderboard place, in the board's column order. The columns and
    their reference points are the task modules' own (``leaderboard = Board(...)``, read from source
    without importing torch); the points are those of superb-reference.md section 6."""
    rows = []
    for info in describe_tasks():
        if info.leaderboard is not None:
            board = info.leaderboard
            rows.append(LeaderboardTask(info.name, board.title, tuple(board.columns), tuple(board.splits),
                                        len(info.folds), board.position))
    rows.sort(key=lambda t: (t.position, t.id))
    return {t.id: t for t in rows}


#: task id -> leaderboard definition, in display order
TASKS: Dict[str, LeaderboardTask] = _board_tasks()

#: the leaderboard's two views (superb-reference.md section 6)
VIEWS: Dict[str, Tuple[str, ...]] = {
    "paper": ("pr", "sid", "ks", "qbe", "ic", "asr", "asv", "er", "sd", "sf"),
    "public": ("pr", "sid", "qbe", "asr", "asv", "er", "sd", "st", "se", "ss"),
}

#: display order of task columns (the tasks' declared ``Board.position``)
TASK_ORDER: Tuple[str, ...] = tuple(TASKS)

#: Published rows exactly as superb-reference.md section 7 lists them (QbE's MTWV there is a
#: fraction), keyed "<task>.<leaderboard metric name>"; PUBLISHED_ROWS below holds them in display
#: units (MTWV x 100).
#: Source: superb-reference.md section 7 (SUPERB paper, weighted sum; FBANK as rerun without CMVN).
_ROW_COLUMNS = ("pr.PER", "ks.Acc", "ic.Acc", "sid.Acc", "er.Acc", "asr.WER", "asv.EER", "sd.DER", "qbe.MTWV",
                "sf.F1", "sf.CER")
_ROWS = {
    "FBANK": (82.01, 41.38, 9.65, 20.06, 48.24, 23.18, 9.56, 10.05, 0.0058, 69.64, 52.94),
    "APC": (41.98, 91.01, 74.69, 60.42, 59.33, 21.28, 8.56, 10.53, 0.0310, 70.46, 50.89),
    "VQ-APC": (41.08, 91.11, 74.48, 60.15, 59.66, 21.20, 8.72, 10.45, 0.0251, 68.53, 52.91),
    "Mockingjay": (70.19, 83.67, 34.33, 32.29, 50.28, 22.82, 11.66, 10.54, 0.00066, 61.59, 58.89),
    "TERA": (49.17, 89.48, 58.42, 57.57, 56.27, 18.17, 15.89, 9.96, 0.0013, 67.50, 54.17),
    "modified CPC": (42.54, 91.88, 64.09, 39.63, 60.96, 20.18, 12.86, 10.38, 0.0326, 71.19, 49.91),
    "wav2vec": (31.58, 95.59, 84.92, 56.56, 59.79, 15.86, 7.99, 9.90, 0.0485, 76.37, 43.71),
    "vq-wav2vec": (33.48, 93.38, 85.68, 38.80, 58.24, 17.71, 10.38, 9.93, 0.0410, 77.68, 41.54),
    "wav2vec 2.0 Base": (5.74, 96.23, 92.35, 75.18, 63.43, 6.43, 6.02, 6.08, 0.0233, 88.30, 24.77),
    "wav2vec 2.0 Large": (4.75, 96.66, 95.28, 86.14, 65.64, 3.75, 5.65, 5.62, 0.0489, 87.11, 27.31),
    "HuBERT Base": (5.41, 96.30, 98.34, 81.42, 64.92, 6.42, 5.11, 5.88, 0.0736, 88.53, 25.20),
    "HuBERT Large": (3.53, 95.29, 98.76, 90.33, 67.62, 3.62, 5.98, 5.75, 0.0353, 89.81, 21.76),
}
_ROW_TO_DISPLAY = {"qbe.MTWV": 100.0}
#: upstream -> task -> leaderboard metric name -> displayed value (percent, MTWV x 100)
PUBLISHED_ROWS: Dict[str, Dict[str, Dict[str, float]]] = {}
for _name, _values in _ROWS.items():
    _row: Dict[str, Dict[str, float]] = {}
    for _col, _v in zip(_ROW_COLUMNS, _values):
        _task, _metric = _col.split(".")
        _row.setdefault(_task, {})[_metric] = _v * _ROW_TO_DISPLAY.get(_col, 1.0)
    PUBLISHED_ROWS[_name] = _row

#: SUPERB_s of the published rows, paper view (superb-reference.md section 7). APC, VQ-APC, modified
#: CPC and vq-wav2vec have no stated score there; the test computes them but checks only these.
PUBLISHED_SCORES: Dict[str, int] = {
    "FBANK": 0, "Mockingjay": 54, "TERA": 150, "wav2vec": 529, "wav2vec 2.0 Base": 818,
    "wav2vec 2.0 Large": 914, "HuBERT Base": 941, "HuBERT Large": 919,
}


class LeaderboardError(ValueError):
    pass


def metric(task: str, name: str) -> LeaderboardMetric:
    for m in TASKS[task].metrics:
        if m.name == name:
            return m
    raise KeyError(f"task {task!r} has no leaderboard metric {name!r}")


def displayed_values(task: str, metrics: Mapping[str, float], where: str = "results") -> Dict[str, float]:
    """Leaderboard-unit values of ``task`` from a results.json ``metrics[split]`` mapping.

    Raises :class:`LeaderboardError` naming ``where``, the task and the keys when a metric is
    missing or a value lies outside its plausible displayed range (a unit mistake)."""
    out: Dict[str, float] = {}
    for m in TASKS[task].metrics:
        key = next((k for k in m.result_keys if k in metrics), None)
        if key is None:
            raise LeaderboardError(
                f"{where}: task {task} has no {m.name} metric (looked for {', '.join(m.result_keys)}; "
                f"found {', '.join(sorted(metrics)) or 'none'})"
            )
        raw = metrics[key]
        if not isinstance(raw, (int, float)) or isinstance(raw, bool) or math.isnan(float(raw)):
            raise LeaderboardError(f"{where}: metric {key!r} of task {task} is not a number: {raw!r}")
        value = float(raw) * m.scale
        lo, hi = m.valid
        if not lo <= value <= hi:
            raise LeaderboardError(
                f"{where}: {task} {key}={raw!r} gives {value:g} {m.unit} on the leaderboard, outside [{lo:g}, {hi:g}]; "
                f"check the metric's units (results.json value x {m.scale:g} = displayed value)"
            )
        out[m.name] = value
    return out


def task_points(task: str, displayed: Mapping[str, float]) -> float:
    """Mean points of a task's metrics (displayed units)."""
    metrics = TASKS[task].metrics
    return sum(m.points(displayed[m.name]) for m in metrics) / len(metrics)


@dataclass
class Score:
    view: str
    points: Dict[str, float]             # task -> points (tasks of the view that are present)
    missing: List[str]                   # tasks of the view without results
    superb_s: Optional[float] = None     # None when a task is missing

    @property
    def display(self) -> Optional[int]:
        return None if self.superb_s is None else int(round_half_up(self.superb_s))


def round_half_up(x: float) -> float:
    return math.floor(x + 0.5)


def superb_s(displayed_by_task: Mapping[str, Mapping[str, float]], view: str = "paper") -> Score:
    """SUPERB_s of one upstream from ``{task: {metric name: displayed value}}``."""
    if view not in VIEWS:
        raise LeaderboardError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    tasks = VIEWS[view]
    points = {t: task_points(t, displayed_by_task[t]) for t in tasks if t in displayed_by_task}
    missing = [t for t in tasks if t not in displayed_by_task]
    score = Score(view, points, missing)
    if not missing:
        score.superb_s = sum(points.values()) / len(tasks)
    return score


@dataclass
class Rank:
    """One upstream's SUPERB_r and the ranks behind it."""

    columns: Dict[Tuple[str, str], int]  # (task, metric name) -> upstreams beaten (0 when the value is missing)
    tasks: Dict[str, float]              # task -> mean of its columns' ranks
    superb_r: float                      # mean of the task ranks over the view's tasks

    @property
    def display(self) -> float:
        return rank_display(self.superb_r)


def rank_display(value: float) -> float:
    """The site's display of a rank: ``Math.round(value * 100) / 100`` (2 decimals, halves up)."""
    return round_half_up(value * 100.0) / 100.0


def _column_value(displayed_by_task: Mapping[str, Mapping[str, float]], task: str, name: str) -> Optional[float]:
    values = displayed_by_task.get(task)
    if not values or name not in values:
        return None
    v = values[name]
    if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(float(v)):
        return None  # the site's is_number_and_not_nan: anything else is a missing value
    return float(v)


def superb_r_detail(displayed_by_upstream: Mapping[str, Mapping[str, Mapping[str, float]]],
                    view: str = "paper") -> Dict[str, Rank]:
    """SUPERB_r of every upstream on the board, with its column and task ranks.

    ``displayed_by_upstream``: ``{upstream: {task: {leaderboard metric name: displayed value}}}``,
    the same per-upstream mapping :func:`superb_s` takes; every upstream given is on the board.
    Rule and source: the module docstring (superbbenchmark/website-react,
    frontend/src/overall_metrics.js ``ranking`` + ``task_aggregate``)."""
    if view not in VIEWS:
        raise LeaderboardError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    tasks = VIEWS[view]
    columns = [(t, m) for t in tasks for m in TASKS[t].metrics]
    col_ranks: Dict[str, Dict[Tuple[str, str], int]] = {up: {} for up in displayed_by_upstream}
    for task, m in columns:
        points = {}
        for up, displayed in displayed_by_upstream.items():
            v = _column_value(displayed, task, m.name)
            if v is not None:
                points[up] = m.points(v)
        for up in displayed_by_upstream:
            if up not in points:
                col_ranks[up][(task, m.name)] = 0  # missing: wins no one, still ranked
            else:
                col_ranks[up][(task, m.name)] = sum(1 for p in points.values() if p < points[up])
    out: Dict[str, Rank] = {}
    for up, ranks in col_ranks.items():
        task_ranks = {t: sum(ranks[(t, m.name)] for m in TASKS[t].metrics) / len(TASKS[t].metrics) for t in tasks}
        out[up] = Rank(ranks, task_ranks, sum(task_ranks.values()) / len(tasks))
    return out


def superb_r(displayed_by_upstream: Mapping[str, Mapping[str, Mapping[str, float]]],
             view: str = "paper") -> Dict[str, float]:
    """SUPERB_r of every upstream from ``{upstream: {task: {metric name: displayed value}}}``.

    Each metric column ranked separately (upstreams with strictly fewer points), a missing value
    ranked 0, column ranks averaged within a task, task ranks averaged over the view's tasks; an
    upstream missing tasks still gets a rank score. See :func:`superb_r_detail` and the module
    docstring for the source (superbbenchmark/website-react, frontend/src/overall_metrics.js)."""
    return {up: r.superb_r for up, r in superb_r_detail(displayed_by_upstream, view).items()}


def published_displayed(name: str) -> Dict[str, Dict[str, float]]:
    """A published row in displayed units (QbE MTWV x 100)."""
    return {task: dict(vals) for task, vals in PUBLISHED_ROWS[name].items()}


def ordered_tasks(tasks: Iterable[str]) -> List[str]:
    tasks = set(tasks)
    known = [t for t in TASK_ORDER if t in tasks]
    return known + sorted(tasks - set(known))


__all__ = [
    "LeaderboardError", "LeaderboardMetric", "LeaderboardTask", "PUBLISHED_ROWS", "PUBLISHED_SCORES", "Rank",
    "Score", "SOURCE_RANK", "SOURCE_ROWS", "SOURCE_SCORE", "TASKS", "TASK_ORDER", "VIEWS", "displayed_values", "metric",
    "ordered_tasks",
    "published_displayed", "rank_display", "short_name", "superb_r", "superb_r_detail", "superb_s", "task_points",
]
