"""Safe checkpoint loading shared by every upstream.

``safe_load(path)`` reads a ``torch.save`` file (zip or legacy format) **without executing code
from it**:

1. The pickle stream is disassembled statically (:mod:`pickletools`) and every global it names
   (``GLOBAL module name``) is classified before anything is unpickled:

   * globals that torch's ``weights_only`` unpickler allows by default (tensor rebuild
     functions, dtypes, ``OrderedDict``, ...) pass through;
   * a short list of harmless built-in types (``dict``, ``list``, ``int``, ...) is allowed;
   * classes and functions of *foreign* training frameworks whose pickled objects carry only
     configuration - modules ``fairseq``, ``argparse``, ``omegaconf``, ``s3prl``, ``typing``,
     ``enum``, ``pathlib``, ``numpy``, ``__main__`` - are replaced by inert stand-in classes
     (:class:`ForeignObject` subclasses named after the original). Nothing is imported: a
     stand-in only records the arguments and state the pickle gives it, which stay readable as
     attributes, through :meth:`ForeignObject.fields` or as plain data via :func:`to_plain`;
   * anything else (``os.system``, ``builtins.eval``, ``torch.nn`` modules, ...) makes loading
     fail with :class:`UnsafeCheckpointError` naming the global and the file, before
     unpickling starts.

2. The file is then loaded with ``torch.load(..., weights_only=True)`` - torch's restricted
   unpickler - with the stand-ins registered under the foreign names via
   ``torch.serialization.safe_globals``. Even if step 1 were fooled, that unpickler only calls
   the allow-listed callables, so loading cannot run code from the file.

TorchScript archives are refused (loading them runs TorchScript code). ``safetensors`` files are
parsed by :func:`load_safetensors` (a JSON header and raw little-endian buffers; no pickle).

:func:`check_state_dict` compares the weight names a checkpoint provides with the names an
architecture expects, drops known pretraining-only entries and raises
:class:`CheckpointKeyError` listing every missing or unexpected name.
"""
from __future__ import annotations

import _compat_pickle
import collections
import io
import json
import pickle
import pickletools
import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import torch

__all__ = [
    "CheckpointKeyError",
    "ForeignObject",
    "UnsafeCheckpointError",
    "check_state_dict",
    "foreign_class",
    "load_safetensors",
    "pickle_globals",
    "safe_load",
    "to_plain",
]

#: modules whose classes become inert stand-ins (the module itself and its sub-modules)
FOREIGN_MODULES: Tuple[str, ...] = (
    "fairseq", "argparse", "omegaconf", "s3prl", "typing", "enum", "pathlib", "numpy",
    "__main__",
) + (
    # [Upstreams II] old s3prl Mockingjay/TERA runner files pickle optimizer/scheduler objects
    # of the top-level module ``optimizers`` (s3prl later moved it to s3prl.optimizers)
    "optimizers",
)

#: built-in types that may be called or instantiated (harmless constructors)
_SAFE_BUILTINS = {
    "builtins.dict": dict, "builtins.list": list, "builtins.tuple": tuple, "builtins.str": str,
    "builtins.int": int, "builtins.float": float, "builtins.bool": bool, "builtins.bytes": bytes,
    "builtins.frozenset": frozenset, "builtins.slice": slice, "builtins.range": range,
    "builtins.set": set, "builtins.complex": complex, "builtins.bytearray": bytearray,
    "collections.defaultdict": collections.defaultdict,
}


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """A checkpoint needs a global (class or function) that safe loading refuses.

    Also a ``ValueError``, so command-line front ends report it as a user error.
    """

    def __init__(self, path, global_name: Optional[str], detail: str = ""):
        self.path = str(path)
        self.global_name = global_name
        if global_name:
            msg = (
                f"refusing to load {self.path}: it references {global_name!r}, which is not a "
                "tensor, plain data or a known configuration class. Loading it would execute "
                "code from the file; superb never does that. Re-save the weights as a plain "
                "state dict (or safetensors) with trusted tools."
            )
        else:
            msg = f"refusing to load {self.path}: {detail}"
        if detail and global_name:
            msg += f" ({detail})"
        super().__init__(msg)


