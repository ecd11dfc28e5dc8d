"""Downstream tasks, one module each; a task's class declares everything about it.

Where tasks come from
---------------------
* Built in: every class in a module of this package whose body sets ``name = "<task id>"``
  (found by reading the modules' source, so no import is needed to know them).
* Plug-ins: the entry-point group ``superb.tasks`` (``toy = toy_pkg.toy:ToyTask``): a package
  installed beside superb adds a task without touching this one (``docs/adding-a-task.md``).

``get_task(name)`` imports and returns the task class. ``task_info(name)`` / ``describe_tasks()``
return its declaration (:class:`TaskInfo`: name, category, dataset, metrics with direction and
unit, leaderboard columns, submission files, recipe, mini split, ...) read from the module's
source without importing it -- and so without torch: the class attributes must be literals,
module-level constants, f-strings of those, or calls of the declaration classes of
:mod:`.declaration`, inherited attributes are followed to base classes imported from this package.
A task whose attributes are anything else is imported instead, so the answer is always the
class's own (``tests/test_cli_fast.py`` compares both for every task). ``superb list``, the
leaderboard table (:mod:`superb.benchmark.leaderboard`), the submission layout
(:mod:`superb.benchmark.submit`) and ``results.json`` (``metric_units``, ``higher_is_better``)
are all derived from these declarations.

Importing this package stays cheap: ``Example``, ``Task`` and ``TaskContext`` load :mod:`.base`
(torch) on first use.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import importlib
import importlib.util
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Type

from .declaration import DECLARATION_CLASSES, DECLARATION_CONSTANTS, Board, Metric, Submission

#: entry-point group of plug-in tasks (name = "module:Class")
ENTRY_POINT_GROUP = "superb.tasks"
_PACKAGE = __name__


class UnknownTaskError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


# -- what a task declares ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskInfo:
    """The class attributes that describe a task (:class:`superb.downstream.tasks.base.Task`)."""

    name: str
    title: str
    category: str
    dataset: str
    #: every metric the task reports, in display order
    metrics: Dict[str, Metric]
    primary_metric: str
    data_help: str
    #: the split of the mini corpus the task trains on
    mini_split: str = ""
    #: the recipe: a file name in ``superb.recipes`` without ``.yaml`` (built-in tasks), or a
    #: ``.yaml`` file next to the task's module (plug-ins); empty means ``<name>``
    recipe: str = ""
    trainable: bool = True
    folds: tuple = ()
    decode_settings: tuple = ()
    #: the task's place on the SUPERB leaderboard (None: not a leaderboard task)
    leaderboard: Optional[Board] = None
    #: the files of a leaderboard submission it fills (first: its main output)
    submission: Tuple[Submission, ...] = ()

    def higher_is_better(self) -> Dict[str, bool]:
        return {m: d.higher_is_better for m, d in self.metrics.items()}

    def shown_metrics(self) -> List[Tuple[str, bool]]:
        """``(metric, higher is better)``: the primary metric first, then the task's other scores in
        their declared order; internal reference values and counters left out."""
        first = self.metrics[self.primary_metric]
        rest = [(m, d.higher_is_better) for m, d in self.metrics.items() if m != self.primary_metric and not d.internal]
        return [(self.primary_metric, first.higher_is_better), *rest]


FIELDS: Tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TaskInfo))
_DEFAULTS: Dict[str, Any] = {f.name: f.default for f in dataclasses.fields(TaskInfo)
                             if f.default is not dataclasses.MISSING}


# -- reading declarations from source ---------------------------------------------------------------
class _NotStatic(Exception):
    """An expression the source reader does not evaluate (the module is imported instead)."""


def _literal(node: ast.AST, names: Dict[str, Any]) -> Any:
    """Value of a literal, a dict/tuple/list of literals, a known constant, an f-string of those
    (no conversions or format specs), or a call of a declaration class with such arguments."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        raise _NotStatic(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _literal(node.operand, names)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value
        raise _NotStatic("negation of a non-number")
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
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DECLARATION_CLASSES
            and names.get(node.func.id) is DECLARATION_CLASSES[node.func.id]):
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise _NotStatic("*args / **kwargs")
        args = [_literal(a, names) for a in node.args]
        kwargs = {k.arg: _literal(k.value, names) for k in node.keywords}
        return DECLARATION_CLASSES[node.func.id](*args, **kwargs)
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


#: the folders of superb's subpackages (siblings both in a checkout and in an installed package)
_PACKAGE_DIRS = {f"superb.{name}": Path(__file__).resolve().parent.parent.parent / name
                 for name in ("downstream", "upstream", "benchmark", "recipes")}


def _module_file(module: str) -> Optional[Path]:
    """The source file of ``module``. Modules of superb's subpackages are located on disk (finding
    them through the import system would import their parent packages, and with them torch)."""
    for package, folder in _PACKAGE_DIRS.items():
        if module == package or module.startswith(package + "."):
            base = folder.joinpath(*module[len(package) + 1:].split(".")) if module != package else folder
            for path in (base.with_suffix(".py"), base / "__init__.py"):
                if path.is_file():
                    return path
            return None
    spec = importlib.util.find_spec(module)
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


