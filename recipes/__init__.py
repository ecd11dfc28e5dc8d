"""Per-task protocol configs (YAML), installed with the package.

``load_recipe("ks")`` returns the recipe of a task as a dict. Recipes are found through the
package (or, for a plug-in task, next to its module), never relative to the working directory.

YAML here and in user config files (:mod:`superb.benchmark.config`) is read with
:func:`parse_yaml`: safe loading, a mapping that repeats a key is an error (plain YAML keeps the
last value silently, so a repeated ``lr:`` would hide the first), and a syntax error becomes a
one-line message naming the source, the line and the column.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Type

import yaml

from superb.downstream.fileio import read_text


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice (merge keys ``<<``
    excepted: keys of a merged anchor may be overridden, as YAML intends)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: Dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable key: the base constructor reports it
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key!r} (first at line {first.line + 1})", key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def yaml_error_message(exc: yaml.YAMLError, source: str) -> str:
    """One line: ``<source>: line L, column C: <problem>``."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
    text = f"{problem} ({context})" if context and "duplicate key" not in problem else problem
    return f"{source}: invalid YAML at {where}: {text}"


def parse_yaml(text: str, source: str, error: Type[Exception] = ValueError) -> Any:
    """Safe-load ``text`` with :class:`UniqueKeyLoader`; YAML errors become ``error`` with one line
    naming ``source`` (a file name, or e.g. ``--set lr=...``) and the line/column."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise error(yaml_error_message(exc, source)) from None


def available_recipes() -> List[str]:
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def load_recipe(task: str) -> Dict[str, Any]:
    """The recipe of ``task`` as a dict: the file its task class declares (``Task.recipe``; by
    default ``<name>.yaml`` in this package, or a ``.yaml`` next to a plug-in task's module)."""
    from superb.downstream.tasks import recipe_file

    path = recipe_file(task)
    if not path.is_file():
        raise FileNotFoundError(f"no recipe for task {task!r} ({path}); built-in recipes: "
                                f"{', '.join(available_recipes())}")
    text = read_text(path) if isinstance(path, Path) else path.read_text(encoding="utf-8")
    return parse_yaml(text, str(path))
