"""Checkpoint weights: the one key mapper, the one fairseq layer-list parser and the one strict
loader of :mod:`superb.upstream`.

* :func:`map_keys` renames a checkpoint's weights with an explicit table of
  ``(regex, replacement)`` rules (each family's ``import_<source>.py`` keeps its table as data);
  :func:`rename_keys` does the same and also returns where every name came from.
* :func:`parse_layer_spec` reads fairseq layer lists such as ``"[(512, 10, 5)] + [(512, 3, 2)] * 4"``
  without ``eval``.
* :func:`check_weights` checks names (dropping known pretraining-only ones), types and shapes
  against the model's own state dict and converts floating-point weights to float32;
  :func:`load_strict` loads the result into a module. Errors are :class:`CheckpointKeyError`
  naming every bad weight as the checkpoint spells it, and the file.
"""
from __future__ import annotations

import ast
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = ["check_weights", "load_strict", "map_keys", "parse_layer_spec", "rename_keys"]

#: the most a ``*`` in a layer list may repeat (a guard against absurd lists)
MAX_REPEAT = 1000


def rename_keys(state: Mapping[str, Any], table: Sequence[Tuple[str, str]]) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Rename every key of ``state`` with the first fully matching ``(regex, replacement)`` of
    ``table``; keys that match no rule are kept (the strict check reports them). Returns
    ``(renamed_state, our_name -> original_name)``; two weights mapping to one name is an error."""
    compiled = [(re.compile(p), r) for p, r in table]
    out: Dict[str, Any] = {}
    origin: Dict[str, str] = {}
    for key, value in state.items():
        new = key
        for pattern, repl in compiled:
            if pattern.fullmatch(key):
                new = pattern.sub(repl, key)
                break
        if new in out:
            raise ValueError(f"two checkpoint weights map to {new!r}: {origin[new]!r} and {key!r}")
        out[new] = value
        origin[new] = key
    return out, origin


def map_keys(state: Mapping[str, Any], table: Sequence[Tuple[str, str]]) -> Dict[str, Any]:
    """:func:`rename_keys` without the origins."""
    return rename_keys(state, table)[0]


def parse_layer_spec(text: Any, key: str, where: str, arity: Optional[int] = None) -> List[Tuple[int, ...]]:
    """Parse a fairseq layer list such as ``"[(512, 10, 5)] + [(512, 8, 4)] * 3"`` without
    ``eval``: only list/tuple literals of integers, ``+`` (concatenation) and ``*`` (repetition,
    at most :data:`MAX_REPEAT`) are accepted. ``arity`` (e.g. 3 for ``(dim, kernel, stride)``)
    also requires that many values per layer and at least one layer."""
    if isinstance(text, (list, tuple)):
        if not all(isinstance(t, (list, tuple)) for t in text):
            raise ValueError(f"{where}: {key}={text!r} is not a list of (dim, kernel, stride) tuples")
        value = [tuple(int(v) for v in t) for t in text]
    elif isinstance(text, str):
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ValueError(f"{where}: cannot parse {key}={text!r}: {exc}") from None
        value = _evaluate(tree, text, key, where)
        if isinstance(value, list):
            value = [tuple(t) if isinstance(t, list) else t for t in value]
        if not isinstance(value, list) or not all(isinstance(t, tuple) and all(isinstance(v, int) for v in t)
                                                 for t in value):
            raise ValueError(f"{where}: {key}={text!r} is not a list of integer tuples")
    else:
        raise ValueError(f"{where}: {key} must be a layer list string, got {text!r}")
    if arity is not None:
        for layer in value:
            if len(layer) != arity:
                raise ValueError(f"{where}: each layer of {key} must be (channels, kernel, stride), got {layer!r}")
        if not value:
            raise ValueError(f"{where}: no convolution layers in {key}={text!r}")
    return value


def _evaluate(node: ast.AST, text: str, key: str, where: str):
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            vals = [ev(e) for e in node.elts]
            return vals if isinstance(node, ast.List) else tuple(vals)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            a, b = ev(node.left), ev(node.right)
            if isinstance(a, list) and isinstance(b, list):
                return a + b
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            a, b = ev(node.left), ev(node.right)
            if isinstance(a, list) and isinstance(b, int) and 0 <= b <= MAX_REPEAT:
                return a * b
            if isinstance(b, list) and isinstance(a, int) and 0 <= a <= MAX_REPEAT:
                return b * a
        raise ValueError(f"{where}: cannot parse {key}={text!r} (only literal lists of (dim, kernel, "
                         "stride) tuples joined by + and * are accepted)")

    return ev(node)


def check_weights(expected: Mapping[str, torch.Tensor], state: Mapping[str, Any], path,
                  drop_patterns: Sequence[str] = (), origin: Optional[Mapping[str, str]] = None,
                  source_name: Optional[Callable[[str], str]] = None) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Check ``state`` against the model's ``expected`` state dict; return the weights to load
    (floating-point ones as float32) and the names dropped.

    Unexpected names matching one of ``drop_patterns`` (regexes matched at the start of a name)
    are dropped; other unexpected or missing names, non-tensors, shape mismatches and integer
    tensors where the model holds floating-point ones raise :class:`CheckpointKeyError`. Names in
    errors are spelt as in the checkpoint: ``origin`` maps our names back (see
    :func:`rename_keys`), ``source_name`` writes a missing weight in the checkpoint's naming."""
    from .checkpoint_io import CheckpointKeyError, check_state_dict

    origin = origin or {}
    try:
        dropped = check_state_dict(expected.keys(), state.keys(), drop_patterns, path)
    except CheckpointKeyError as exc:
        if not origin and source_name is None:
            raise
        spell = source_name or (lambda k: k)
        raise CheckpointKeyError(path, [spell(k) for k in exc.missing],
                                 [origin.get(k, k) for k in exc.unexpected]) from None
    out: Dict[str, torch.Tensor] = {}
    errors = []
    for key, ref in expected.items():
        value = state[key]
        name = origin.get(key, key)
        if not isinstance(value, torch.Tensor):
            errors.append(f"{name} is a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != tuple(ref.shape):
            errors.append(f"{name} has shape {tuple(value.shape)}, expected {tuple(ref.shape)}")
        elif ref.is_floating_point() and not value.is_floating_point():
            errors.append(f"{name} has dtype {value.dtype}, expected a floating-point tensor")
        else:
            out[key] = value.detach().to(torch.float32) if value.is_floating_point() else value
    if errors:
        raise CheckpointKeyError(path, [], [], errors)
    return out, [origin.get(k, k) for k in dropped]


def load_strict(module: nn.Module, state: Mapping[str, Any], path, drop_patterns: Sequence[str] = (),
                where: str = "") -> None:
    """:func:`check_weights` against ``module.state_dict()``, then load strictly."""
    weights, _ = check_weights(module.state_dict(), state, path, drop_patterns)
    module.load_state_dict(weights, strict=True)