@functools.lru_cache(maxsize=None)
def _module_tree(module: str) -> Optional[ast.Module]:
    try:
        path = _module_file(module)
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path)) if path is not None else None
    except (ImportError, OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


def _imported_from(stmt: ast.ImportFrom, module: str) -> Optional[str]:
    """The absolute module a ``from ... import`` statement of ``module`` reads from."""
    if stmt.level == 0:
        return stmt.module
    base = module.split(".")[:-stmt.level]
    return ".".join(base + ([stmt.module] if stmt.module else [])) or None


_MISSING = object()


def _read_import(stmt: ast.ImportFrom, module: str, names: Dict[str, Any], imports: Dict[str, Tuple[str, str]],
                 wanted: Optional[set] = None) -> None:
    """Record what ``from <source> import a, b`` binds: declaration classes and constants, the
    literal constants of the source module that ``wanted`` names (read from its source), and where
    every other name comes from."""
    source = _imported_from(stmt, module)
    for alias in stmt.names:
        local_name = alias.asname or alias.name
        names.pop(local_name, None)
        imports.pop(local_name, None)
        if source == f"{_PACKAGE}.declaration":
            known = {**DECLARATION_CLASSES, **DECLARATION_CONSTANTS}
            if alias.name in known:
                names[local_name] = known[alias.name]
        elif source:
            imports[local_name] = (source, alias.name)
            if wanted is None or local_name in wanted:
                value = _module_constant(source, alias.name)
                if value is not _MISSING:
                    names[local_name] = value


def _module_statement(stmt: ast.stmt, module: str, names: Dict[str, Any], imports: Dict[str, Tuple[str, str]],
                      wanted: set) -> None:
    """Update the known constants ``names`` and ``imports`` of ``module`` by one top-level statement."""
    if isinstance(stmt, ast.ImportFrom):
        _read_import(stmt, module, names, imports, wanted)
        return
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        try:
            names[stmt.targets[0].id] = _literal(stmt.value, names)
            return
        except (_NotStatic, TypeError, ValueError):
            pass
    for bound in _bound_names(stmt):
        names.pop(bound, None)
        imports.pop(bound, None)


_RESOLVING: set = set()


@functools.lru_cache(maxsize=None)
def _module_constant(module: str, name: str) -> Any:
    """The value module ``module`` finally binds to ``name`` when it is a literal constant (read from
    source, following ``from ... import name``), else ``_MISSING``."""
    tree = _module_tree(module)
    if tree is None or (module, name) in _RESOLVING:
        return _MISSING
    _RESOLVING.add((module, name))
    try:
        names: Dict[str, Any] = {}
        imports: Dict[str, Tuple[str, str]] = {}
        wanted = {name} | {n for a in tree.body if isinstance(a, ast.Assign) for n in _names_in(a.value)}
        for stmt in tree.body:
            _module_statement(stmt, module, names, imports, wanted)
        return names.get(name, _MISSING)
    finally:
        _RESOLVING.discard((module, name))


def _names_in(node: ast.AST) -> set:
    """Every name read in ``node`` (a class body, an assigned value): what the reader may need."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _class_fields(module: str, cls: str, depth: int = 0) -> Optional[Dict[str, Any]]:
    """The :class:`TaskInfo` fields class ``cls`` of ``module`` sets, its bases' included, read
    from source; None when the source does not tell (a field computed, decorators, a base class the
    reader cannot follow). The root ``Task`` class of :mod:`.base` gives the defaults."""
    if module == f"{_PACKAGE}.base" and cls == "Task":
        return dict(_DEFAULTS)
    tree = _module_tree(module)
    if tree is None or depth > 8:
        return None
    target_cls = next((c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == cls), None)
    if target_cls is None:
        return None
    # the imported constants worth resolving: those the class-level assignments read
    class_names = {n for item in target_cls.body if isinstance(item, (ast.Assign, ast.AnnAssign)) and item.value
                   for n in _names_in(item.value)}
    names: Dict[str, Any] = {}  # module-level constants known at this point of the module
    imports: Dict[str, Tuple[str, str]] = {}  # local name -> (module, name) of `from x import name`
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == cls:
            if stmt.decorator_list or stmt.keywords or len(stmt.bases) != 1 or not isinstance(stmt.bases[0], ast.Name):
                return None
            base = stmt.bases[0].id
            if base in imports:
                values = _class_fields(*imports[base], depth=depth + 1)
            elif any(isinstance(s, ast.ClassDef) and s.name == base for s in tree.body):
                values = _class_fields(module, base, depth=depth + 1)
            else:
                return None
            if values is None:
                return None
            local = dict(names)  # the class body sees its own earlier names first
            for item in stmt.body:
                if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name):
                    target, value = item.targets[0].id, item.value
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None:
                    target, value = item.target.id, item.value
                else:
                    bound = _bound_names(item)
                    if any(n in FIELDS for n in bound):
                        return None
                    for n in bound:
                        local.pop(n, None)
                    continue
                try:
                    local[target] = _literal(value, local)
                except _NotStatic:
                    if target in FIELDS:
                        return None
                    local.pop(target, None)
                    continue
                except (TypeError, ValueError):
                    return None  # a declaration call with wrong arguments: the import reports it
                if target in FIELDS:
                    values[target] = local[target]
            return values
        _module_statement(stmt, module, names, imports, class_names)
    return None


def _static_info(module: str, cls: str) -> Optional[TaskInfo]:
    """``cls``'s :class:`TaskInfo` read from ``module``'s source, or None when the source does not
    tell (see :func:`_class_fields`)."""
    values = _class_fields(module, cls)
    if values is None or any(f not in values for f in FIELDS):
        return None
    try:
        return TaskInfo(**values)
    except TypeError:
        return None


def _imported_info(task_cls) -> TaskInfo:
    return TaskInfo(**{f: getattr(task_cls, f) for f in FIELDS})


# -- the registry ---------------------------------------------------------------------------------
def _builtin_tasks() -> Dict[str, str]:
    """``{task id: "module:Class"}`` of the classes of this package's modules that set ``name``."""
    found: Dict[str, str] = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = f"{_PACKAGE}.{path.stem}"
        tree = _module_tree(module)
        for stmt in tree.body if tree is not None else ():
            if not isinstance(stmt, ast.ClassDef):
                continue
            for item in stmt.body:
                if (isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name)
                        and item.targets[0].id == "name" and isinstance(item.value, ast.Constant)
                        and isinstance(item.value.value, str) and item.value.value):
                    if item.value.value in found:
                        raise RuntimeError(f"task {item.value.value!r} is declared twice: {found[item.value.value]} "
                                           f"and {module}:{stmt.name}")
                    found[item.value.value] = f"{module}:{stmt.name}"
    return found


