"""``superb export RUN_DIR...``: collect results.json files into a leaderboard table with SUPERB scores.

Collection. Each argument is a run directory, a ``results.json`` file, or a folder searched
recursively for run directories (a run's own ``fold*/`` sub-runs are not counted twice). Runs are
grouped by upstream: name, checkpoint digest (or weights), and upstream options.

* Several runs of one upstream on one task (a learning-rate search): the run with the best dev
  value of the task's primary metric is used (the test value when a task has no dev split, as
  SUPERB does for ASV); the table notes how many were compared.
* ER needs all five leave-one-session-out folds: either one run with ``task.fold=all`` (its
  ``folds`` hold each fold) or five single-fold runs, which are averaged. Fewer folds count as a
  missing task (the leaderboard does not score ER otherwise).
* Tasks without reference points (the leaderboard does not score them, e.g. VC, OOD-ASR) and task
  ids this version does not know are listed apart with their primary metric, never scored.

Scores (:mod:`superb.benchmark.leaderboard`): SUPERB_s per upstream over the tasks of the chosen
view (``paper`` or ``public``); a missing task means no SUPERB_s, and the missing tasks are
named. SUPERB_r is added when several upstreams are compared, by the leaderboard site's rule: each
metric column of the view (SF F1 and CER, SE PESQ and STOI apart) ranked by the number of compared
upstreams with strictly fewer points, a missing task ranked 0 (so an upstream missing tasks still
gets a SUPERB_r), column ranks averaged within a task, then over the view's tasks; shown with 2
decimals. ``--published`` adds the SUPERB paper's rows for comparison (and ranking).

Mini-corpus runs. A run whose results.json says ``data.source == "mini"`` (the runner writes
``{"source": "mini", "mini_profile": P, "mini_seed": S}`` for the embedded synthetic corpus,
``{"source": "folder"}`` for ``--data``) was trained and tested on the mini corpus, whose numbers
are not comparable with the real test sets. A results.json without ``data.source`` (older runs,
hand-written files) counts as a real-data run. Mini runs are never grouped with real-data runs of
the same upstream (nor with another mini profile or seed): they form their own row, shown as
``<upstream> [mini]`` in the table, markdown and CSV (which also has a ``mini`` column), with
``"mini": true`` and its ``data_source`` in the JSON, and hatched in the plots. Scores:

* with ``--published`` (without ``--allow-mini``): mini rows are shown with their metric values
  but get no SUPERB_s and no SUPERB_r (the cells read ``mini``; a note under the table names the
  rows), and the SUPERB_r of the other rows is computed without them;
* without ``--published``: mini rows get their SUPERB_s (it is the mini benchmark), and SUPERB_r
  ranks them only among mini rows, real-data rows only among real-data rows;
* ``--allow-mini``: every row is scored and ranked together, as if the mini rows were real.

Trust. A results.json is read as data from someone else: its ``superb_results_version`` must be
one this version knows (:data:`KNOWN_RESULTS_VERSIONS`), and every prediction path it lists must
resolve (symlinks followed) inside its run folder -- ``../../etc/passwd``, an absolute path
elsewhere or a symlink pointing out of the run folder is an :class:`ExportError`, so ``superb
submit`` never packs a file from outside the runs it was given.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import leaderboard as lb


class ExportError(ValueError):
    pass


#: ``superb_results_version`` values this version reads. The runner has written the field (value
#: 1) into every results.json since the first release, so a file without it is not a superb
#: results.json and is refused like a file missing any other required key (no legacy default);
#: a version from a newer superb is refused rather than misread.
KNOWN_RESULTS_VERSIONS = frozenset({1})


# ---------------------------------------------------------------------------------------------
# collection
# ---------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    path: Path                 # the results.json
    data: Dict[str, Any]
    task: str
    upstream_key: str
    fold: Optional[int] = None  # a single-fold run of a cross-validated task

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def upstream(self) -> Dict[str, Any]:
        return self.data["upstream"]

    @property
    def data_source(self) -> Optional[Dict[str, Any]]:
        """The run's ``data.source`` fields as written by the runner; None when absent."""
        return data_source(self.data)

    @property
    def mini(self) -> Optional[Dict[str, Any]]:
        """The mini corpus the run used (:func:`mini_source`); None for a real-data run."""
        return mini_source(self.data)


