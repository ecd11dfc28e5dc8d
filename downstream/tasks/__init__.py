"""Downstream tasks, one module each. ``get_task(name)`` returns the task class.

``describe_tasks()`` / ``task_info(name)`` return what ``superb list tasks`` shows (name,
category, dataset, metrics, ``--data``) without importing the task modules -- and so without
torch: the class attributes are read from the module's source (simple literals, f-strings of
module-level string constants). A task whose attributes are anything else is imported instead, so
the answer is always the class's own (``tests/test_cli_fast.py`` compares both for every task).
Importing this package stays cheap: ``Example`` and ``Task`` load :mod:`.base` (torch) on first
use.
"""
from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Type

#: task id -> "module:Class"
TASKS: Dict[str, str] = {
    "ks": "superb.downstream.tasks.ks:KeywordSpotting",
    "asr": "superb.downstream.tasks.asr:SpeechRecognition",
    "sid": "superb.downstream.tasks.sid:SpeakerIdentification",
    "asv": "superb.downstream.tasks.asv:SpeakerVerification",
    "er": "superb.downstream.tasks.er:EmotionRecognition",
    "ic": "superb.downstream.tasks.ic:IntentClassification",
    "pr": "superb.downstream.tasks.pr:PhonemeRecognition",
    "qbe": "superb.downstream.tasks.qbe:QueryByExample",
    "sd": "superb.downstream.tasks.sd:SpeakerDiarization",
    "sf": "superb.downstream.tasks.sf:SlotFilling",
    "se": "superb.downstream.tasks.se:SpeechEnhancement",
    "ss": "superb.downstream.tasks.ss:SourceSeparation",
    "vc": "superb.downstream.tasks.vc:VoiceConversion",
    "st": "superb.downstream.tasks.st:SpeechTranslation",
    "ood_asr": "superb.downstream.tasks.ood_asr:OutOfDomainASR",
}


