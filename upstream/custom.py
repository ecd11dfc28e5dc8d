"""Bring your own upstream: ``file.py:Class``, ``module:Class``, entry points and HEAR modules.

``--upstream`` accepts, besides the built-in names:

* ``path/to/file.py:ClassName`` -- a class defined in a Python file. The file is imported under a
  private module name (its folder is put on ``sys.path`` so it can import its neighbours). The run
  records the file's absolute path, so ``superb evaluate`` rebuilds the same upstream later.
* ``package.module:ClassName`` -- a class of an importable module.
* ``hear:<module>`` -- a module following the HEAR 2021 API (``load_model``,
  ``get_timestamp_embeddings``), wrapped by :class:`HearUpstream`.
* any name registered by an installed package through the entry-point group ``superb.upstreams``
  (loaded by :mod:`superb.upstream.registry`; this module does not import the registry).

A custom class must subclass :class:`superb.upstream.Upstream`. It is built as ``Class(**options)``
without a checkpoint and ``Class(ckpt=Path, **options)`` with ``--upstream-ckpt`` (options come from
``--upstream-option key=value``). Checkpoints are optional for custom and HEAR upstreams.

Entry points. A package declares, e.g. in its ``pyproject.toml``::

    [project.entry-points."superb.upstreams"]
    my_model = "my_pkg.superb_upstream:MyUpstream"

what the named object may be is described in :mod:`superb.upstream.registry`.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import types
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from .base import SAMPLE_RATE, Upstream, UpstreamOutput, stated_rate
from .spec import UpstreamSpec

_SPEC_CACHE: Dict[str, Any] = {}

_CLASS_REF = re.compile(r"^(?P<target>.+):(?P<cls>[A-Za-z_][A-Za-z0-9_]*)$")


class CustomUpstreamError(ValueError):
    pass


def is_custom_name(name: str) -> bool:
    """True for ``hear:<module>``, ``file.py:Class`` and ``module:Class`` references."""
    name = str(name).strip()
    return name.startswith("hear:") or bool(_CLASS_REF.match(name))


def canonical_name(name: str) -> str:
    """The name a custom upstream is recorded under (file paths resolved), importing nothing."""
    name = str(name).strip()
    m = _CLASS_REF.match(name)
    if name.startswith("hear:") or not m:
        return name
    target, cls_name = name.rsplit(":", 1)
    if target.endswith(".py") or "/" in target or "\\" in target:
        target = str(Path(target).expanduser().resolve())
    return f"{target}:{cls_name}"


def _file_sha256(path) -> Optional[str]:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except (OSError, TypeError):
        return None


def _distribution_version(module_name: str) -> Optional[str]:
    """The installed version of the distribution that provides top-level module ``module_name``."""
    top = module_name.split(".")[0]
    for dist in metadata.packages_distributions().get(top, []):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def code_provenance(name: str) -> Dict[str, Any]:
    """What a results file records about the code of a custom or HEAR upstream: the file that
    defines it and its sha256, and the version of the installed package it comes from (if any).
    Empty for built-in names. Imports nothing that the run has not imported already."""
    name = str(name).strip()
    if name.startswith("hear:"):
        mod_name = name[len("hear:"):]
        mod = sys.modules.get(mod_name)
        path = getattr(mod, "__file__", None)
        return {"code_file": path, "code_sha256": _file_sha256(path), "package": _distribution_version(mod_name)}
    m = _CLASS_REF.match(name)
    if not m:
        return {}
    target = m.group("target")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = str(Path(target).expanduser().resolve())
        return {"code_file": path, "code_sha256": _file_sha256(path)}
    mod = sys.modules.get(target)
    path = getattr(mod, "__file__", None)
    return {"code_file": path, "code_sha256": _file_sha256(path), "package": _distribution_version(target)}


# ---------------------------------------------------------------------------------------------
# file.py:Class and module:Class
# ---------------------------------------------------------------------------------------------
def _import_file(path: Path) -> types.ModuleType:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    mod_name = f"superb_custom_upstream_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise CustomUpstreamError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[mod_name]
        raise CustomUpstreamError(f"importing upstream file {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _upstream_classes(module) -> List[str]:
    return sorted(n for n, obj in vars(module).items()
                  if inspect.isclass(obj) and issubclass(obj, Upstream) and obj is not Upstream)


def load_class(target: str, cls_name: str, where: str):
    """The class ``cls_name`` of a Python file or an importable module."""
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise CustomUpstreamError(f"--upstream {where}: file not found: {path}")
        module = _import_file(path)
        origin = str(path)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise CustomUpstreamError(
                f"--upstream {where}: module {target!r} cannot be imported ({exc}); install it, put it on "
                "PYTHONPATH, or give a file path such as path/to/file.py:ClassName"
            ) from exc
        origin = target
    cls = getattr(module, cls_name, None)
    if cls is None:
        found = _upstream_classes(module)
        hint = f" Upstream classes there: {', '.join(found)}." if found else " It defines no Upstream subclass."
        raise CustomUpstreamError(f"--upstream {where}: {origin} has no class {cls_name!r}.{hint}")
    check_upstream_class(cls, f"{origin}:{cls_name}")
    return cls, origin


def check_upstream_class(cls, where: str) -> None:
    if not (inspect.isclass(cls) and issubclass(cls, Upstream)):
        raise CustomUpstreamError(
            f"{where} is not a subclass of superb.upstream.Upstream (got {cls!r}); subclass it and implement "
            "hidden_sizes, downsample_rate and forward(wavs, wav_lens) -> UpstreamOutput"
        )


def instantiate(cls, ckpt: Optional[Path], options: Dict[str, Any], where: str) -> Upstream:
    kwargs = dict(options)
    if ckpt is not None:
        params = inspect.signature(cls.__init__).parameters
        if "ckpt" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            raise CustomUpstreamError(f"{where} takes no checkpoint (its __init__ has no `ckpt` argument)")
        kwargs["ckpt"] = ckpt
    try:
        model = cls(**kwargs)
    except TypeError as exc:
        raise CustomUpstreamError(f"building {where} with options {options} failed: {exc}") from exc
    if not isinstance(model, Upstream):
        raise CustomUpstreamError(f"{where} built a {type(model).__name__}, not an Upstream")
    return model


def class_spec_fields(cls) -> Dict[str, Any]:
    """The :class:`UpstreamSpec` fields shared by custom and plug-in classes. The listed rate is
    the class attribute the class states; a class that sets its rate in ``__init__`` is listed with
    1, and one that states none fails when its instance is asked (naming the class)."""
    return dict(downsample_rate=stated_rate(cls) or 1, layers="?",
                formats=("whatever the class loads (optional)",), needs_weights=False, weights_optional=True)


def _class_spec(name: str, target: str, cls_name: str):
    cls, origin = load_class(target, cls_name, name)
    ref = f"{origin}:{cls_name}"
    doc = (inspect.getdoc(cls) or "custom upstream").strip().splitlines()[0]
    return UpstreamSpec(
        name=ref,
        factory=lambda ckpt, **options: instantiate(cls, ckpt, options, ref),
        description=f"{doc} ({ref})",
        family="custom",
        **class_spec_fields(cls),
    )


# ---------------------------------------------------------------------------------------------
# HEAR API


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception raised inside a plug-in, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
# ---------------------------------------------------------------------------------------------
class HearUpstream(Upstream):
    """A HEAR-API module as an upstream with one hidden state (its timestamp embeddings).

    HEAR: ``load_model(model_file_path="") -> model`` with ``model.sample_rate`` and
    ``model.timestamp_embedding_size``; ``get_timestamp_embeddings(audio [n, samples], model) ->
    (embeddings [n, frames, dim], timestamps [n, frames] in ms)``.

    * Sample rate: audio is resampled from 16 kHz to ``model.sample_rate`` when they differ.
    * Frame rate: measured once at construction from the timestamps of a 2 s probe (median step);
      ``downsample_rate`` is that step in 16 kHz samples, rounded to an integer.
    * Padding and lengths: the HEAR API takes no lengths, so padded input would leak into the
      embeddings. The batch is therefore split into groups of equal length and each group is
      embedded unpadded (one call per distinct length); ``lengths[b]`` is the number of frames the
      module returned for utterance ``b`` alone, and the outputs are zero-padded to the longest.
      The result does not depend on how utterances are batched.
    """

    def __init__(self, module_name: str, ckpt: Optional[Path] = None, **load_options):
        super().__init__()
        self.module_name = module_name
        try:
            self.hear = importlib.import_module(module_name)
        except ImportError as exc:
            raise CustomUpstreamError(
                f"--upstream hear:{module_name}: module {module_name!r} cannot be imported ({exc}); install the "
                "HEAR package or put it on PYTHONPATH"
            ) from exc
        for fn in ("load_model", "get_timestamp_embeddings"):
            if not callable(getattr(self.hear, fn, None)):
                raise CustomUpstreamError(f"hear:{module_name}: the module has no {fn}() (not a HEAR-API module)")
        try:
            model = self.hear.load_model(str(ckpt), **load_options) if ckpt is not None else \
                self.hear.load_model(**load_options)
        except Exception as exc:  # the plugin's own failure: one line naming it, not its traceback
            raise CustomUpstreamError(f"hear:{module_name}: its load_model() raised {_one_line(exc)}") from exc
        for attr in ("sample_rate", "timestamp_embedding_size"):
            if not hasattr(model, attr):
                raise CustomUpstreamError(f"hear:{module_name}: load_model() returned a model without `{attr}`")
        if isinstance(model, nn.Module):
            self.model = model  # registered: eval(), to(device) and requires_grad_ reach it
        else:
            self.__dict__["model"] = model
        self.model_rate = int(model.sample_rate)
        self.dim = int(model.timestamp_embedding_size)
        self.frame_step_ms = self._probe_step_ms()
        self.downsample_rate = max(1, int(round(self.frame_step_ms * SAMPLE_RATE / 1000.0)))

    @property
    def hidden_sizes(self) -> List[int]:
        return [self.dim]

    def _probe_step_ms(self) -> float:
        probe = torch.zeros(1, 2 * self.model_rate)
        device = next(iter(self.model.parameters()), probe).device if isinstance(self.model, nn.Module) else probe.device
        with torch.no_grad():
            emb, ts = self._embed(probe.to(device))
        ts = torch.as_tensor(ts, dtype=torch.float64).reshape(-1)
        if ts.numel() < 2:
            raise CustomUpstreamError(f"hear:{self.module_name}: a 2 s probe gave {ts.numel()} timestamps; cannot "
                                      "derive the frame rate")
        step = float(torch.median(ts[1:] - ts[:-1]))
        if step <= 0:
            raise CustomUpstreamError(f"hear:{self.module_name}: timestamps do not increase ({ts[:5].tolist()} ...)")
        if emb.shape[-1] != self.dim:
            raise CustomUpstreamError(f"hear:{self.module_name}: embeddings have {emb.shape[-1]} dims, the model "
                                      f"declares timestamp_embedding_size={self.dim}")
        return step

    def _embed(self, audio: torch.Tensor):
        try:
            return self.hear.get_timestamp_embeddings(audio, self.model)
        except Exception as exc:
            raise CustomUpstreamError(f"hear:{self.module_name}: its get_timestamp_embeddings() raised "
                                      f"{_one_line(exc)}") from exc

    def _to_model_rate(self, wav: torch.Tensor) -> torch.Tensor:
        if self.model_rate == SAMPLE_RATE:
            return wav
        import torchaudio.functional as AF

        return AF.resample(wav, SAMPLE_RATE, self.model_rate)

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        self.check_input(wavs, wav_lens)
        lens = wav_lens.tolist()
        outs: List[Optional[torch.Tensor]] = [None] * len(lens)
        for n in sorted(set(lens)):
            idx = [i for i, m in enumerate(lens) if m == n]
            audio = self._to_model_rate(wavs[idx, :n])
            emb, _ = self._embed(audio)
            emb = torch.as_tensor(emb).to(wavs.device, torch.float32)
            if emb.dim() != 3 or emb.shape[0] != len(idx) or emb.shape[2] != self.dim:
                raise RuntimeError(f"hear:{self.module_name}: get_timestamp_embeddings returned shape "
                                   f"{tuple(emb.shape)}, expected [{len(idx)}, frames, {self.dim}]")
            for j, i in enumerate(idx):
                outs[i] = emb[j]
        lengths = torch.tensor([o.shape[0] for o in outs], dtype=torch.long, device=wavs.device)
        hidden = wavs.new_zeros(len(outs), int(lengths.max()), self.dim)
        for i, o in enumerate(outs):
            hidden[i, : o.shape[0]] = o
        return UpstreamOutput([hidden], lengths)


def _hear_spec(name: str):
    module_name = name[len("hear:"):].strip()
    if not module_name or not re.match(r"^[A-Za-z_][\w.]*$", module_name):
        raise CustomUpstreamError(f"--upstream {name!r}: expected hear:<importable module name>")
    try:
        importlib.import_module(module_name)
    except ImportError as exc:
        raise CustomUpstreamError(
            f"--upstream {name}: module {module_name!r} cannot be imported ({exc}); install the HEAR package or put "
            "it on PYTHONPATH"
        ) from exc
    return UpstreamSpec(
        name=f"hear:{module_name}",
        factory=lambda ckpt, **options: HearUpstream(module_name, ckpt, **options),
        description=f"HEAR-API module {module_name} (timestamp embeddings, one hidden state)",
        downsample_rate=1,
        layers="1",
        formats=("model_file_path of the module's load_model (optional)",),
        needs_weights=False,
        family="hear",
        weights_optional=True,
    )


def custom_spec(name: str):
    """The :class:`UpstreamSpec` of a ``hear:``, ``file.py:Class`` or ``module:Class`` reference."""
    name = str(name).strip()
    if name in _SPEC_CACHE:
        return _SPEC_CACHE[name]
    if name.startswith("hear:"):
        spec = _hear_spec(name)
    else:
        m = _CLASS_REF.match(name)
        if not m:
            raise CustomUpstreamError(f"--upstream {name!r}: expected path/to/file.py:ClassName, module:ClassName "
                                      "or hear:<module>")
        spec = _class_spec(name, m.group("target"), m.group("cls"))
    _SPEC_CACHE[name] = _SPEC_CACHE[spec.name] = spec
    return spec


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def unknown_name_hint(name: str, failed_plugins: Optional[Dict[str, str]] = None) -> str:
    """Extra text for an unknown-upstream error: hub identifiers, custom syntax (the registry adds
    the plug-ins of that name that failed to load, ``failed_plugins``)."""
    parts = []
    failed = failed_plugins or {}
    if _HUB_ID.match(name.strip()) and not Path(name.strip()).exists():
        parts.append(
            f" {name!r} looks like a model-hub identifier: superb never downloads. Download the model folder on a "
            "machine with network access, copy it here, and pass --upstream <family> --upstream-ckpt <its path>."
        )
    elif not failed:
        parts.append(" Custom upstreams: path/to/file.py:ClassName, module:ClassName or hear:<module>.")
    return "".join(parts)


__all__ = [
    "CustomUpstreamError", "HearUpstream", "class_spec_fields", "custom_spec", "is_custom_name", "load_class",
    "unknown_name_hint",
]
