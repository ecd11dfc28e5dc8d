"""Resolving a run's configuration.

Order (later wins): the task's recipe (``recipes/<task>.yaml``) -> its ``mini`` section when the
run uses the embedded mini corpus -> its ``mini_tiny`` section when that corpus is the ``tiny``
profile (sizes only that small corpus needs, e.g. VC's dev utterances) -> ``--config YAML`` -> ``--set key=value`` -> explicit CLI flags
(``--max-steps``). Every key a user sets must already exist in the recipe (``--set
runner.total_step=5`` is an error that names the key), so a typo never silently does nothing.

YAML (recipes, ``--config`` files, ``--set`` and ``--upstream-option`` values) is read with
:func:`superb.recipes.parse_yaml`: a key repeated in one mapping is an error naming the key and its
line, and a syntax error is a one-line :class:`ConfigError` naming the file (or the ``--set``
item) and the line and column.
"""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping

from superb.downstream.fileio import read_text
from superb.recipes import load_recipe, parse_yaml

RUN_SECTIONS = ("upstream", "data", "device")


class ConfigError(ValueError):
    pass


def _merge(base: Dict[str, Any], override: Mapping[str, Any], where: str, prefix: str = "") -> None:
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            close = difflib.get_close_matches(key, list(base), n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ConfigError(f"{where}: unknown config key {dotted!r}{hint}")
        if isinstance(base[key], dict) and isinstance(value, Mapping):
            _merge(base[key], value, where, dotted + ".")
        elif isinstance(base[key], dict) and base[key] and not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {dotted!r} is a section; set one of its keys instead")
        else:
            base[key] = copy.deepcopy(value)


def merge_config(base: Dict[str, Any], override: Mapping[str, Any], where: str) -> None:
    """Merge ``override`` into ``base`` in place; every key must exist already (errors name ``where``)."""
    _merge(base, override, where)


def parse_scalar(raw: str, source: str | None = None) -> Any:
    """A command-line value as YAML, with ``1e-3``-style floats (YAML 1.1 reads them as strings).

    Invalid YAML (``[1,``) or a repeated key (``{a: 1, a: 2}``) is a :class:`ConfigError` naming
    ``source`` (default: the value itself)."""
    value = parse_yaml(raw, source or f"value {raw!r}", ConfigError) if raw.strip() else None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def nest(pairs: Iterable[tuple], where: str = "--set") -> Dict[str, Any]:
    """``[("runner.lr", 1e-3), ...]`` -> ``{"runner": {"lr": 1e-3}}``."""
    out: Dict[str, Any] = {}
    for key, value in pairs:
        node = out
        parts = str(key).strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{where} {key!r} conflicts with another {where} of {part!r}")
        node[parts[-1]] = value
    return out


def parse_set(items: Iterable[str]) -> Dict[str, Any]:
    """``["runner.lr=1e-3", ...]`` -> nested dict, values parsed as YAML scalars."""
    pairs = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        pairs.append((key, parse_scalar(raw, f"--set {item!r}")))
    return nest(pairs)


def resolve_config(task: str, use_mini: bool, config_file: str | None = None, sets: List[str] = (),
                   max_steps: int | None = None, mini_profile: str = "default") -> Dict[str, Any]:
    recipe = load_recipe(task)
    mini = recipe.pop("mini", {}) or {}
    mini_tiny = recipe.pop("mini_tiny", {}) or {}
    cfg = copy.deepcopy(recipe)
    if use_mini:
        _merge(cfg, mini, f"the {task} recipe's mini section")
        if mini_profile == "tiny":
            _merge(cfg, mini_tiny, f"the {task} recipe's mini_tiny section")
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            text = read_text(path)
        except ValueError as exc:  # not UTF-8: the message names the file
            raise ConfigError(str(exc)) from None
        user = parse_yaml(text, str(path), ConfigError) or {}
        if not isinstance(user, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        user.pop("mini", None)
        user.pop("mini_tiny", None)
        _merge(cfg, user, str(path))
    if sets:
        _merge(cfg, parse_set(sets), "--set")
    if max_steps is not None:
        if max_steps <= 0:
            raise ConfigError(f"--max-steps must be positive, got {max_steps}")
        cfg["runner"]["total_steps"] = int(max_steps)
    if cfg["task"].get("name") != task:
        raise ConfigError(f"task.name must stay {task!r}")
    return cfg


def diff_configs(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> List[str]:
    """Dotted keys whose values differ between two nested configs."""
    keys = sorted(set(a) | set(b))
    out: List[str] = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out.extend(diff_configs(va, vb, f"{prefix}{k}."))
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out