def _plugin_tasks() -> Dict[str, str]:
    out: Dict[str, str] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        out[ep.name.strip().lower()] = ep.value.replace(" ", "")
    return out


def _discover() -> Dict[str, str]:
    tasks = _builtin_tasks()
    for name, target in _plugin_tasks().items():
        if name in tasks and tasks[name] != target:
            raise RuntimeError(f"plug-in task {name!r} ({target}, entry point group {ENTRY_POINT_GROUP}) has the name "
                               f"of the built-in task {tasks[name]}")
        tasks[name] = target
    return tasks


#: task id -> "module:Class" (built-in and plug-in tasks; see the module docstring)
TASKS: Dict[str, str] = _discover()


def refresh() -> Dict[str, str]:
    """Discover the tasks again (after installing a plug-in in a running interpreter)."""
    _module_tree.cache_clear()
    _module_constant.cache_clear()
    TASKS.clear()
    TASKS.update(_discover())
    return TASKS


def _key(name: str) -> str:
    key = name.strip().lower()
    if key not in TASKS:
        close = difflib.get_close_matches(key, list(TASKS), n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownTaskError(f"unknown task {name!r}.{hint} Known tasks: {', '.join(sorted(TASKS))}")
    return key


def get_task(name: str) -> Type["Task"]:
    key = _key(name)
    module, cls = TASKS[key].split(":")
    task_cls = getattr(importlib.import_module(module), cls)
    if getattr(task_cls, "name", None) != key:
        raise RuntimeError(f"{TASKS[key]} is registered as task {key!r} but its name attribute is "
                           f"{getattr(task_cls, 'name', None)!r}")
    return task_cls


def list_tasks() -> List[Type["Task"]]:
    return [get_task(k) for k in sorted(TASKS)]


def task_info(name: str) -> TaskInfo:
    """What describes task ``name`` (its class attributes), read without importing its module
    when the source allows."""
    module, cls = TASKS[_key(name)].split(":")
    return _static_info(module, cls) or _imported_info(get_task(name))


def describe_tasks() -> List[TaskInfo]:
    """:func:`task_info` of every task, sorted by name (``superb list tasks``)."""
    return [task_info(k) for k in sorted(TASKS)]


def recipe_file(name: str):
    """The recipe YAML of task ``name``: ``superb/recipes/<recipe>.yaml`` for a recipe name, or the
    ``.yaml`` file the task declares next to its module (plug-ins). Never relative to the working
    directory."""
    info = task_info(name)
    recipe = info.recipe or info.name
    if recipe.endswith(".yaml"):
        module = TASKS[info.name].split(":")[0]
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.origin:
            raise FileNotFoundError(f"task {info.name}: cannot locate module {module} to find its recipe {recipe}")
        return Path(spec.origin).parent / recipe
    return resources.files("superb.recipes") / f"{recipe}.yaml"


_LAZY = {"Example": ".base", "Task": ".base", "TaskContext": ".base"}


def __getattr__(name: str):  # PEP 562: `from superb.downstream.tasks import Task` imports torch only then
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ENTRY_POINT_GROUP", "Example", "FIELDS", "Metric", "Task", "TaskContext", "TASKS", "TaskInfo", "UnknownTaskError",
           "describe_tasks", "get_task", "list_tasks", "recipe_file", "refresh", "task_info"]
