"""Upstream options and checkpoint configurations: ``config_from_options`` applies
``--upstream-option key=value`` pairs to a configuration dataclass, coercing each value to the
field's type (:func:`as_bool` for booleans); :func:`to_plain` turns checkpoint configuration
objects into plain data (re-exported from :mod:`superb.upstream.checkpoint_io`)."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .checkpoint_io import to_plain  # plain data from checkpoint configuration objects

__all__ = ["as_bool", "config_from_options", "to_plain"]


def config_from_options(cls, base: Any, options: Mapping[str, Any], where: str):
    """Return a copy of dataclass ``base`` (or ``cls()``) with ``options`` applied; an unknown
    option is an error listing the known ones."""
    base = base if base is not None else cls()
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(
            f"{where}: unknown upstream option(s) {unknown}; known options: {sorted(names)}"
        )
    values = {k: _coerce(v, getattr(base, k), k, where) for k, v in options.items()}
    return dataclasses.replace(base, **values)


def _coerce(value: Any, default: Any, key: str, where: str) -> Any:
    """Bring a command-line option (parsed as YAML) to the type of the field's current value:
    ``"(128, 32)"`` or ``[128, 32]`` for a tuple, ``"true"`` for a bool, a list back to the
    layer-list string of a fairseq field."""
    import ast

    if isinstance(default, bool):
        return as_bool(value, key, where)
    if isinstance(default, int) and not isinstance(value, bool):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, int):
            return value
        raise ValueError(f"{where}: option {key} must be an integer, got {value!r}")
    if isinstance(default, float) and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{where}: option {key} must be a number, got {value!r}") from None
    if isinstance(default, tuple):
        if isinstance(value, str):
            try:
                value = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                raise ValueError(f"{where}: option {key} must be a tuple such as (1, 2), got {value!r}") from None
        if isinstance(value, (int, float, bool)):
            value = (value,)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: option {key} must be a tuple, got {value!r}")
        kind = type(default[0]) if default else None
        return tuple(as_bool(v, key, where) if kind is bool else kind(v) if kind in (int, float) else v
                     for v in value)
    if isinstance(default, str) and isinstance(value, (list, tuple)):
        # a layer list the YAML parser split up, e.g. [(512, 2, 1)] -> ['(512', 2, '1)']
        return "[" + ", ".join(str(v) for v in value) + "]"
    return value


def as_bool(value: Any, key: str, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ValueError(f"{where}: {key} must be a boolean, got {value!r}")