#: appended to the shown label of an upstream whose runs used the embedded mini corpus
MINI_MARK = " [mini]"


def data_source(results: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """``data.source`` of a results.json with its mini fields, or None when it has none (runs
    written before the field existed, hand-written files)."""
    data = results.get("data") if isinstance(results, dict) else None
    if not isinstance(data, dict) or "source" not in data:
        return None
    return {k: data[k] for k in ("source", "mini_profile", "mini_seed") if k in data}


def mini_source(results: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """``{"source": "mini", "mini_profile": P, "mini_seed": S}`` when a results.json says it was
    trained and tested on the embedded mini corpus (``data.source == "mini"``); None otherwise --
    a run without ``data.source`` counts as a real-data run."""
    src = data_source(results)
    if src is None or src.get("source") != "mini":
        return None
    seed = src.get("mini_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        seed = str(seed)
    return {"source": "mini", "mini_profile": str(src.get("mini_profile", "default")), "mini_seed": seed}


def describe_mini(src: Dict[str, Any]) -> str:
    """``profile P, seed S`` of a :func:`mini_source` dict."""
    return f"profile {src['mini_profile']}, seed {src['mini_seed']}"


@dataclass
class TaskEntry:
    task: str
    runs: List[RunResult]                      # the run(s) used (one per fold for separate fold runs)
    candidates: int                            # runs compared for this upstream and task
    split: Optional[str]
    metrics: Dict[str, float]                  # results.json units, the leaderboard split
    dev_metrics: Dict[str, float]
    layer_weights: Optional[List[float]]
    predictions: List[Path]                    # absolute paths, the leaderboard split
    fold_predictions: Dict[int, List[Path]] = field(default_factory=dict)
    fold_metrics: Dict[int, Dict[str, float]] = field(default_factory=dict)
    problem: Optional[str] = None              # why the task cannot be scored (e.g. ER folds missing)
    displayed: Optional[Dict[str, float]] = None
    points: Optional[float] = None

    @property
    def scored(self) -> bool:
        return self.problem is None and self.points is not None


@dataclass
class UpstreamResults:
    key: str
    label: str
    info: Dict[str, Any]
    tasks: Dict[str, TaskEntry] = field(default_factory=dict)
    published: bool = False
    mini_source: Optional[Dict[str, Any]] = None   # the mini corpus of its runs (:func:`mini_source`)

    @property
    def mini(self) -> bool:
        return self.mini_source is not None

    @property
    def display(self) -> str:
        """The label as shown: mini-corpus rows end with ``[mini]`` (or name their corpus)."""
        return self.label + MINI_MARK if self.mini and "[mini" not in self.label else self.label


@dataclass
class Collection:
    upstreams: Dict[str, UpstreamResults]      # label -> results
    notes: List[str] = field(default_factory=list)


def find_results(paths: Sequence) -> List[Path]:
    """Every results.json under ``paths`` (fold sub-runs of a multi-fold run excluded)."""
    found: List[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_file():
            if p.name != "results.json":
                raise ExportError(f"{p}: expected a run directory or a results.json file")
            found.append(p)
            continue
        if not p.is_dir():
            raise ExportError(f"run directory not found: {p}")
        if (p / "results.json").is_file():
            found.append(p / "results.json")
            continue
        hits = sorted(p.rglob("results.json"))
        runs = [h for h in hits if not any((a / "results.json").is_file() for a in h.parent.parents
                                           if a != h.parent and _is_under(a, p))]
        if not runs:
            hint = " (a run that has not finished has config.json but no results.json yet)" \
                if any(p.rglob("config.json")) else ""
            raise ExportError(f"{p}: no results.json found{hint}")
        found.extend(runs)
    unique: List[Path] = []
    for f in found:
        if f.resolve() not in {u.resolve() for u in unique}:
            unique.append(f)
    return unique


def _is_under(a: Path, root: Path) -> bool:
    try:
        a.relative_to(root)
        return True
    except ValueError:
        return False


def _require(data: Dict[str, Any], key: str, kind, path: Path):
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ExportError(f"{path}: missing key {key!r} (not a superb results.json?)")
        node = node[part]
    if not isinstance(node, kind):
        raise ExportError(f"{path}: key {key!r} should be {getattr(kind, '__name__', kind)}, got {node!r}")
    return node


def upstream_key(up: Dict[str, Any]) -> str:
    ident = up.get("checkpoint_sha256") or up.get("weights") or ""
    return json.dumps([up.get("name"), ident, up.get("options") or {}], sort_keys=True)


def _fold_index(name) -> int:
    m = re.search(r"(\d+)$", str(name))
    if not m:
        raise ValueError(f"fold name {name!r} has no number")
    return int(m.group(1))


def load_result(path: Path) -> RunResult:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a JSON object")
    if "superb_results_version" in data:  # checked first: a newer layout may lack the keys below
        _check_version(data["superb_results_version"], path)
    task = _require(data, "task", str, path).strip().lower()
    _require(data, "upstream.name", str, path)
    metrics = _require(data, "metrics", dict, path)
    if "superb_results_version" not in data:
        raise ExportError(f"{path}: missing key 'superb_results_version' (not a superb results.json?)")
    for split, values in metrics.items():
        if not isinstance(values, dict):
            raise ExportError(f"{path}: metrics[{split!r}] should map metric names to numbers, got {values!r}")
    fold = None
    cfg_fold = ((data.get("config") or {}).get("task") or {}).get("fold")
    if not data.get("folds") and cfg_fold not in (None, "all"):
        try:
            fold = _fold_index(cfg_fold)
        except ValueError as exc:
            raise ExportError(f"{path}: config.task.fold={cfg_fold!r}: {exc}") from exc
    return RunResult(path, data, task, upstream_key(data["upstream"]), fold)


def _check_version(version: Any, path: Path) -> None:
    known = ", ".join(map(str, sorted(KNOWN_RESULTS_VERSIONS)))
    if isinstance(version, bool) or not isinstance(version, int) or version not in KNOWN_RESULTS_VERSIONS:
        raise ExportError(f"{path}: unknown superb_results_version {version!r} (this superb reads version {known}; "
                          "a newer superb wrote it?)")


def _abs(run: RunResult, rel: Any) -> Path:
    """The prediction file ``rel`` of ``run`` as an absolute path; it must resolve (symlinks
    followed) inside the run folder, else :class:`ExportError` naming the file and the results.json."""
    if not isinstance(rel, str) or not rel.strip():
        raise ExportError(f"{run.path}: prediction path {rel!r} should be a file name relative to the run folder")
    root = run.run_dir.resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise ExportError(f"{run.path}: prediction file {rel!r} resolves to {target}, outside the run folder {root}; "
                          "refusing to read it")
    return target


def _split_for(task: str, run: RunResult) -> Optional[str]:
    options = lb.TASKS[task].splits if task in lb.TASKS else ("test",)
    metrics = run.data["metrics"]
    return next((s for s in options if s in metrics), None)


def _primary(run: RunResult) -> Tuple[Optional[str], bool]:
    primary = run.data.get("primary_metric")
    hib = run.data.get("higher_is_better") or {}
    if primary is None and run.task in lb.TASKS:
        m = lb.TASKS[run.task].metrics[0]
        primary = next((k for k in m.result_keys if k in (run.data["metrics"].get("test") or {})), m.result_keys[0])
        return primary, m.higher_is_better
    up = hib.get(primary, True) if isinstance(hib, dict) else bool(hib)
    return primary, bool(up)


def _selection_value(entry: TaskEntry) -> Optional[float]:
    """Value used to choose between runs: dev primary metric, else test (higher = better)."""
    run = entry.runs[0]
    primary, up = _primary(run)
    for metrics in (entry.dev_metrics, entry.metrics):
        if metrics and primary in metrics and isinstance(metrics[primary], (int, float)):
            return float(metrics[primary]) if up else -float(metrics[primary])
    return None


def _entry_single(run: RunResult) -> TaskEntry:
    split = _split_for(run.task, run)
    preds = run.data.get("predictions") or {}
    entry = TaskEntry(
        task=run.task, runs=[run], candidates=1, split=split,
        metrics=dict(run.data["metrics"].get(split) or {}) if split else {},
        dev_metrics=dict(run.data["metrics"].get("dev") or {}),
        layer_weights=run.data.get("layer_weights"),
        predictions=[_abs(run, f) for f in (preds.get(split) or [])] if split else [],
    )
    if split is None:
        entry.problem = f"no test split in {run.path} (splits: {', '.join(run.data['metrics']) or 'none'})"
    folds = run.data.get("folds")
    if isinstance(folds, dict) and folds:
        for name, info in folds.items():
            k = _fold_index(name)
            entry.fold_metrics[k] = dict((info.get("metrics") or {}).get(split) or {})
            entry.fold_predictions[k] = [_abs(run, f) for f in ((info.get("predictions") or {}).get(split) or [])]
    return entry


def _entry_from_folds(runs: Dict[int, RunResult]) -> TaskEntry:
    """Combine separate single-fold runs: metrics averaged over folds (SUPERB's ER protocol)."""
    ordered = [runs[k] for k in sorted(runs)]
    parts = [_entry_single(r) for r in ordered]
    split = parts[0].split
    keys = set.intersection(*(set(p.metrics) for p in parts))
    dev_keys = set.intersection(*(set(p.dev_metrics) for p in parts))
    mean = lambda ms, k: sum(float(m[k]) for m in ms) / len(ms)  # noqa: E731
    weights = [p.layer_weights for p in parts if p.layer_weights]
    lw = None
    if weights and len({len(w) for w in weights}) == 1:
        lw = [sum(col) / len(weights) for col in zip(*weights)]
    entry = TaskEntry(
        task=ordered[0].task, runs=ordered, candidates=len(ordered), split=split,
        metrics={k: mean([p.metrics for p in parts], k) for k in keys},
        dev_metrics={k: mean([p.dev_metrics for p in parts], k) for k in dev_keys},
        layer_weights=lw,
        predictions=[f for p in parts for f in p.predictions],
        fold_predictions={k: p.predictions for k, p in zip(sorted(runs), parts)},
        fold_metrics={k: p.metrics for k, p in zip(sorted(runs), parts)},
    )
    return entry


def _task_entry(task: str, runs: List[RunResult], notes: List[str], label: str) -> TaskEntry:
    need_folds = lb.TASKS[task].folds if task in lb.TASKS else 0
    candidates: List[TaskEntry] = []
    single_folds: Dict[int, List[RunResult]] = {}
    for r in runs:
        if need_folds and r.fold is not None:
            single_folds.setdefault(r.fold, []).append(r)
        else:
            candidates.append(_entry_single(r))
    if single_folds:
        best = {}
        for k, rs in single_folds.items():
            values = [_selection_value(_entry_single(r)) for r in rs]
            best[k] = rs[max(range(len(rs)), key=lambda i: float("-inf") if values[i] is None else values[i])]
        candidates.append(_entry_from_folds(best))

    def complete(e: TaskEntry) -> bool:
        return not need_folds or len(e.fold_predictions) >= need_folds or len(e.fold_metrics) >= need_folds

    usable = [e for e in candidates if e.problem is None]
    pool = [e for e in usable if complete(e)] or usable or candidates
    chosen = max(pool, key=lambda e: (_selection_value(e) is not None, _selection_value(e) or 0.0))
    chosen.candidates = len(runs)
    if len(runs) > 1:
        how = "best dev" if chosen.dev_metrics else "best test (no dev split)"
        notes.append(f"{label} {task}: {len(runs)} runs, using {how} ({', '.join(str(r.run_dir) for r in chosen.runs)})")
    if need_folds and not complete(chosen) and chosen.problem is None:
        have = sorted(set(chosen.fold_metrics) | set(chosen.fold_predictions)) or \
            [r.fold for r in chosen.runs if r.fold is not None]
        missing = [k for k in range(1, need_folds + 1) if k not in have]
        chosen.problem = (f"{lb.short_name(task)} needs all {need_folds} folds; have {', '.join(map(str, have)) or 'none'}, "
                          f"missing {', '.join(map(str, missing))}")
    return chosen


def _labels(groups: Dict[str, List[RunResult]]) -> Dict[str, str]:
    def base(up: Dict[str, Any]) -> str:
        name = str(up["name"])
        if ":" in name and not name.startswith("hear:"):
            target, cls = name.rsplit(":", 1)
            name = f"{Path(target).name}:{cls}"
        return name

    def corpus(rs: List[RunResult]):
        m = rs[0].mini
        return None if m is None else (m["mini_profile"], m["mini_seed"])

    bases = {k: base(rs[0].upstream) for k, rs in groups.items()}
    labels = {}
    for k, rs in groups.items():
        label = bases[k]
        if sum(1 for j in groups if bases[j] == label and corpus(groups[j]) == corpus(rs)) > 1:
            up = rs[0].upstream
            if up.get("checkpoint_sha256"):
                label += f" [{up['checkpoint_sha256'][:8]}]"
            elif up.get("weights"):
                label += f" [{up['weights']}]"
            if up.get("options"):
                label += " " + ",".join(f"{a}={b}" for a, b in sorted(up["options"].items()))
        labels[k] = label
    # the same upstream on real data and on the mini corpus (or two mini corpora): name the corpus
    taken = dict(labels)
    for k, rs in groups.items():
        clash = [j for j in groups if taken[j] == taken[k]]
        if corpus(rs) is None or len(clash) == 1:
            continue
        minis = [j for j in clash if corpus(groups[j]) is not None]
        profile, seed = corpus(rs)
        labels[k] = taken[k] + (MINI_MARK if len(minis) == 1 else f" [mini {profile}, seed {seed}]")
    return labels


def collect(paths: Sequence) -> Collection:
    files = find_results(paths)
    runs = [load_result(f) for f in files]
    groups: Dict[str, List[RunResult]] = {}
    for r in runs:
        # mini-corpus runs never share a row (nor a best-dev choice) with real-data runs
        m = r.mini
        key = r.upstream_key if m is None else r.upstream_key + json.dumps(["mini", m["mini_profile"], m["mini_seed"]])
        groups.setdefault(key, []).append(r)
    labels = _labels(groups)
    notes: List[str] = []
    ups: Dict[str, UpstreamResults] = {}
    for key, rs in groups.items():
        label = labels[key]
        res = UpstreamResults(key, label, dict(rs[0].upstream), mini_source=rs[0].mini)
        by_task: Dict[str, List[RunResult]] = {}
        for r in rs:
            by_task.setdefault(r.task, []).append(r)
        for task, trs in by_task.items():
            entry = _task_entry(task, trs, notes, res.display)
            if task in lb.TASKS and entry.problem is None:
                where = f"{entry.runs[0].path} metrics[{entry.split!r}]" if len(entry.runs) == 1 else \
                    f"{task} fold runs ({', '.join(str(r.path) for r in entry.runs)})"
                try:
                    entry.displayed = lb.displayed_values(task, entry.metrics, where)
                except lb.LeaderboardError as exc:
                    raise ExportError(str(exc)) from exc
                entry.points = lb.task_points(task, entry.displayed)
            res.tasks[task] = entry
        ups[label] = res
    return Collection(ups, notes)


def add_published(col: Collection, names: Optional[Sequence[str]] = None) -> None:
    """Add the SUPERB paper's rows (superb-reference.md section 7) as comparison upstreams."""
    for name in names or list(lb.PUBLISHED_ROWS):
        label = f"{name} (paper)"
        res = UpstreamResults(key=f"published:{name}", label=label, info={"name": name, "source": lb.SOURCE_ROWS},
                              published=True)
        for task, displayed in lb.published_displayed(name).items():
            res.tasks[task] = TaskEntry(task, [], 0, "test", {}, {}, None, [], displayed=displayed,
                                        points=lb.task_points(task, displayed))
        col.upstreams[label] = res


# ---------------------------------------------------------------------------------------------
# the board
# ---------------------------------------------------------------------------------------------
@dataclass
class Row:
    label: str
    upstream: UpstreamResults
    score: lb.Score
    superb_r: Optional[float] = None
    rank: Optional[lb.Rank] = None    # column and task ranks behind superb_r
    unscored: Optional[str] = None    # why the row has no SUPERB_s/SUPERB_r despite its results ("mini")


@dataclass
class Board:
    view: str
    tasks: Tuple[str, ...]          # view tasks
    extra: List[str]                # scored-elsewhere tasks found (leaderboard tasks outside the view)
    unscored: List[str]             # tasks without reference points / unknown ids
    rows: List[Row]
    notes: List[str]
    show_rank: bool


def build_board(col: Collection, view: str = "paper", allow_mini: bool = False) -> Board:
    """The board of ``col``. Mini-corpus rows (module docstring): with published rows on the board
    and without ``allow_mini`` they get no SUPERB_s/SUPERB_r and the others are ranked without
    them; without published rows they are ranked only among themselves; ``allow_mini`` scores
    and ranks every row together."""
    if view not in lb.VIEWS:
        raise ExportError(f"unknown view {view!r}; choose {', '.join(lb.VIEWS)}")
    tasks = lb.VIEWS[view]
    found = {t for u in col.upstreams.values() for t in u.tasks}
    extra = lb.ordered_tasks(t for t in found if t in lb.TASKS and t not in tasks)
    unscored = sorted(t for t in found if t not in lb.TASKS)
    rows = []
    displayed_by_label = {}
    for label, up in col.upstreams.items():
        displayed = {t: e.displayed for t, e in up.tasks.items() if e.scored}
        displayed_by_label[label] = displayed
        rows.append(Row(label, up, lb.superb_s(displayed, view)))
    published = any(r.upstream.published for r in rows)
    minis = [r for r in rows if r.upstream.mini]
    real = [r for r in rows if not r.upstream.mini]
    if allow_mini or not minis:
        pools = [rows]
    elif published:  # not scored against the published rows: shown, but out of SUPERB_s and the ranking
        for r in minis:
            r.unscored = "mini"
            r.score = replace(r.score, superb_s=None)
        pools = [real]
    else:
        pools = [real, minis]
    for pool in pools:
        if len(pool) > 1:
            # every metric column ranked apart, over all upstreams of the pool (the site's rule)
            ranks = lb.superb_r_detail({r.label: displayed_by_label[r.label] for r in pool}, view)
            for r in pool:
                r.rank = ranks[r.label]
                r.superb_r = r.rank.superb_r
    show_rank = any(r.rank is not None for r in rows)
    rows.sort(key=lambda r: (r.score.superb_s is None, -(r.score.superb_s or 0.0), r.label.lower()))
    notes = []
    if minis:
        names = ", ".join(f"{r.upstream.display} ({describe_mini(r.upstream.mini_source)})"
                          for r in rows if r.upstream.mini)
        line = f"[mini] = trained and tested on the embedded mini corpus, not the real test sets: {names}"
        if minis[0].unscored:
            line += ("; no SUPERB_s/SUPERB_r next to the published rows, which are scored on the real test sets "
                     "(cells `mini`; the other rows are ranked without them; --allow-mini scores them)")
        elif allow_mini and real:
            line += "; scored and ranked with the real-data rows (--allow-mini)"
        elif real:
            line += "; SUPERB_r ranks them only among mini rows, apart from the real-data rows (--allow-mini ranks all together)"
        notes.append(line)
    notes += col.notes
    known = set(_task_ids())
    for t in unscored:
        who = ", ".join(r.upstream.display for r in rows if t in r.upstream.tasks)
        kind = "has no leaderboard reference points" if t in known else "is not a task this version knows"
        notes.append(f"task {t!r} ({who}) {kind}: shown apart, not scored")
    return Board(view, tasks, extra, unscored, rows, notes, show_rank)


def _task_ids() -> List[str]:
    try:
        from superb.downstream.tasks import TASKS
        return list(TASKS)
    except Exception:  # noqa: BLE001 - export works on results alone
        return []


def _columns(board: Board, points: bool) -> List[Tuple[str, str, Optional[str]]]:
    """(header, task, metric name or None for points)."""
    cols = []
    for t in list(board.tasks) + board.extra:
        star = "" if t in board.tasks else "*"
        if points:
            cols.append((f"{lb.short_name(t)}{star} pts", t, None))
        else:
            for m in lb.TASKS[t].metrics:
                arrow = "↑" if m.higher_is_better else "↓"
                cols.append((f"{lb.short_name(t)}{star} {m.name}{arrow}", t, m.name))
    return cols


def _cell(row: Row, task: str, metric: Optional[str]) -> str:
    e = row.upstream.tasks.get(task)
    if e is None or not e.scored:
        return "-"
    if metric is None:
        return str(int(lb.round_half_up(e.points)))
    return f"{e.displayed[metric]:.2f}"


def _missing_lines(board: Board) -> List[str]:
    lines = []
    for r in board.rows:
        if r.score.missing:
            why = []
            for t in r.score.missing:
                e = r.upstream.tasks.get(t)
                why.append(f"{lb.short_name(t)} ({e.problem})" if e is not None and e.problem else lb.short_name(t))
            lines.append(f"{r.upstream.display}: missing {', '.join(why)} -> no SUPERB_s")
    return lines


def _unscored_lines(board: Board) -> List[str]:
    lines = []
    for r in board.rows:
        for t in board.unscored:
            e = r.upstream.tasks.get(t)
            if e is not None:
                primary, _ = _primary(e.runs[0])
                val = e.metrics.get(primary)
                shown = f"{primary} {val:.2f}" if isinstance(val, (int, float)) else "no test metrics"
                lines.append(f"{r.upstream.display} {t}: {shown}")
    return lines


def render_table(board: Board, points: bool = False, markdown: bool = False) -> str:
    cols = _columns(board, points)
    header = ["upstream"] + [c[0] for c in cols] + ["SUPERB_s"] + (["SUPERB_r"] if board.show_rank else [])
    body = []
    for r in board.rows:
        cells = [r.upstream.display] + [_cell(r, t, m) for _, t, m in cols]
        cells.append(r.unscored or ("-" if r.score.display is None else str(r.score.display)))
        if board.show_rank:
            cells.append(r.unscored or ("-" if r.superb_r is None else f"{lb.rank_display(r.superb_r):.2f}"))
        body.append(cells)
    out = []
    title = (f"SUPERB {board.view} view: {', '.join(lb.short_name(t) for t in board.tasks)} "
             f"(SUPERB_s: 0 = FBANK, 1000 = SOTA reference points)")
    if markdown:
        out.append(f"**{title}**\n")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        out.extend("| " + " | ".join(c) + " |" for c in body)
    else:
        widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]
        out.append(title)
        out.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
        for row in body:
            out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    extra = []
    if board.extra:
        extra.append(f"* not part of the {board.view} view (not in SUPERB_s): {', '.join(lb.short_name(t) for t in board.extra)}")
    miss = _missing_lines(board)
    if miss:
        extra.append("Missing tasks:")
        extra.extend(f"  {m}" for m in miss)
    uns = _unscored_lines(board)
    if uns:
        extra.append("Not scored:")
        extra.extend(f"  {u}" for u in uns)
    if board.notes:
        extra.append("Notes:")
        extra.extend(f"  {n}" for n in board.notes)
    if extra:
        out.append("")
        out.extend(("- " + e if markdown and not e.startswith("  ") else e) for e in extra)
    return "\n".join(out) + "\n"


def board_json(board: Board) -> Dict[str, Any]:
    ups = []
    for r in board.rows:
        tasks = {}
        for t, e in r.upstream.tasks.items():
            item: Dict[str, Any] = {"values": e.displayed, "points": e.points, "scored": e.scored,
                                    "in_view": t in board.tasks}
            if e.runs:
                item["data_source"] = e.runs[0].data_source
            if e.problem:
                item["problem"] = e.problem
            if e.runs:
                item.update({"split": e.split, "metrics": e.metrics, "runs": [str(x.run_dir) for x in e.runs],
                             "candidates": e.candidates, "layer_weights": e.layer_weights})
            if e.fold_metrics:
                item["folds"] = {str(k): v for k, v in sorted(e.fold_metrics.items())}
            tasks[t] = item
        ups.append({
            "label": r.label, "display_label": r.upstream.display, "upstream": r.upstream.info,
            "published": r.upstream.published, "mini": r.upstream.mini, "data_source": r.upstream.mini_source,
            "unscored": r.unscored,
            "superb_s": r.score.superb_s, "superb_s_display": r.score.display, "superb_r": r.superb_r,
            "missing": r.score.missing, "task_points": r.score.points, "tasks": tasks,
            "superb_r_display": None if r.rank is None else r.rank.display,
            "task_ranks": None if r.rank is None else r.rank.tasks,
            "column_ranks": None if r.rank is None else {t: {m: v for (tt, m), v in r.rank.columns.items() if tt == t}
                                                         for t in board.tasks},
        })
    return {
        "view": board.view, "view_tasks": list(board.tasks),
        "reference_points": {t: {m.name: {"fbank": m.fbank, "sota": m.sota, "unit": m.unit, "scale": m.scale}
                                 for m in lb.TASKS[t].metrics} for t in lb.TASKS},
        "reference_source": lb.SOURCE_SCORE, "rank_source": lb.SOURCE_RANK, "upstreams": ups,
        "unscored_tasks": board.unscored, "notes": board.notes,
    }


def render_csv(board: Board) -> str:
    cols = _columns(board, points=False)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["upstream"] + [f"{t}.{m}" for _, t, m in cols] + [f"{t}.points" for t in list(board.tasks) + board.extra]
               + ["superb_s", "superb_s_display", "superb_r", "missing", "mini"])
    for r in board.rows:
        vals = []
        for _, t, m in cols:
            e = r.upstream.tasks.get(t)
            vals.append(f"{e.displayed[m]:.6g}" if e is not None and e.scored else "")
        pts = []
        for t in list(board.tasks) + board.extra:
            e = r.upstream.tasks.get(t)
            pts.append(f"{e.points:.4f}" if e is not None and e.scored else "")
        w.writerow([r.upstream.display] + vals + pts + [
            "" if r.score.superb_s is None else f"{r.score.superb_s:.4f}",
            "" if r.score.display is None else r.score.display,
            "" if r.superb_r is None else f"{r.superb_r:.4f}",
            " ".join(r.score.missing), "true" if r.upstream.mini else "false"])
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def cmd_export(args) -> int:
    if not args.run_dirs and not args.published:
        raise ExportError("give at least one RUN_DIR (or --published to show the paper's rows)")
    col = collect(args.run_dirs) if args.run_dirs else Collection({})
    if args.published:
        add_published(col)
    board = build_board(col, args.view, allow_mini=args.allow_mini)
    if args.format == "json":
        text = json.dumps(board_json(board), indent=2) + "\n"
    elif args.format == "csv":
        text = render_csv(board)
    else:
        text = render_table(board, points=args.points, markdown=args.format == "markdown")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    if args.plot:
        from .plots import write_plots

        for p in write_plots(col, board, args.plot):
            print(f"plot: {p}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="leaderboard table and SUPERB scores from run directories",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run directories, results.json files or folders of runs")
    p.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table")
    p.add_argument("--view", choices=list(lb.VIEWS), default="paper",
                   help="paper: the SUPERB paper's 10 tasks; public: the public set's 10 tasks")
    p.add_argument("--points", action="store_true", help="table/markdown: show task points instead of metric values")
    p.add_argument("--published", action="store_true", help="add the SUPERB paper's rows for comparison")
    p.add_argument("--allow-mini", action="store_true",
                   help="score and rank mini-corpus runs together with real-data and published rows")
    p.add_argument("--out", help="write to this file instead of standard output")
    p.add_argument("--plot", metavar="DIR", help="also write PNG plots (scores, layer weights) into DIR")
    p.set_defaults(func=cmd_export)


__all__ = ["Board", "Collection", "ExportError", "RunResult", "TaskEntry", "UpstreamResults", "add_published",
           "board_json", "build_board", "collect", "data_source", "describe_mini", "find_results", "load_result",
           "mini_source", "render_csv", "render_table"]
