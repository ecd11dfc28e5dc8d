"""The Python API: ``superb.run``, ``superb.evaluate``, ``superb.export`` (for notebooks and scripts).

The same runs as the command line, without building command lines::

    import superb

    res = superb.run("fbank", "ks", overrides={"runner.total_steps": 200})   # embedded mini corpus
    res.test["accuracy"], res.output_dir

    res = superb.run(my_module, "ks")     # an in-memory torch.nn.Module following the upstream contract
    superb.evaluate(res.output_dir, upstream=my_module)

``upstream`` is a registered name (``superb list upstreams``; its weights with ``ckpt=``, a
checkpoint file or Hugging Face model folder), a ``file.py:Class`` / ``module:Class`` reference,
or a ``torch.nn.Module`` instance with ``hidden_sizes``,
``downsample_rate`` and ``forward(wavs, wav_lens) -> UpstreamOutput`` (subclass
:class:`superb.upstream.Upstream`). An in-memory module is recorded as ``in-memory:<class>`` with
its parameter count and a sha256 of its state dict; evaluating the run later needs the module
again. ``overrides`` are recipe keys, dotted (``{"optimizer.lr": 1e-3}``) or nested, checked like
``--set`` (unknown keys are errors naming them).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from .config import merge_config, nest, resolve_config

UpstreamArg = Union[str, Path, Any]

#: the feature store's default disk budget (GB) for the whole store (``--cache-max-gb``; the
#: same as ``superb.benchmark.runner.DEFAULT_CACHE``, kept here so the CLI need not import torch)
DEFAULT_CACHE_MAX_GB = 20.0


@dataclass(frozen=True)
class Results:
    """A finished run: ``results.json`` as a dict (``.data``) and its folder."""

    output_dir: Path
    data: Dict[str, Any]

    @classmethod
    def load(cls, run_dir) -> "Results":
        from superb.downstream.fileio import read_json

        run_dir = Path(run_dir)
        return cls(run_dir, read_json(run_dir / "results.json"))

    @property
    def metrics(self) -> Dict[str, Dict[str, float]]:
        return self.data["metrics"]

    @property
    def test(self) -> Dict[str, float]:
        return self.metrics.get("test", {})

    @property
    def dev(self) -> Dict[str, float]:
        return self.metrics.get("dev", {})

    @property
    def primary_metric(self) -> str:
        return self.data["primary_metric"]

    @property
    def score(self) -> float:
        """The task's primary metric on the test split."""
        return self.test[self.primary_metric]

    @property
    def layer_weights(self):
        return self.data["layer_weights"]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in self.test.items())
        return f"Results({self.data['task']} / {self.data['upstream']['name']}: test {shown}; {self.output_dir})"


def run_config(upstream: UpstreamArg, task: str, *, data=None, ckpt=None, random_init: bool = False,
               options: Optional[Mapping[str, Any]] = None, feature=None, config_file=None,
               sets: Sequence[str] = (), overrides: Optional[Mapping[str, Any]] = None,
               max_steps: Optional[int] = None, seed: Optional[int] = None, device: str = "auto",
               threads: Optional[int] = None, mini_profile: str = "default", mini_seed: int = 0,
               cache_dir=None, feature_cache: str = "auto", cache_max_gb: Optional[float] = DEFAULT_CACHE_MAX_GB,
               cache_dtype: str = "fp32", workers: Optional[int] = None, tensorboard: bool = True) -> Dict[str, Any]:
    """The full config of one run (what ``superb run`` and :func:`run` both execute).

    ``feature_cache`` (``auto``, ``frames``, ``off``), ``cache_max_gb`` and ``cache_dtype``: the
    feature store of the frozen upstream's hidden states (:mod:`superb.benchmark.feature_store`,
    in ``<cache_dir>/features``); ``workers``: input-pipeline processes
    (:mod:`superb.benchmark.pipeline`; None: chosen from the cores); ``tensorboard``: TensorBoard
    event files in ``<output>/tensorboard/`` (the config's top-level ``tensorboard`` key)."""
    from superb.downstream.tasks import get_task
    from superb.upstream import get_spec

    from .runner import check_in_memory_upstream, in_memory_name

    task = get_task(task).name  # case-insensitive, did-you-mean on typos
    cfg = resolve_config(task, data is None, config_file, list(sets), max_steps, mini_profile=mini_profile)
    if overrides:
        merge_config(cfg, nest(_flat(overrides).items(), "overrides"), "overrides")
    if isinstance(upstream, (str, Path)):
        name = get_spec(str(upstream)).name
    else:
        name = in_memory_name(check_in_memory_upstream(upstream))
        if ckpt is not None or random_init:
            raise ValueError("an in-memory upstream takes no ckpt / random_init: its weights are the module's")
    ckpt_str = None
    if ckpt is not None:
        ckpt_str = str(Path(ckpt).expanduser().resolve()) if Path(ckpt).expanduser().exists() else str(ckpt)
    out = {
        "upstream": {"name": name, "ckpt": ckpt_str, "random_init": bool(random_init), "options": dict(options or {})},
        "data": {"dir": str(Path(data).resolve()) if data is not None else None, "mini_profile": mini_profile,
                 "mini_seed": mini_seed, "cache_dir": str(cache_dir) if cache_dir is not None else None},
        "device": device,
        "threads": threads,
        "workers": workers,
        "tensorboard": tensorboard,
        "cache": {"features": feature_cache, "max_gb": cache_max_gb, "dtype": cache_dtype, "dir": None},
        **cfg,
    }
    if feature:
        out["upstream"]["feature"] = feature
    if seed is not None:
        out["runner"]["seed"] = seed
    return out