class CheckpointKeyError(ValueError):
    """A checkpoint's weights do not match the architecture; lists missing/unexpected names."""

    def __init__(self, path, missing: Sequence[str], unexpected: Sequence[str], shape_errors=()):
        self.path = str(path) if path is not None else "<checkpoint>"
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.shape_errors = list(shape_errors)
        parts = []
        if self.missing:
            parts.append(f"missing weights ({len(self.missing)}): {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected weights ({len(self.unexpected)}): {', '.join(self.unexpected)}")
        if self.shape_errors:
            parts.append(f"shape mismatches ({len(self.shape_errors)}): {'; '.join(self.shape_errors)}")
        super().__init__(f"{self.path}: checkpoint weights do not match the architecture: " + "; ".join(parts))


# ----------------------------------------------------------------------------------------------
# Inert stand-ins
# ----------------------------------------------------------------------------------------------


class ForeignObject:
    """Inert stand-in for an object of a foreign class (fairseq, argparse, omegaconf, ...).

    It records what the pickle gives it: constructor arguments (:attr:`args`) and the state
    passed to ``__setstate__`` (:attr:`state`). Fields of a dict state are readable as
    attributes (``ns.normalize`` for a pickled ``argparse.Namespace``). It has no behaviour.
    """

    _foreign_name = "?"
    _args: tuple = ()
    _state: Any = None

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        object.__setattr__(obj, "_args", tuple(args))
        return obj

    def __init__(self, *args, **kwargs):  # REDUCE calls cls(*args): nothing to do
        pass

    def __setstate__(self, state):
        object.__setattr__(self, "_state", state)

    @property
    def foreign_name(self) -> str:
        return self._foreign_name

    @property
    def args(self) -> tuple:
        return self._args

    @property
    def state(self) -> Any:
        return self._state

    def fields(self) -> Dict[str, Any]:
        """The object's attribute dict (``__dict__`` state and slot state merged)."""
        state = self._state
        out: Dict[str, Any] = {}
        if isinstance(state, tuple) and len(state) == 2 and all(
            s is None or isinstance(s, dict) for s in state
        ):
            for part in state:
                if part:
                    out.update(part)
        elif isinstance(state, dict):
            out.update(state)
        return out

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        fields = self.fields()
        if name in fields:
            return fields[name]
        raise AttributeError(
            f"{self._foreign_name} (inert stand-in from a checkpoint) has no field {name!r}"
        )

    def __repr__(self) -> str:
        inner = []
        if self._args:
            inner.append(f"args={self._args!r}")
        if self._state is not None:
            keys = list(self.fields())
            inner.append(f"fields={keys!r}" if keys else f"state={type(self._state).__name__}")
        return f"<stand-in {self._foreign_name} {' '.join(inner)}>"


_FOREIGN_CLASSES: Dict[str, type] = {}


def foreign_class(full_name: str) -> type:
    """The stand-in class for ``module.qualname`` (created once, cached)."""
    cls = _FOREIGN_CLASSES.get(full_name)
    if cls is None:
        module, _, qualname = full_name.rpartition(".")
        cls = type(qualname.replace(".", "_") or "Foreign", (ForeignObject,), {
            "_foreign_name": full_name, "__module__": f"superb.foreign.{module}",
        })
        cls.__qualname__ = qualname
        _FOREIGN_CLASSES[full_name] = cls
    return cls


def _is_foreign(full_name: str) -> bool:
    module = full_name.split(".", 1)[0]
    return module in FOREIGN_MODULES