class UnknownTaskError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def _key(name: str) -> str:
    key = name.strip().lower()
    if key not in TASKS:
        close = difflib.get_close_matches(key, list(TASKS), n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownTaskError(f"unknown task {name!r}.{hint} Known tasks: {', '.join(sorted(TASKS))}")
    return key


def get_task(name: str) -> Type["Task"]:
    module, cls = TASKS[_key(name)].split(":")
    return getattr(importlib.import_module(module), cls)


def list_tasks() -> List[Type["Task"]]:
    return [get_task(k) for k in sorted(TASKS)]


# -- metrics that are not scores of the model ------------------------------------------------------
#: name endings of the reference values and counters some tasks report next to their scores: the
#: score of a constant prediction (``wer_constant``, ``bleu_constant``), of the unprocessed input
#: (``pesq_input``, ``si_sdr_input``), of the unconverted source speech (``mcd_source``), and the
#: number of utterances a metric failed on (``pesq_failed``). They help read a result; they are not
#: the task's metrics (no leaderboard column is one), so ``superb list`` leaves them out.
INTERNAL_METRIC_SUFFIXES: Tuple[str, ...] = ("_constant", "_input", "_source", "_failed")


def is_internal_metric(name: str) -> bool:
    return name.endswith(INTERNAL_METRIC_SUFFIXES)


# -- task descriptions without importing the task modules -----------------------------------------
@dataclass(frozen=True)
class TaskInfo:
    """The class attributes of a task that describe it (see :class:`superb.downstream.tasks.base.Task`)."""

    name: str
    title: str
    category: str
    dataset: str
    #: metric name -> higher is better (every metric the task reports)
    metrics: Dict[str, bool]
    primary_metric: str
    data_help: str

    def shown_metrics(self) -> List[Tuple[str, bool]]:
        """``(metric, higher is better)``: the primary metric first, then the task's other scores in
        their declared order; internal reference values and counters (:func:`is_internal_metric`)
        left out."""
        rest = [(m, up) for m, up in self.metrics.items() if m != self.primary_metric and not is_internal_metric(m)]
        return [(self.primary_metric, self.metrics[self.primary_metric]), *rest]


_INFO_FIELDS: Tuple[str, ...] = tuple(TaskInfo.__dataclass_fields__)


class _NotStatic(Exception):
    """An expression the source reader does not evaluate (the module is imported instead)."""


def _literal(node: ast.AST, names: Dict[str, Any]) -> Any:
    """Value of a literal, a dict/tuple/list of literals, a module-level constant, or an f-string of
    those (no conversions or format specs)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        raise _NotStatic(node.id)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue) and value.conversion == -1 and value.format_spec is None:
                inner = _literal(value.value, names)
                if not isinstance(inner, (str, int)):
                    raise _NotStatic("f-string of a non-string")
                parts.append(str(inner))
            else:
                raise _NotStatic("f-string with a conversion or format spec")
        return "".join(parts)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k, names): _literal(v, names) for k, v in zip(node.keys, node.values)}
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(e, names) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    raise _NotStatic(type(node).__name__)


def _bound_names(stmt: ast.stmt) -> List[str]:
    """Every name a statement may bind in the scope it runs in (function and class bodies nested in
    it bind their own scope's names, not these)."""
    out: List[str] = []
    todo: List[ast.AST] = [stmt]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(node.name)
            todo += [*node.decorator_list, *getattr(node, "bases", [])]
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.append(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out += [(a.asname or a.name).split(".")[0] for a in node.names]
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            out += node.names
        todo += list(ast.iter_child_nodes(node))
    return out


def _static_info(module: str, cls: str) -> Optional[TaskInfo]:
    """``cls``'s :class:`TaskInfo` read from ``module``'s source, or None when the source does not
    tell (attribute inherited or computed, decorators, unreadable source)."""
    try:
        spec = importlib.util.find_spec(module)
        origin = spec.origin if spec is not None else None
        if not origin or not origin.endswith(".py"):
            return None
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"), filename=origin)
    except (ImportError, OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    names: Dict[str, Any] = {}  # module-level constants known at this point of the module
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == cls:
            if stmt.decorator_list or stmt.keywords:
                return None
            values: Dict[str, Any] = {}
            local = dict(names)  # the class body sees its own earlier names first
            for item in stmt.body:
                if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name):
                    target, value = item.targets[0].id, item.value
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None:
                    target, value = item.target.id, item.value
                else:
                    bound = _bound_names(item)
                    if any(n in _INFO_FIELDS for n in bound):
                        return None
                    for n in bound:
                        local.pop(n, None)
                    continue
                try:
                    local[target] = _literal(value, local)
                except _NotStatic:
                    if target in _INFO_FIELDS:
                        return None
                    local.pop(target, None)
                    continue
                if target in _INFO_FIELDS:
                    values[target] = local[target]
            if set(values) != set(_INFO_FIELDS):
                return None  # inherited: let the import answer
            return TaskInfo(**values)
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:
                names[stmt.targets[0].id] = _literal(stmt.value, names)
                continue
            except _NotStatic:
                pass
        for name in _bound_names(stmt):
            names.pop(name, None)
    return None


def _imported_info(task_cls) -> TaskInfo:
    return TaskInfo(**{f: getattr(task_cls, f) for f in _INFO_FIELDS})


def task_info(name: str) -> TaskInfo:
    """What describes task ``name`` (its class attributes), read without importing its module
    when the source allows."""
    module, cls = TASKS[_key(name)].split(":")
    return _static_info(module, cls) or _imported_info(get_task(name))


def describe_tasks() -> List[TaskInfo]:
    """:func:`task_info` of every task, sorted by name (``superb list tasks``)."""
    return [task_info(k) for k in sorted(TASKS)]


_LAZY = {"Example": ".base", "Task": ".base"}


def __getattr__(name: str):  # PEP 562: `from superb.downstream.tasks import Task` imports torch only then
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Example", "INTERNAL_METRIC_SUFFIXES", "Task", "TASKS", "TaskInfo", "UnknownTaskError", "describe_tasks",
           "get_task", "is_internal_metric", "list_tasks", "task_info"]