def default_output(upstream_name: str, task: str) -> str:
    """``runs/<upstream>-<task>-<time>`` (file/module upstreams get a flat, filesystem-safe name)."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", upstream_name.replace("\\", "/").split("/")[-1])
    return f"runs/{label}-{task}-{time.strftime('%Y%m%d-%H%M%S')}"


def run(upstream: UpstreamArg, task: str, *, output=None, resume: bool = False, progress: bool = True,
        overrides: Optional[Mapping[str, Any]] = None, **kwargs) -> Results:
    """Train and test one upstream on one task; returns its :class:`Results`.

    Keyword arguments are those of :func:`run_config` (``data``, ``ckpt``, ``random_init``,
    ``options``, ``feature``, ``config_file``, ``max_steps``, ``seed``, ``device``, ``threads``,
    ``mini_profile``, ``mini_seed``, ``cache_dir``, ``feature_cache``, ``cache_max_gb``, ``cache_dtype``,
    ``workers``, ``tensorboard``) plus ``overrides`` (recipe keys)."""
    from .runner import run_benchmark

    cfg = run_config(upstream, task, overrides=overrides, **kwargs)
    model = None if isinstance(upstream, (str, Path)) else upstream
    output = Path(output) if output is not None else Path(default_output(cfg["upstream"]["name"], cfg["task"]["name"]))
    results = run_benchmark(cfg, output, resume=resume, progress=progress, upstream_model=model)
    return Results(output, results)


def evaluate(run_dir, split: str = "test", *, upstream: Optional[UpstreamArg] = None,
             settings: Optional[Mapping[str, Any]] = None, device: Optional[str] = None, progress: bool = True,
             trust_run_dir: bool = False) -> Dict[str, float]:
    """Re-evaluate a run's best checkpoint (``superb evaluate``). ``upstream``: the run's upstream
    named again (a custom ``file.py:Class``) or its in-memory module; ``settings``: decoding keys
    (``{"task.decoder": "kenlm", "task.kenlm.lm_path": "lm.arpa"}``)."""
    from .runner import evaluate_run

    # the values as given (a str stays a str, a Path its str): no re-parsing as command-line YAML
    sets = {k: str(v) if isinstance(v, Path) else v for k, v in _flat(settings or {}).items()}
    named = str(upstream) if isinstance(upstream, (str, Path)) else None
    model = upstream if upstream is not None and named is None else None
    return evaluate_run(run_dir, split=split, device=device, progress=progress, upstream=named,
                        trust_run_dir=trust_run_dir, sets=sets, upstream_model=model)


def export(run_dirs: Sequence, view: str = "paper", published: bool = False, allow_mini: bool = False) -> Dict[str, Any]:
    """The leaderboard table of ``superb export --format json`` as a dict (``allow_mini``: as
    ``--allow-mini``, score mini-corpus rows against the published ones)."""
    from .export import Collection, add_published, board_json, build_board, collect

    col = collect(list(run_dirs)) if run_dirs else Collection({})
    if published:
        add_published(col)
    return board_json(build_board(col, view, allow_mini=allow_mini))


def _flat(d: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


__all__ = ["Results", "evaluate", "export", "run", "run_config"]