def to_plain(obj: Any, _seen: Optional[Set[int]] = None) -> Any:
    """Turn stand-ins into plain data: dicts, lists, strings, numbers (tensors unchanged).

    omegaconf ``DictConfig`` / ``ListConfig`` become dicts / lists of their node values, a
    pickled ``argparse.Namespace`` (or any object with a dict state) becomes its attribute
    dict, an enum member its value, a ``pathlib`` path a string and a stand-in *class* its
    dotted name. Reference cycles become ``None``.
    """
    seen = set() if _seen is None else _seen
    if isinstance(obj, type) and issubclass(obj, ForeignObject):
        return obj._foreign_name
    if isinstance(obj, (dict, list, tuple, set, frozenset, ForeignObject)):
        if id(obj) in seen:
            return None
        seen = seen | {id(obj)}
    if isinstance(obj, dict):
        return {to_plain(k, seen): to_plain(v, seen) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v, seen) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_plain(v, seen) for v in obj)
    if isinstance(obj, (set, frozenset)):
        return [to_plain(v, seen) for v in obj]
    if isinstance(obj, ForeignObject):
        name = obj._foreign_name
        fields = obj.fields()
        if name.startswith("omegaconf."):
            if "_content" in fields:  # DictConfig / ListConfig
                content = fields["_content"]
                if isinstance(content, (dict, list)):
                    return to_plain(content, seen)
                return None  # None / "???" (missing) / interpolation string
            if "_val" in fields:  # value nodes
                return to_plain(fields["_val"], seen)
        if name.startswith("pathlib."):
            return str(PurePosixPath(*[str(a) for a in obj._args])) if obj._args else ""
        if fields:
            return {k: to_plain(v, seen) for k, v in fields.items()}
        if len(obj._args) == 1:
            return to_plain(obj._args[0], seen)
        if obj._args:
            return [to_plain(a, seen) for a in obj._args]
        return None
    return obj


# ----------------------------------------------------------------------------------------------
# Static inspection of pickles
# ----------------------------------------------------------------------------------------------


def _map_py2(module: str, name: str) -> Tuple[str, str]:
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _globals_in_stream(stream) -> Set[str]:
    names: Set[str] = set()
    recent: List[Any] = []
    for opcode, arg, _ in pickletools.genops(stream):
        if opcode.name in ("GLOBAL", "INST"):
            module, name = arg.split(" ", 1)
            module, name = _map_py2(module, name)
            names.add(f"{module}.{name}")
        elif opcode.name == "STACK_GLOBAL":
            # protocol >= 4; torch's restricted unpickler rejects it anyway, but name what we can
            if len(recent) >= 2 and all(isinstance(x, str) for x in recent[-2:]):
                names.add(f"{recent[-2]}.{recent[-1]}")
            else:
                names.add("<STACK_GLOBAL with computed name>")
        if isinstance(arg, str) and "UNICODE" in opcode.name:
            recent.append(arg)
            recent = recent[-2:]
    return names


def pickle_globals(path) -> Set[str]:
    """Every ``module.name`` global referenced by the pickles of a ``torch.save`` file."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if head.startswith(b"PK"):
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
                    raise UnsafeCheckpointError(
                        path, None, "it is a TorchScript archive; loading one runs TorchScript "
                        "code. Export a plain state dict instead.")
                data = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
                if not data:
                    raise UnsafeCheckpointError(path, None, "zip file without a data.pkl record: "
                                                "not a torch.save checkpoint")
                found: Set[str] = set()
                for n in data:
                    found |= _globals_in_stream(io.BytesIO(zf.read(n)))
                return found
        found = set()
        with open(path, "rb") as f:
            # legacy torch.save: magic number, protocol, sys info, the object, storage keys
            for _ in range(5):
                try:
                    found |= _globals_in_stream(f)
                except (ValueError, EOFError):
                    break
        return found
    except zipfile.BadZipFile as exc:
        raise ValueError(f"cannot read checkpoint {path}: truncated or corrupt zip file ({exc})") from exc
    except pickle.UnpicklingError as exc:
        if isinstance(exc, UnsafeCheckpointError):
            raise
        raise UnsafeCheckpointError(path, None, f"unreadable pickle stream ({exc})") from exc


def _allowed_by_torch() -> Set[str]:
    try:
        from torch import _weights_only_unpickler as wou

        return set(wou._get_allowed_globals().keys())
    except Exception:  # pragma: no cover - private API moved; torch will still refuse
        return set()


# ----------------------------------------------------------------------------------------------
# Public loaders
# ----------------------------------------------------------------------------------------------


def safe_load(path, allow_foreign: bool = True) -> Any:
    """Load a ``torch.save`` file on CPU without executing code from it (see module docstring).

    Foreign objects come back as :class:`ForeignObject` stand-ins; use :func:`to_plain` to turn
    configuration objects into dicts. ``allow_foreign=False`` (files superb wrote itself, such as
    a run's ``checkpoints/last.pt``) admits only tensors and plain data. Raises
    :class:`UnsafeCheckpointError` naming the first refused global, ``FileNotFoundError`` for a
    missing file and ``ValueError`` naming the file for an empty, truncated or corrupt one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"cannot read checkpoint {path}: the file is empty")
    try:
        found = pickle_globals(path)
    except (EOFError, OSError) as exc:
        raise ValueError(f"cannot read checkpoint {path}: truncated or corrupt file ({exc})") from exc
    torch_allowed = _allowed_by_torch()
    extra: List[Tuple[Any, str]] = []
    refused = []
    for full in sorted(found):
        if full in torch_allowed:
            continue
        if full in _SAFE_BUILTINS:
            extra.append((_SAFE_BUILTINS[full], full))
        elif allow_foreign and _is_foreign(full):
            extra.append((foreign_class(full), full))
        else:
            refused.append(full)
    if refused:
        raise UnsafeCheckpointError(path, refused[0],
                                    f"refused globals: {', '.join(refused)}" if len(refused) > 1 else "")
    try:
        with torch.serialization.safe_globals(extra):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "truncated" in str(exc).lower() or "ran out of input" in str(exc).lower():
            raise ValueError(f"cannot read checkpoint {path}: truncated or corrupt file ({exc})") from exc
        raise UnsafeCheckpointError(path, None, f"torch's restricted unpickler refused it: {exc}") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"cannot read checkpoint {path}: truncated or corrupt file ({exc})") from exc


_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


def load_safetensors(path) -> Dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file (8-byte little-endian header size, JSON header, raw data).

    Implemented from the published format description; needs no extra package and never
    unpickles anything.
    """
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < 8:
        raise ValueError(f"{path}: not a safetensors file (too short)")
    n = int.from_bytes(raw[:8], "little")
    if n <= 0 or 8 + n > len(raw):
        raise ValueError(f"{path}: not a safetensors file (bad header size {n})")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a safetensors file (header is not JSON: {exc})") from exc
    data = memoryview(raw)[8 + n:]
    out: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {info.get('dtype')!r}")
        start, end = info["data_offsets"]
        shape = [int(s) for s in info["shape"]]
        numel = 1
        for s in shape:
            numel *= s
        itemsize = torch.empty((), dtype=dtype).element_size()
        if end - start != numel * itemsize or end > len(data):
            raise ValueError(f"{path}: tensor {name!r} has inconsistent offsets {start}..{end}")
        buf = bytearray(data[start:end])
        t = torch.frombuffer(buf, dtype=dtype) if numel else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(shape).clone()
    return out


def check_state_dict(expected_keys: Iterable[str], got_keys: Iterable[str],
                     drop_patterns: Sequence[str] = (), path=None) -> List[str]:
    """Compare weight names; return the dropped (known pretraining-only) names.

    ``drop_patterns`` are regular expressions matched against the start of a name
    (``re.match``); names matching one are dropped when the architecture does not expect them.
    Raises :class:`CheckpointKeyError` listing every missing and unexpected name.
    """
    expected = set(expected_keys)
    got = list(got_keys)
    compiled = [re.compile(p) for p in drop_patterns]
    dropped = [k for k in got if k not in expected and any(p.match(k) for p in compiled)]
    unexpected = sorted(k for k in got if k not in expected and k not in set(dropped))
    missing = sorted(expected - set(got))
    if missing or unexpected:
        raise CheckpointKeyError(path, missing, unexpected)
    return dropped
