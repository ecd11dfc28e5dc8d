"""The benchmark runner: frozen upstream -> featurizer -> head -> loss/metric -> results.json.

* The upstream is frozen: eval mode, no gradients; it is rebuilt from its checkpoint (or, for
  ``random-init``, from the run's seed) and never saved with the run.
* The featurizer and the head are trained with the recipe's optimiser on duration-based batches;
  one step is ``runner.accumulate`` batches. Dev is evaluated every ``runner.eval_every`` steps
  (and at the last step); the best dev checkpoint is kept and used for the final test.
* ``runner.save_every`` steps the full training state (featurizer, head, optimiser, position in
  the epoch's batch list, every RNG state, dev history, elapsed time) is written atomically to
  ``checkpoints/last.pt``. ``--resume`` continues from it; a killed run loses at most the steps
  since that save and ends with the same numbers as an uninterrupted one (CPU, fixed seed).
* CUDA is used when present. ``runner.precision`` is ``fp32`` by default, as in s3prl; ``bf16``
  or ``fp16`` (opt-in) autocast the upstream and the head on CUDA, losses stay float32, fp16
  uses a gradient scaler. CPU runs are always fp32. The precision used is in results.json.
* ``scheduler:`` sets the learning rate of every step (:mod:`superb.benchmark.schedulers`).
* ``upstream.feature`` (``--upstream-feature``) selects the hidden states that reach the
  featurizer: ``hidden_states`` (all, the SUPERB protocol), ``last_hidden_state``,
  ``hidden_state_N`` or ``layers:0,3,5-7``; recorded in results.json.
* Under ``torchrun`` (or ``superb run --nproc N``) one run trains data-parallel: each batch is
  split between the processes, featurizer + head are wrapped in DistributedDataParallel with
  losses weighted so the gradient is the one-process gradient of the whole batch, evaluation is
  sharded and gathered on rank 0, and rank 0 alone writes the run folder
  (:mod:`superb.benchmark.distributed` explains the choices).

A run folder is **data, never code**, and it belongs to one process at a time:

* The runner holds an exclusive lock on ``<output>/.superb.lock`` (``fcntl.flock``) from start
  to finish; a second ``superb run``/``evaluate`` on the same folder is refused with one line
  naming the folder and the owner's pid. Every finished file is written atomically through a
  temporary file with a unique name (:mod:`superb.downstream.fileio`).
* ``checkpoints/last.pt`` and ``checkpoints/best.pt`` hold only tensors and plain data (RNG
  states as lists and tensors) and are read back with the same safe loader as upstream
  checkpoints, in its strictest mode: a file naming any other global (``os.system`` ...) is
  refused before unpickling, with one line naming the file and the global.
* ``config.json`` is checked against the config schema (:mod:`superb.benchmark.schema`) like a
  fresh config; a custom upstream it names (``file.py:Class``, ``module:Class``) is imported only
  when the user names the same upstream again (``superb evaluate --upstream``) or passes
  ``--trust-run-dir``.
* A run that fails before training (bad config, names, data) leaves no trace that would block
  its own ``--output``; ``--resume`` rewinds ``log.jsonl`` to the saved step.

Output directory::

    config.json        resolved config (written first; marks the directory as a run)
    checkpoints/       last.pt (resumable state), best.pt (featurizer + head at the best dev step)
    predictions/       <split>/<files the task writes>
    log.jsonl          one line per logged step and per dev evaluation
    results.json       written atomically at the end
    training_curves.png  loss and dev metric against step (benchmark/plots.py)
    tensorboard/       TensorBoard event files (``tensorboard: false`` / ``--no-tensorboard``: none)

With ``optimizer.lr`` a list (a learning-rate sweep) the folder holds config.json,
checkpoints/last.pt (every rate), results.json (the best rate by dev, every rate under ``sweep``)
and training_curves.png, and one run folder per rate (``lr<rate>/``) with the files above but
last.pt (each rate's ``tensorboard/`` is in its own folder). The feature store and the input
pipeline are :mod:`superb.benchmark.feature_store` and :mod:`superb.benchmark.pipeline`.

TensorBoard (:class:`Board`): ``<run>/tensorboard/`` gets the same numbers as log.jsonl and
results.json, under the same steps - ``train/loss`` and ``train/lr`` on every logged step,
``dev/<metric>`` and the featurizer's softmax layer weights (histogram ``layer_weights``, scalars
``layer_weights/<i>``) at every dev evaluation, ``test/<metric>`` at the end (at the last step).
log.jsonl stays the record the project reads; the event files are a view for the TensorBoard UI,
so a missing ``tensorboard`` package is a warning, never an error. Events are flushed whenever
``last.pt`` is saved, so the event files hold at least everything up to the last save; a resumed
run opens its writer with ``purge_step`` = the saved step + 1, which tells TensorBoard to drop
what the killed attempt wrote after its save (those steps are trained and written again).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import random
import shutil
import sys
import time
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from superb.downstream import fileio
from superb.downstream.audio import SAMPLE_RATE
from superb.downstream.featurizer import Featurizer
from superb.downstream.heads.pooling import masked_mean
from superb.downstream.sampler import DurationBatchSampler
from superb.downstream.tasks import Example, Task, TaskContext, get_task
from superb.upstream import build_upstream
from superb.upstream.checkpoint_io import UnsafeCheckpointError, safe_load
from superb.upstream.custom import canonical_name, code_provenance, is_custom_name

from . import distributed, pipeline
from .config import ConfigError, diff_configs, merge_config, nest, parse_set
from .schedulers import Schedule
from .schema import validate_config

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_settings(device_type: str, precision: Optional[str]) -> tuple:
    """``(precision used, autocast enabled, autocast dtype)`` for a device and ``runner.precision``.

    fp32 unless the recipe opts into bf16/fp16, and then only on CUDA (s3prl trains in fp32).
    """
    used = (precision or "fp32") if device_type == "cuda" else "fp32"
    return used, used != "fp32", _AMP_DTYPES.get(used, torch.float32)


def select_layers(feature: Optional[str], num_layers: int) -> List[int]:
    """Indices of the hidden states named by ``upstream.feature`` (s3prl's ``-s`` option).

    ``hidden_states`` (or null): all; ``last_hidden_state``: the last; ``hidden_state_N``: layer N
    (negative counts from the end); ``layers:A,B,C-D``: an explicit subset, in order.
    """
    name = "hidden_states" if feature in (None, "") else str(feature).strip()
    bad = ConfigError(f"upstream.feature {feature!r}: expected hidden_states, last_hidden_state, hidden_state_N "
                      f"or layers:A,B,C-D with indices in 0..{num_layers - 1}")
    if name == "hidden_states":
        return list(range(num_layers))
    if name == "last_hidden_state":
        return [num_layers - 1]
    out: List[int] = []
    try:
        if name.startswith("hidden_state_"):
            i = int(name[len("hidden_state_"):])
            out.append(i + num_layers if i < 0 else i)
        elif name.startswith("layers:"):
            for part in name[len("layers:"):].split(","):
                lo, sep, hi = part.strip().partition("-")
                if sep and int(lo) > int(hi):
                    raise ValueError
                out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
        else:
            raise ValueError
    except ValueError:
        raise bad from None
    if not out or any(not 0 <= i < num_layers for i in out) or len(set(out)) != len(out):
        raise bad
    return out

RESULTS_VERSION = 1

#: the ``cache`` section of a config that has none (a run folder from before the feature store)
DEFAULT_CACHE = {"features": "auto", "max_gb": 20.0, "dtype": "fp32", "dir": None}


class RunDirectoryError(ValueError):
    pass


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


_DEVICE_TYPES = ("cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in _DEVICE_TYPES:
        raise ValueError(f"--device {name!r}: expected auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"--device {name}: MPS is not available on this machine")
    return device


def usable_cores() -> int:
    """The CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """CPU threads a run uses unless told: half the cores this process may use (at least 1).

    torch's default (every core) oversubscribes shared machines - on a busy 2-core machine a
    mini KS run took 208 s with it and 43 s with one thread, for identical metrics - and the
    heads SUPERB trains are small, so half the cores costs little on a quiet machine.
    """
    return max(1, usable_cores() // 2)


def set_threads(threads: Optional[int]) -> int:
    """Apply ``threads`` (None: :func:`default_threads`) to torch's intra-op pool; returns it."""
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads must be a whole number >= 1, got {threads!r}")
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(min(threads, 2))
    except RuntimeError:  # only settable before the first parallel work of the process
        pass
    return threads


def default_workers() -> int:
    """Input-pipeline processes a run uses unless told: 1 when this process may use 2 or more cores
    (audio decoding and store reads then overlap the upstream and the head), else 0."""
    return 1 if usable_cores() >= 2 else 0


def check_workers(workers: Optional[int]) -> int:
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"--workers must be a whole number >= 0, got {workers!r}")
    return workers


def _training_view(task, seed: int, examples, epoch: int):
    """What a training batch feeds the upstream (the task's crops); module-level so workers can run it."""
    return task.training_examples(examples, epoch, seed)


def sha256_of(path: Path) -> str:
    """sha256 of a checkpoint file, or of a model folder's files (sorted names and bytes)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


atomic_write_json = fileio.atomic_write_json
atomic_torch_save = fileio.atomic_torch_save

#: files of a run folder that belong to no run (the lock) - ignored when checking ``--output``
_NOT_A_RUN = {fileio.DirectoryLock.NAME}


def plain_data(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python numbers/lists (tensors kept).

    Run-folder checkpoints hold only what :func:`safe_load` admits without foreign globals.
    """
    if isinstance(obj, dict):
        return {k: plain_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain_data(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def load_run_checkpoint(path: Path) -> Dict[str, Any]:
    """A run folder's ``last.pt``/``best.pt``, loaded without running code from it."""
    try:
        obj = safe_load(path, allow_foreign=False)
    except UnsafeCheckpointError as exc:
        what = f"the global {exc.global_name!r}" if exc.global_name else "content"
        raise RunDirectoryError(
            f"refusing to load {path}: it holds {what} that a superb run never writes (a run "
            "folder's checkpoints hold only tensors and plain data); it was not written by superb "
            "or was tampered with"
        ) from None
    if not isinstance(obj, dict):
        raise RunDirectoryError(f"{path}: not a superb run checkpoint (expected a dict, found {type(obj).__name__})")
    return obj


def read_run_config(path: Path) -> Dict[str, Any]:
    config = fileio.read_json(path)
    if not isinstance(config, dict) or not all(isinstance(config.get(k), dict) for k in ("task", "upstream", "runner")):
        raise RunDirectoryError(f"{path}: not a superb run config (needs task, upstream and runner sections)")
    return config


def package_versions() -> Dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("superb", "torch", "torchaudio", "numpy", "soundfile", "jiwer", "scikit-learn", "espeakng-loader"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def sweep_rates(config: Dict[str, Any]) -> List[float]:
    """The learning rates a run trains: ``[optimizer.lr]``, or the list ``optimizer.lr`` gives."""
    lr = (config.get("optimizer") or {}).get("lr")
    return [float(v) for v in lr] if isinstance(lr, (list, tuple)) else [float(lr)] if lr is not None else []


def member_folder(lr: float) -> str:
    """The sub-folder of one learning rate of a sweep: ``lr0.0001``, ``lr1e-05``."""
    return f"lr{lr:g}"


def member_config(config: Dict[str, Any], lr: float, parent: Path) -> Dict[str, Any]:
    """The config of one learning rate of a sweep, as a single run would have it (plus its parent)."""
    out = json.loads(json.dumps(config))
    out["optimizer"]["lr"] = lr
    out["sweep_member_of"] = str(parent)
    return out


#: set once the missing ``tensorboard`` package has been reported (one warning per process)
_TENSORBOARD_WARNED = False


class Board:
    """TensorBoard event files of one run folder (``<folder>/tensorboard/``).

    Design: a thin layer over ``torch.utils.tensorboard.SummaryWriter``, imported only when a
    board is opened (a run with ``tensorboard: false`` never imports it). When the import fails
    the run warns once per process and goes on without event files (:meth:`open` returns None):
    the event files only mirror log.jsonl and results.json. ``purge_step`` is the first step a
    resumed run writes again (the saved step + 1): TensorBoard drops the earlier attempt's events
    from that step on, so no step appears twice."""

    FOLDER = "tensorboard"

    def __init__(self, writer):
        self.writer = writer

    @classmethod
    def open(cls, folder: Path, purge_step: Optional[int] = None) -> Optional["Board"]:
        global _TENSORBOARD_WARNED
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            if not _TENSORBOARD_WARNED:
                _TENSORBOARD_WARNED = True
                print(f"superb: warning: no TensorBoard event files ({exc}); pip install tensorboard, or "
                      "pass --no-tensorboard to silence this", file=sys.stderr, flush=True)
            return None
        return cls(SummaryWriter(str(Path(folder) / cls.FOLDER), purge_step=purge_step))

    def train(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def metrics(self, split: str, metrics: Dict[str, Any], step: int) -> None:
        """Every numeric metric of ``split`` as ``<split>/<name>`` (non-numbers are skipped)."""
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{split}/{name}", float(value), step)

    def layer_weights(self, weights: Sequence[float], step: int) -> None:
        self.writer.add_histogram("layer_weights", np.asarray(weights, dtype=np.float64), step)
        for i, w in enumerate(weights):
            self.writer.add_scalar(f"layer_weights/{i}", float(w), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


@dataclass
class Member:
    """One featurizer + head trained by a run: the run itself, or one learning rate of a sweep.

    The members of a sweep see the same batches and the same upstream states; each has its own
    optimiser, schedule, gradient scaler, dev history, checkpoints and torch RNG stream (``rng``,
    swapped in for its forward and backward), so each trains exactly as a run of its rate alone."""

    lr: float
    dir: Path
    config: Dict[str, Any]
    featurizer: Featurizer
    head: torch.nn.Module
    rng: Optional[Dict[str, Any]] = None
    optimizer: Any = None
    schedule: Any = None
    scaler: Any = None
    best: Optional[float] = None
    best_step: Optional[int] = None
    history: List[Dict[str, Any]] = dc_field(default_factory=list)
    running: List[float] = dc_field(default_factory=list)
    loss_sum: float = 0.0
    board: Optional[Board] = None
    #: the DistributedDataParallel module of featurizer + head (data-parallel runs only)
    ddp: Any = None

    @property
    def params(self) -> List[torch.nn.Parameter]:
        return [p for p in list(self.featurizer.parameters()) + list(self.head.parameters()) if p.requires_grad]

    def progress(self) -> Dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "history": self.history}


class _LossModule(torch.nn.Module):
    """Featurizer + head with the task's loss as ``forward``: what DistributedDataParallel wraps.

    The loss gets ``0 * sum(parameters)`` added (exactly zero in value and gradient), so every
    trainable parameter takes part in every backward - also in a process whose part of a batch is
    empty (its loss is just that zero) and for parameters a task's loss leaves out - and DDP needs
    no search for unused parameters."""

    def __init__(self, runner: "Runner", featurizer: Featurizer, head: torch.nn.Module):
        super().__init__()
        self.featurizer, self.head = featurizer, head
        self._runner = [runner]  # a list: not registered as a submodule

    def forward(self, hidden, lengths, examples):
        runner = self._runner[0]
        zero = sum((p * 0).sum() for p in self.parameters() if p.requires_grad)
        if not examples:
            return zero
        feats, _ = runner.featurize(hidden, lengths, self.featurizer)
        with torch.autocast(runner.device.type, dtype=runner.amp_dtype, enabled=runner.amp):
            return runner.task.loss(self.head, feats, lengths, examples) + zero


def _torch_rng(device: torch.device) -> Dict[str, Any]:
    out = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def _set_torch_rng(state: Dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


class Runner:
    """One benchmark run of one upstream on one task (with ``optimizer.lr`` a list: one head per rate)."""

    def __init__(self, config: Dict[str, Any], output_dir, resume: bool = False, progress: bool = True,
                 upstream_model: Optional[torch.nn.Module] = None):
        """``upstream_model``: an in-memory upstream (the Python API's ``superb.run(upstream=module)``);
        ``config["upstream"]["name"]`` is then ``in-memory:<class>`` (see :func:`in_memory_name`)."""
        self.output_dir = Path(output_dir)
        self.upstream_model = upstream_model
        self.resume = resume
        self.members: List[Member] = []
        self._lock = None
        #: this process's place in a data-parallel run (:mod:`superb.benchmark.distributed`)
        self.dist = distributed.context(config.get("device", "auto"))
        self.progress = progress and self.dist.main
        if not self.dist.main:  # rank 0 checks the folder and builds first, then hands over its config
            outcome = self.dist.broadcast(None)
            if outcome[0] == "error":
                error = {"RunDirectoryError": RunDirectoryError, "ConfigError": ConfigError}.get(outcome[1], RuntimeError)
                raise error(outcome[2])
            self.resume = outcome[2]  # rank 0's view of the folder decides
            self._build(outcome[1])
            for member in self.members:
                member.optimizer = self._build_optimizer(member)
            return
        existed = self.output_dir.exists()
        try:
            self._lock = self._take_lock()
            config = self._check_output(config, resume)
            self._build(config)  # fails before anything is written when names, weights or data are bad
            for member in self.members:  # checks the optimiser settings before anything is written
                member.optimizer = self._build_optimizer(member)
            if resume:
                self._check_resumable()
            (self.output_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.output_dir / "config.json", config)
        except BaseException as exc:
            locked = self._lock is not None
            self.close()
            leftovers = [p for p in self.output_dir.iterdir() if p.name not in _NOT_A_RUN] if self.output_dir.is_dir() else []
            if locked and not leftovers:  # nothing of a run was written: leave the folder as it was
                (self.output_dir / fileio.DirectoryLock.NAME).unlink(missing_ok=True)
                if not existed:
                    shutil.rmtree(self.output_dir, ignore_errors=True)
            self.dist.broadcast(("error", type(exc).__name__, str(exc)))
            raise
        self.dist.broadcast(("ok", config, resume))

    def _take_lock(self) -> fileio.DirectoryLock:
        try:
            return fileio.DirectoryLock(self.output_dir).acquire()
        except fileio.LockedError as exc:
            raise RunDirectoryError(f"output directory {exc}; wait for it or choose another --output") from None

    def close(self) -> None:
        """Release the run folder's lock, close the TensorBoard writers and drop the
        DistributedDataParallel wrappers (``run()`` and ``evaluate_run`` do this themselves). The
        wrappers hold the process group: dropped here, they are gone before the group is destroyed
        (:func:`superb.benchmark.distributed.shutdown`), not freed after it at interpreter exit."""
        self._close_boards()
        for m in getattr(self, "members", None) or []:
            m.ddp = None
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()
            self._lock = None

    def _open_boards(self, purge_step: Optional[int]) -> None:
        """A :class:`Board` per member (``tensorboard: false``: none)."""
        if self.config.get("tensorboard") is False:
            return
        for m in self.members:
            m.board = Board.open(m.dir, purge_step)

    def _close_boards(self) -> None:
        for m in getattr(self, "members", None) or []:
            if m.board is not None:
                m.board.close()
                m.board = None

    @classmethod
    def for_evaluation(cls, run_dir, device: Optional[str] = None, progress: bool = True,
                       upstream: Optional[str] = None, trust_run_dir: bool = False,
                       sets=(), upstream_model: Optional[torch.nn.Module] = None) -> "Runner":
        """Rebuild a finished run (config, data, upstream, best featurizer and head) read-only.

        The run folder is data: a custom upstream (``file.py:Class``, ``module:Class``) that its
        ``config.json`` names is imported only when ``upstream`` names it again or
        ``trust_run_dir`` is set. The caller releases the folder's lock with :meth:`close`.
        ``sets`` (``task.decoder=kenlm`` style) may change only the task's ``decode_settings``:
        anything else would evaluate a model under another protocol than it was trained with.
        """
        run_dir = Path(run_dir)
        cfg_path, best_path = run_dir / "config.json", run_dir / "checkpoints" / "best.pt"
        if not cfg_path.is_file():
            raise RunDirectoryError(f"{run_dir} is not a superb run directory (no config.json)")
        if not best_path.is_file() and (cfg_path.is_file() and len(sweep_rates(read_run_config(cfg_path))) > 1):
            rates = sweep_rates(read_run_config(cfg_path))
            raise RunDirectoryError(f"{run_dir} is a learning-rate sweep; evaluate one of its rates: "
                                    + ", ".join(str(run_dir / member_folder(lr)) for lr in rates))
        if not best_path.is_file():
            raise RunDirectoryError(f"{run_dir}: no checkpoints/best.pt yet (the run has not evaluated dev)")
        config = read_run_config(cfg_path)
        if sets:
            apply_decode_sets(config, sets, cfg_path)
        check_run_upstream(config, cfg_path, upstream, trust_run_dir, upstream_model,
                           "superb.evaluate(run_dir, upstream=module)")
        if device:
            config["device"] = device
        runner = cls.__new__(cls)
        runner.output_dir, runner.progress, runner.resume = run_dir, progress, True
        runner.dist = distributed.SINGLE  # evaluation runs in one process
        runner.upstream_model = upstream_model
        runner._lock = runner._take_lock()
        try:
            runner._build(config)
            runner.load_best()
        except BaseException:
            runner.close()
            raise
        return runner

    def _build(self, config: Dict[str, Any]) -> None:
        task_cls = get_task(config["task"]["name"])
        validate_config(config, trainable=task_cls.trainable)
        self.config = config
        dist = getattr(self, "dist", distributed.SINGLE)
        if dist.active and not (task_cls.trainable and task_cls.loss_mean_over == "utterances"):
            raise ConfigError(
                f"task {task_cls.name}: a data-parallel run ({dist.world} processes) weights each process's loss by "
                "its share of the batch, which needs a task whose loss is a mean over utterances "
                f"(Task.loss_mean_over = 'utterances'); {task_cls.name} declares "
                f"{task_cls.loss_mean_over if task_cls.trainable else 'no training'}: run it in one process")
        self.device = pick_device(distributed.process_device(config.get("device", "auto"), dist))
        threads = config.get("threads")
        if threads is None and dist.active:  # the default share of the cores, split between this node's processes
            threads = max(1, default_threads() // dist.local_world)
        self.threads = set_threads(threads)
        self.workers = check_workers(config.get("workers"))
        # autocast on CUDA only: CPU runs are fp32 whatever the recipe says (recorded as such)
        self.precision, self.amp, self.amp_dtype = autocast_settings(self.device.type, config["runner"].get("precision"))
        self.seed = int(config["runner"]["seed"])
        seed_everything(self.seed)
        self.upstream = self._build_upstream()
        self.layer_ids = select_layers(config["upstream"].get("feature"), len(self.upstream.hidden_sizes))
        #: feature sizes of the hidden states that reach the featurizer (after upstream.feature)
        self.hidden_sizes = [self.upstream.hidden_sizes[i] for i in self.layer_ids]
        # everything the task may know of this run (the seam between runner and task)
        context = TaskContext(downsample_rate=int(self.upstream.downsample_rate), hidden_sizes=tuple(self.hidden_sizes),
                              output_dir=self.output_dir, upstream_states=self.upstream_states,
                              eval_max_seconds=float(config["batch"]["eval_max_seconds"]),
                              layer=config["featurizer"].get("layer"))
        self.task: Task = task_cls(config["task"], context)
        self.data_dir = self._data_dir()
        self.splits = self.task.prepare(self.data_dir)
        self._weights, self._crops_uncached = None, 0
        self._cache_counts = {"hits": 0, "misses": 0, "corrupt": 0}
        self.store, self.cache_kind = self._open_store()
        self.featurizer: Optional[Featurizer] = None
        self.head: Optional[torch.nn.Module] = None
        self.members = []
        if task_cls.trainable:  # QbE trains nothing: no featurizer, no head
            rates = sweep_rates(config)
            start = _torch_rng(self.device)
            for lr in rates:  # every rate starts from the same initialisation and RNG state
                _set_torch_rng(start, self.device)
                featurizer = Featurizer(self.hidden_sizes, config["featurizer"]["layer"],
                                        config["featurizer"]["layer_norm"]).to(self.device)
                head = self.task.build_head(featurizer.output_dim, self.upstream.downsample_rate).to(self.device)
                if len(rates) == 1:
                    self.members.append(Member(lr, self.output_dir, config, featurizer, head))
                else:
                    self.members.append(Member(lr, self.output_dir / member_folder(lr),
                                               member_config(config, lr, self.output_dir), featurizer, head,
                                               rng=_torch_rng(self.device)))
            self.featurizer, self.head = self.members[0].featurizer, self.members[0].head

    def load_best(self, member: Optional[Member] = None) -> Dict[str, Any]:
        member = member or self.members[0]
        best = load_run_checkpoint(member.dir / "checkpoints" / "best.pt")
        member.featurizer.load_state_dict(best["featurizer"])
        member.head.load_state_dict(best["head"])
        return best

    # -- set-up ---------------------------------------------------------------------------------
    def _check_output(self, config: Dict[str, Any], resume: bool) -> Dict[str, Any]:
        """The config to run with; refuses a directory holding another run (nothing is written)."""
        out = self.output_dir
        cfg_path = out / "config.json"
        if resume:
            if not cfg_path.is_file():
                raise RunDirectoryError(f"--resume: {out} holds no run to resume (no config.json)")
            saved = read_run_config(cfg_path)
            allowed = {"runner.total_steps", "device", "threads", "workers", "tensorboard", "cache.features",
                       "cache.max_gb", "cache.dir"}
            # runs from before the feature store ran uncached: the store changes no number beyond
            # float rounding, so they resume with it (its dtype stays fp32, the exact one)
            for c in (saved, config):
                c.setdefault("cache", dict(DEFAULT_CACHE))
            diff = [k for k in diff_configs(saved, config) if k not in allowed]
            if diff:
                raise RunDirectoryError(
                    f"--resume: the run in {out} was started with a different config; differing keys: "
                    f"{', '.join(diff)}"
                )
            saved["runner"]["total_steps"] = config["runner"]["total_steps"]
            saved["device"] = config.get("device", "auto")
            saved["threads"] = config.get("threads")
            saved["workers"] = config.get("workers")
            saved["tensorboard"] = config.get("tensorboard", True)
            for key in ("features", "max_gb", "dir"):
                if key in (config.get("cache") or {}):
                    saved["cache"][key] = config["cache"][key]
            return saved
        if out.exists() and any(p.name not in _NOT_A_RUN for p in out.iterdir()):
            if cfg_path.is_file():
                try:
                    other = read_run_config(cfg_path)
                    what = f" (task {other['task'].get('name')}, upstream {other['upstream'].get('name')})"
                except ValueError as exc:
                    what = f" ({exc})"
                raise RunDirectoryError(
                    f"output directory {out} holds another run{what}; pass --resume to continue it or "
                    "choose another --output"
                )
            raise RunDirectoryError(f"output directory {out} is not empty and holds no superb run; choose another --output")
        return config

    def _check_resumable(self) -> None:
        last = self.output_dir / "checkpoints" / "last.pt"
        if self.task.trainable and not last.is_file() and not (self.output_dir / "results.json").is_file():
            every = self.config["runner"].get("save_every")
            raise RunDirectoryError(
                f"--resume: {last} does not exist: the run in {self.output_dir} stopped before its first save "
                f"(runner.save_every={every}); delete {self.output_dir} to start over"
            )

    def _build_optimizer(self, member: Member) -> torch.optim.Optimizer:
        opt_cfg = dict(self.config["optimizer"], lr=member.lr)
        opt_cls = getattr(torch.optim, opt_cfg.pop("name"))
        try:
            return opt_cls(member.params, **opt_cfg)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"optimizer {self.config['optimizer']}: {exc}") from None

    def _data_dir(self) -> Path:
        data = self.config["data"]
        if data.get("dir"):
            return Path(data["dir"])
        return self.task.mini_data(data.get("mini_profile", "default"), data.get("cache_dir"), int(data.get("mini_seed", 0)))

    def _build_upstream(self):
        up = self.config["upstream"]
        if self.upstream_model is not None:
            model = check_in_memory_upstream(self.upstream_model)
            model.eval().requires_grad_(False).to(self.device)
            return model
        # random-init weights are a function of the run's seed, so evaluate/resume rebuild them
        torch.manual_seed(self.seed)
        model = build_upstream(up["name"], ckpt=up.get("ckpt"), random_init=bool(up.get("random_init")),
                               **(up.get("options") or {}))
        model.eval().requires_grad_(False).to(self.device)
        seed_everything(self.seed)
        return model

    # -- feature store --------------------------------------------------------------------------
    def weights_identity(self) -> Dict[str, Any]:
        """What the upstream's weights are: ``{"weights": ..., "digest": sha256 or None}`` (computed once)."""
        if getattr(self, "_weights", None) is None:
            up = self.config["upstream"]
            ckpt = up.get("ckpt")
            n_params = sum(p.numel() for p in self.upstream.parameters())
            if self.upstream_model is not None:
                self._weights = {"weights": "in-memory module", "digest": state_sha256(self.upstream)}
            elif ckpt:
                self._weights = {"weights": "pretrained", "digest": sha256_of(Path(ckpt))}
            elif up.get("random_init"):
                self._weights = {"weights": f"random-init (seed {self.seed})", "digest": None}
            elif n_params == 0:
                self._weights = {"weights": "none (parameter-free)", "digest": None}
            else:  # a custom / HEAR module that brings its own weights, or its constructor's initialisation
                self._weights = {"weights": "the module's own (no checkpoint given)", "digest": state_sha256(self.upstream)}
        return self._weights

    def _open_store(self):
        """``(namespace, kind)`` of this run's feature store entries, or ``(None, reason)``.

        ``kind`` is ``time_mean`` (each selected layer's mean over the valid frames, for tasks with
        a linear pooled head and a featurizer without per-layer normalisation: the same model
        exactly) or ``frames`` (every valid frame of each selected layer)."""
        cache = self.config.get("cache") or {}
        mode = cache.get("features") or "auto"
        if mode == "off":
            return None, "--feature-cache off"
        from superb.upstream.custom import code_provenance

        from .feature_store import FeatureStore, default_store_dir

        pooled = (mode == "auto" and self.task.trainable and self.task.linear_pooled_head
                  and not self.config["featurizer"].get("layer_norm"))
        kind = "time_mean" if pooled else "frames"
        up = self.config["upstream"]
        identity = {
            "upstream": up["name"], **self.weights_identity(), **code_provenance(up["name"]),
            "options": up.get("options") or {}, "layers": self.layer_ids, "kind": kind,
            "precision": self.precision, "device_type": self.device.type,
            "superb": package_versions().get("superb", "unknown"),
        }
        root = Path(cache["dir"]) if cache.get("dir") else default_store_dir(self.config["data"].get("cache_dir"))
        max_gb = cache.get("max_gb")
        store = FeatureStore(root, max_bytes=int(float(max_gb) * 1e9) if max_gb else None)
        return store.namespace(plain_data(identity), dtype=cache.get("dtype") or "fp32"), kind

    def cache_report(self) -> Dict[str, Any]:
        """What results.json records of the feature store."""
        if self.store is None:
            return {"used": False, "reason": self.cache_kind}
        stats = {**self._cache_counts, "writes": self.store.writes, "refused": self.store.refused,
                 "crops_uncached": self._crops_uncached}
        stats.update(getattr(self, "_cache_totals", None) or {})  # a data-parallel run: all processes'
        return {"used": True, "kind": self.cache_kind, "dtype": self.store.dtype, "dir": str(self.store.dir),
                "key": self.store.key, **stats}

    # -- forward --------------------------------------------------------------------------------
    def _reader(self, examples: Sequence[Example], train: bool = False) -> pipeline.BatchReader:
        view = functools.partial(_training_view, self.task, self.seed) if train else None
        return pipeline.BatchReader(examples, view, self.store)

    def _batches(self, reader: pipeline.BatchReader, keys):
        return pipeline.batches(reader, keys, self.workers, self.seed, pin_memory=self.device.type == "cuda")

    def features(self, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor]:
        """Featurizer output ``[B, T, D]`` and exact frame lengths for a batch of examples."""
        return self.featurize(*self.upstream_states(examples))

    def featurize(self, hidden: List[torch.Tensor], lengths: torch.Tensor,
                  featurizer: Optional[Featurizer] = None) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            feats = (featurizer or self.featurizer)(hidden)
        return feats, lengths

    def upstream_states(self, examples: Sequence[Example]) -> tuple[List[torch.Tensor], torch.Tensor]:
        """Every selected hidden state (float32 ``[B, T, D]``; ``[B, 1, D]`` time-means when the
        store holds those) and exact frame lengths for a batch of examples."""
        return self.states(self._reader(()).load(list(examples)))

    def states(self, item: pipeline.LoadedBatch) -> tuple[List[torch.Tensor], torch.Tensor]:
        """The hidden states of a loaded batch: stored ones as read, the rest computed (and stored)."""
        misses, n = item.misses, len(item.examples)
        if self.store is not None:  # counted here: a worker's counters stay in the worker
            stored = sum(k is not None for k in item.keys)
            self._cache_counts["misses"] += sum(item.keys[i] is not None for i in misses)
            self._cache_counts["hits"] += stored - sum(item.keys[i] is not None for i in misses)
            self._cache_counts["corrupt"] += item.corrupt
        computed: List[List[torch.Tensor]] = []
        if misses:
            hidden, lengths = self._forward(item.wavs, item.wav_lens, [item.examples[i] for i in misses])
            if self.cache_kind == "time_mean":
                hidden = [masked_mean(h, lengths).unsqueeze(1) for h in hidden]
                lengths = torch.ones_like(lengths)
            if self.store is not None:
                for j, i in enumerate(misses):
                    entry = [h[j, : int(lengths[j])] if self.cache_kind == "frames" else h[j, 0] for h in hidden]
                    if item.keys[i] is not None:
                        self.store.put(item.keys[i], [t.detach().to("cpu") for t in entry])
                    else:
                        self._crops_uncached += 1
                    computed.append(entry)
            if len(misses) == n:
                return hidden, lengths
        entries: List[Optional[List[torch.Tensor]]] = list(item.cached)
        for j, i in enumerate(misses):
            entries[i] = computed[j]
        entries = [[torch.as_tensor(t).to(self.device, non_blocking=True) for t in e] for e in entries]
        layers = range(len(entries[0]))
        if self.cache_kind == "time_mean":
            return ([torch.stack([e[l] for e in entries]).unsqueeze(1) for l in layers],
                    torch.ones(n, dtype=torch.long, device=self.device))
        lengths = torch.tensor([e[0].shape[0] for e in entries], dtype=torch.long, device=self.device)
        return ([torch.nn.utils.rnn.pad_sequence([e[l] for e in entries], batch_first=True) for l in layers],
                lengths)

    def _forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor,
                 examples: Sequence[Example]) -> tuple[List[torch.Tensor], torch.Tensor]:
        """Every selected hidden state of the frozen upstream (float32) and exact frame lengths."""
        wavs = wavs.to(self.device, non_blocking=True)
        wav_lens = wav_lens.to(self.device, non_blocking=True)
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            out = self.upstream(wavs, wav_lens)
        if len(out.hidden_states) != len(self.upstream.hidden_sizes):
            raise RuntimeError(f"upstream {self.config['upstream']['name']} returned {len(out.hidden_states)} hidden "
                               f"states, its hidden_sizes declare {len(self.upstream.hidden_sizes)}")
        hidden = [out.hidden_states[i].float() for i in self.layer_ids]
        lengths = out.lengths.to(self.device)
        t = {h.shape[1] for h in hidden}
        if len(t) != 1 or int(lengths.max()) > hidden[0].shape[1] or int(lengths.min()) <= 0:
            raise RuntimeError(
                f"upstream {self.config['upstream']['name']} returned inconsistent frames: hidden-state "
                f"lengths {sorted(t)}, valid lengths {lengths.tolist()} (batch {[e.id for e in examples][:4]}...)"
            )
        return hidden, lengths

    def _sampler(self, examples: Sequence[Example], train: bool) -> DurationBatchSampler:
        b = self.config["batch"]
        seconds = b["max_seconds"] if train else b["eval_max_seconds"]
        if train and b.get("max_frames"):  # a budget in upstream frames (fairseq's max_tokens)
            seconds = int(b["max_frames"]) * self.upstream.downsample_rate / SAMPLE_RATE
        return DurationBatchSampler(
            [e.audio.num_samples for e in examples], int(float(seconds) * SAMPLE_RATE), shuffle=train,
            seed=self.seed, class_labels=self.task.class_labels(examples) if train else None,
            ids=[e.id for e in examples],
        )

    def evaluate(self, split: str) -> tuple[Dict[str, float], List[Any]]:
        """Metrics and predictions of the run's featurizer and head on ``split``."""
        return self.evaluate_members(split, [(self.featurizer, self.head)])[0]

    def evaluate_members(self, split: str, models) -> List[tuple[Dict[str, float], List[Any]]]:
        """``evaluate`` for several ``(featurizer, head)`` pairs in one pass of the upstream states.

        In a data-parallel run each process predicts its share of the batches (round-robin), rank 0
        gathers and scores the predictions and every process gets the metrics; the predictions
        are rank 0's to write (None in the other processes)."""
        examples = self.splits[split]
        predictions: List[List[Any]] = [[None] * len(examples) for _ in models]
        order = self._sampler(examples, train=False).epoch_batches()
        mine: List[int] = []
        for featurizer, head in models:
            featurizer.eval()
            head.eval()
        with torch.no_grad():
            for item in self._batches(self._reader(examples), pipeline.EvalKeys(order, self.dist.rank, self.dist.world)):
                mine.extend(order[item.position])
                hidden, lengths = self.states(item)
                for k, (featurizer, head) in enumerate(models):
                    feats, _ = self.featurize(hidden, lengths, featurizer)
                    with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                        preds = self.task.predict(head, feats, lengths, item.examples)
                    for i, p in zip(order[item.position], preds):
                        predictions[k][i] = p
        for featurizer, head in models:
            featurizer.train()
            head.train()
        if not self.dist.active:
            return [(self.task.score(examples, preds), preds) for preds in predictions]
        parts = self.dist.gather([(i, [preds[i] for preds in predictions]) for i in mine])
        scored = None
        if self.dist.main:
            for part in parts:
                for i, per_model in part:
                    for k, p in enumerate(per_model):
                        predictions[k][i] = p
            scored = [plain_data(self.task.score(examples, preds)) for preds in predictions]
        scored = self.dist.broadcast(scored)
        return [(metrics, preds if self.dist.main else None) for metrics, preds in zip(scored, predictions)]

    # -- state ----------------------------------------------------------------------------------
    def _rng_state(self) -> Dict[str, Any]:
        """Every RNG state as plain data and tensors (no numpy objects: see :func:`load_run_checkpoint`)."""
        version, internal, gauss = random.getstate()
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state = {"python": [version, list(internal), gauss],
                 "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                           "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
                 "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def _set_rng_state(self, state: Dict[str, Any]) -> None:
        version, internal, gauss = state["python"]
        random.setstate((int(version), tuple(int(v) for v in internal), gauss))
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def _after_step(self, step: int) -> None:
        """Hook called after every optimiser step (tests use it to simulate a kill)."""

    # -- training -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _member_rng(self, member: Member):
        """Member ``member``'s own torch RNG stream for its forward/backward (sweeps only)."""
        if member.rng is None:
            yield
            return
        outside = _torch_rng(self.device)
        _set_torch_rng(member.rng, self.device)
        try:
            yield
        finally:
            member.rng = _torch_rng(self.device)
            _set_torch_rng(outside, self.device)

    def _last_checkpoint(self, state: Dict[str, Any]) -> Dict[str, Any]:
        """``checkpoints/last.pt``: one file for all members, so a kill never leaves them apart."""
        rng = self._rng_state()
        if len(self.members) == 1:
            m = self.members[0]
            return {"featurizer": m.featurizer.state_dict(), "head": m.head.state_dict(),
                    "optimizer": m.optimizer.state_dict(), "state": plain_data({**state, **m.progress()}),
                    "rng": rng, "scaler": plain_data(m.scaler.state_dict())}
        return {"members": [{"lr": m.lr, "featurizer": m.featurizer.state_dict(), "head": m.head.state_dict(),
                             "optimizer": m.optimizer.state_dict(), "scaler": plain_data(m.scaler.state_dict()),
                             "torch_rng": m.rng, **plain_data(m.progress())} for m in self.members],
                "state": plain_data(state), "rng": rng}

    def _load_last(self, saved: Dict[str, Any]) -> Dict[str, Any]:
        """Restore every member from ``last.pt``; returns the shared state (step, epoch, batch, elapsed)."""
        if len(self.members) == 1:
            state = dict(saved["state"])
            parts = [{**saved, **{k: state.pop(k) for k in ("best", "best_step", "history")}}]
        else:
            parts, state = saved["members"], dict(saved["state"])
            if [float(p["lr"]) for p in parts] != self.rates:
                raise ValueError(f"it holds the rates {[p['lr'] for p in parts]}, the config {self.rates}")
        for m, part in zip(self.members, parts):
            m.featurizer.load_state_dict(part["featurizer"])
            m.head.load_state_dict(part["head"])
            m.optimizer.load_state_dict(part["optimizer"])
            if part.get("scaler"):
                m.scaler.load_state_dict(part["scaler"])
            m.best, m.best_step, m.history = part["best"], part["best_step"], list(part["history"])
            if part.get("torch_rng") is not None:
                m.rng = part["torch_rng"]
        self._set_rng_state(saved["rng"])
        ranks = saved.get("ranks")
        if self.dist.active and isinstance(ranks, list) and len(ranks) == self.dist.world:
            # the same number of processes: each continues its own streams (else rank 0's, shared)
            self._set_rng_state(ranks[self.dist.rank]["rng"])
            for m, rng in zip(self.members, ranks[self.dist.rank]["members"]):
                if rng is not None:
                    m.rng = rng
        return state

    @property
    def rates(self) -> List[float]:
        return [m.lr for m in self.members]

    def train(self) -> Dict[str, Any]:
        """Train every member; returns the shared state (step, epoch, batch, elapsed)."""
        rc = self.config["runner"]
        total, accumulate = int(rc["total_steps"]), int(rc["accumulate"])
        sched = self.config.get("scheduler") or {"name": "constant", "warmup_steps": 0}
        members = self.members
        for m in members:
            m.optimizer = m.optimizer if m.optimizer is not None else self._build_optimizer(m)
            m.schedule = Schedule(sched["name"], sched.get("warmup_steps", 0), total, m.lr)
            m.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        train = self.splits["train"]
        sampler = self._sampler(train, train=True)
        state = {"step": 0, "epoch": 0, "batch": 0, "elapsed": 0.0}
        ckpt_dir = self.output_dir / "checkpoints"
        last_path = ckpt_dir / "last.pt"
        main = self.dist.main  # only rank 0 of a data-parallel run touches the run folder
        if main:
            for m in members:
                (m.dir / "checkpoints").mkdir(parents=True, exist_ok=True)
                fileio.remove_stale_tmp(m.dir)
                fileio.remove_stale_tmp(m.dir / "checkpoints")
            fileio.remove_stale_tmp(ckpt_dir)
        if self.resume and last_path.is_file():
            saved = load_run_checkpoint(last_path)
            try:
                state = self._load_last(saved)
            except (KeyError, TypeError, RuntimeError, ValueError) as exc:
                raise RunDirectoryError(f"{last_path}: not a resumable superb checkpoint ({type(exc).__name__}: {exc})") from None
            if main:
                for m in members:
                    fileio.rewind_log(m.dir / "log.jsonl", int(state["step"]))
                self._open_boards(purge_step=int(state["step"]) + 1)
        elif main:
            for m in members:
                if (m.dir / "log.jsonl").exists():
                    (m.dir / "log.jsonl").unlink()  # a fresh start (no save yet) keeps no lines of an earlier attempt
                shutil.rmtree(m.dir / Board.FOLDER, ignore_errors=True)  # nor events
            self._open_boards(purge_step=None)
        self.dist.barrier()  # every process has read last.pt before rank 0 writes the next one
        for m in members:
            m.ddp = self._data_parallel(m) if self.dist.active else None
        start_time = time.time() - state["elapsed"]
        for m in members:
            m.featurizer.train()
            m.head.train()
        primary = self.task.primary_metric
        sweep = len(members) > 1
        # a terminal gets a tqdm bar; a log file (CI, SLURM, nohup) gets one plain line per log_every steps
        interactive = self.progress and sys.stderr.isatty()
        bar = tqdm(total=total, initial=state["step"], disable=not interactive, desc=f"{self.task.name}",
                   dynamic_ncols=True, file=sys.stderr)
        self._saved_step = int(state["step"]) if self.resume and last_path.is_file() else None
        first_step, first_time = int(state["step"]), time.time()
        keys = pipeline.TrainingKeys(sampler, state["epoch"], state["batch"])
        if self.dist.active:
            keys = pipeline.ShardKeys(keys, [e.audio.num_samples for e in train], self.dist.rank, self.dist.world)
        stream = self._batches(self._reader(train, train=True), keys)

        def dev_note() -> Dict[str, str]:
            done = [m for m in members if m.history]
            if not done:
                return {}
            best = self._best_member(done)
            rate = f" (lr {best.lr:g})" if sweep else ""
            return {f"dev_{primary}": f"{best.history[-1][primary]:.2f}{rate}"}

        with self._stop_report(state, last_path, rc, bar), contextlib.closing(stream):
            while state["step"] < total:
                for m in members:
                    m.optimizer.zero_grad(set_to_none=True)
                    m.loss_sum = 0.0
                for k in range(accumulate):
                    item = next(stream)
                    state["epoch"], state["batch"] = item.epoch, item.position + 1
                    exs = item.examples
                    if self.dist.active:
                        self._parallel_backward(members, item, sampler, accumulate, last=k == accumulate - 1,
                                                step=state["step"] + 1)
                        continue
                    hidden, lengths = self.states(item)  # once for every member
                    for m in members:
                        with self._member_rng(m):
                            feats, _ = self.featurize(hidden, lengths, m.featurizer)
                            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                                loss = self.task.loss(m.head, feats, lengths, exs)
                            if not torch.isfinite(loss):
                                rate = f" with lr {m.lr:g}" if sweep else ""
                                raise FloatingPointError(f"loss is {loss.item()} at step {state['step'] + 1}{rate} "
                                                         f"(batch {[e.id for e in exs][:4]})")
                            m.scaler.scale(loss.float() / accumulate).backward()
                        m.loss_sum += loss.item() / accumulate
                if self.dist.active:  # the whole batch's loss: the sum of the processes' weighted parts
                    for m, total_loss in zip(members, self.dist.sum([m.loss_sum for m in members], self.device)):
                        m.loss_sum = total_loss
                grad_clip = rc.get("grad_clip")
                lrs = []
                for m in members:
                    if grad_clip:
                        m.scaler.unscale_(m.optimizer)
                        torch.nn.utils.clip_grad_norm_(m.params, float(grad_clip))
                    lrs.append(m.schedule.apply(m.optimizer, state["step"]))
                    m.scaler.step(m.optimizer)
                    m.scaler.update()
                    m.running.append(m.loss_sum)
                state["step"] += 1
                step = state["step"]
                bar.update(1)
                if main and (step % int(rc["log_every"]) == 0 or step == total):
                    wall = round(time.time() - start_time, 1)
                    for m, lr in zip(members, lrs):
                        fileio.append_line(m.dir / "log.jsonl", json.dumps(
                            {"step": step, "loss": float(np.mean(m.running)), "lr": lr, "wall_s": wall}))
                        if m.board is not None:
                            m.board.train(step, float(np.mean(m.running)), lr)
                    loss_text = "/".join(f"{np.mean(m.running):.3f}" for m in members)
                    if self.progress and not interactive:
                        per_step = (time.time() - first_time) / max(step - first_step, 1)
                        dev = "".join(f", dev {primary} {v}" for v in dev_note().values())
                        print(f"superb: step {step}/{total}, loss {loss_text}{dev}, {per_step:.2f} s/step, "
                              f"about {per_step * (total - step) / 60:.0f} min left", file=sys.stderr, flush=True)
                    bar.set_postfix(loss=loss_text, **dev_note())
                if step % int(rc["log_every"]) == 0 or step == total:
                    for m in members:
                        m.running = []
                if step % int(rc["eval_every"]) == 0 or step == total:
                    scored = self.evaluate_members("dev", [(m.featurizer, m.head) for m in members])
                    for m, (metrics, _) in zip(members, scored):
                        metrics = plain_data(metrics)
                        m.history.append({"step": step, **metrics})
                        if main:
                            fileio.append_line(m.dir / "log.jsonl", json.dumps(
                                {"step": step, "dev": metrics, "wall_s": round(time.time() - start_time, 1)}))
                        if m.board is not None:
                            m.board.metrics("dev", metrics, step)
                            m.board.layer_weights(m.featurizer.layer_weights(), step)
                        if self.task.is_better(metrics[primary], m.best):
                            m.best, m.best_step = metrics[primary], step
                            if main:
                                atomic_torch_save({"featurizer": m.featurizer.state_dict(), "head": m.head.state_dict(),
                                                   "step": step, "dev": metrics}, m.dir / "checkpoints" / "best.pt")
                    bar.set_postfix(loss="/".join(f"{m.loss_sum:.3f}" for m in members), **dev_note())
                if step % int(rc["save_every"]) == 0 or step == total:
                    state["elapsed"] = time.time() - start_time
                    ranks = self.dist.gather(self._process_rng()) if self.dist.active else None
                    if main:
                        saved = self._last_checkpoint(state)
                        if ranks is not None:  # each process's RNG streams (dropout draws on its part)
                            saved["ranks"] = ranks
                        atomic_torch_save(saved, last_path)
                    self._saved_step = step
                    for m in members:  # the event files hold at least everything up to the save
                        if m.board is not None:
                            m.board.flush()
                self._after_step(step)
        bar.close()
        state["elapsed"] = time.time() - start_time
        self.dist.barrier()  # best.pt is complete before any process reads it
        return state

    # -- data parallel (superb.benchmark.distributed) -------------------------------------------
    def _data_parallel(self, member: Member):
        """``member``'s featurizer + head as one DistributedDataParallel module computing the loss."""
        from torch.nn.parallel import DistributedDataParallel

        import inspect

        module = _LossModule(self, member.featurizer, member.head)
        ids = [self.device.index] if self.device.type == "cuda" else None
        # no buffer syncing in forward: the heads of the tasks it trains keep no running statistics
        # (the keyword is forward_sync_buffers from torch 2.14 on, broadcast_buffers before)
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        buffers = {"forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers": False}
        return DistributedDataParallel(module, device_ids=ids, **buffers)

    def _global_batch_size(self, sampler: DurationBatchSampler, epoch: int, position: int) -> int:
        """Utterances in batch ``position`` of ``epoch`` (all processes' parts together)."""
        cached = getattr(self, "_epoch_sizes", None)
        if cached is None or cached[0] != epoch:
            cached = self._epoch_sizes = (epoch, [len(b) for b in sampler.epoch_batches(epoch)])
        return cached[1][position]

    def _parallel_backward(self, members: Sequence[Member], item: pipeline.LoadedBatch, sampler, accumulate: int,
                           last: bool, step: int) -> None:
        """Forward and backward of this process's part of one batch, for every member: its mean
        loss times ``world * n_part / n_batch`` (DDP then averages: the whole batch's gradient);
        gradients are reduced on the ``last`` batch of the step only."""
        exs = item.examples
        n = self._global_batch_size(sampler, item.epoch, item.position)
        share = len(exs) / n
        hidden, lengths = self.states(item) if exs else (None, None)
        sweep = len(members) > 1
        for m in members:
            with self._member_rng(m), (contextlib.nullcontext() if last else m.ddp.no_sync()):
                loss = m.ddp(hidden, lengths, exs)
                if exs and not torch.isfinite(loss):
                    rate = f" with lr {m.lr:g}" if sweep else ""
                    raise FloatingPointError(f"loss is {loss.item()} at step {step}{rate} (process {self.dist.rank}, "
                                             f"batch {[e.id for e in exs][:4]})")
                m.scaler.scale(loss.float() * (share * self.dist.world / accumulate)).backward()
            m.loss_sum += loss.item() * share / accumulate

    def _process_rng(self) -> Dict[str, Any]:
        """This process's RNG states (``last.pt`` ``ranks``: one per process)."""
        return {"rng": self._rng_state(), "members": [m.rng for m in self.members]}

    def _best_member(self, members: Optional[Sequence[Member]] = None) -> Member:
        """The member with the best dev result (the first of equals: the first-listed rate)."""
        best = None
        for m in members or self.members:
            if best is None or self.task.is_better(m.best, best.best):
                best = m
        return best

    @contextlib.contextmanager
    def _stop_report(self, state, last_path: Path, rc: Dict[str, Any], bar):
        """On Ctrl-C or a crash during training: one line with the step, the last save and how to go on."""
        try:
            yield
        except BaseException as exc:
            bar.close()
            if not isinstance(exc, (RunDirectoryError, ConfigError)):
                saved = (f"the last save is step {self._saved_step} ({last_path})" if self._saved_step is not None
                         else f"nothing was saved yet (runner.save_every={rc['save_every']})")
                what = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"stopped by {type(exc).__name__}"
                hint = f"; continue with: superb resume {self.output_dir}" if self._saved_step is not None else ""
                if self.dist.active:
                    what = f"process {self.dist.rank} of {self.dist.world} {what}"
                print(f"superb: {what} at step {state['step']}; {saved}{hint}", file=sys.stderr, flush=True)
            raise

    def run(self) -> Dict[str, Any]:
        """Train, then test with the best dev checkpoint and write results.json.

        Tasks without training (``task.trainable = False``, e.g. QbE) instead get
        ``task.run_untrained(runner)``, which returns ``{"metrics", "predictions", "layer_weights"}``
        plus optional extra keys that are copied into the results. The folder's lock is released
        when this returns or raises.
        """
        try:
            return self._run()
        finally:
            self.close()

    def data_source(self) -> Dict[str, Any]:
        """``{"source": "mini", "mini_profile", "mini_seed"}`` for the embedded synthetic corpus,
        ``{"source": "folder"}`` for a corpus the user pointed at (``--data``)."""
        data = self.config["data"]
        if data.get("dir"):
            return {"source": "folder"}
        return {"source": "mini", "mini_profile": data.get("mini_profile", "default"),
                "mini_seed": int(data.get("mini_seed", 0))}

    def describe(self) -> List[str]:
        """What this run is about to do, for the block printed at its start."""
        up, rc = self.config["upstream"], self.config["runner"]
        if up.get("ckpt"):
            weights = f"checkpoint {up['ckpt']}"
        elif up.get("random_init"):
            weights = f"random-init (seed {self.seed})"
        else:
            weights = "no weights"
        data = self.config["data"]
        source = data.get("dir") or f"mini corpus ({data.get('mini_profile', 'default')} profile, seed {data.get('mini_seed', 0)})"
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        steps = f"{rc['total_steps']} steps (dev every {rc['eval_every']}, saved every {rc['save_every']})" \
            if self.task.trainable else "no training (evaluation only)"
        if len(self.members) > 1:
            steps += f", {len(self.members)} heads: lr " + ", ".join(f"{m.lr:g}" for m in self.members)
        return [
            f"run folder  {self.output_dir}",
            f"task        {self.task.name} ({self.task.title or self.task.dataset})",
            f"upstream    {up['name']}, {weights}, {len(self.layer_ids)} hidden states to the featurizer",
            f"data        {source}: {sizes}",
            f"device      {self.device}, {self.precision}, {self.threads} CPU threads (--threads), "
            f"{self.workers} input worker(s) (--workers)",
            "features    " + (f"stored in {self.store.dir} ({self.cache_kind}, {self.store.dtype}; --feature-cache)"
                               if self.store is not None else f"computed every step ({self.cache_kind})"),
            f"training    {steps}",
            *([f"parallel    {self.dist.world} processes ({self.dist.backend}), each batch split between them"]
              if self.dist.active else []),
            f"config      {self.output_dir / 'config.json'}",
        ]

    def _run(self) -> Dict[str, Any]:
        if self.progress:
            print("\n".join("superb: " + line for line in self.describe()), file=sys.stderr, flush=True)
        if not self.task.trainable:
            start = time.time()
            out = self.task.run_untrained(self.splits)
            state = {"step": 0, "best_step": None, "history": [], "elapsed": time.time() - start}
            results = self.results(out.pop("metrics"), state, out.pop("predictions"))
            results["layer_weights"] = out.pop("layer_weights")
            results.update(out)
            atomic_write_json(self.output_dir / "results.json", results)
            if self.config.get("tensorboard") is not False:
                board = Board.open(self.output_dir, purge_step=0)  # 0: nothing of an earlier attempt stays
                if board is not None:
                    board.metrics("test", results["metrics"].get("test") or {}, 0)
                    board.close()
            return results
        state = self.train()
        for m in self.members:
            self.load_best(m)
        scored = {split: self.evaluate_members(split, [(m.featurizer, m.head) for m in self.members])
                  for split in ("dev", "test")}
        if self.dist.active:
            self._sum_cache_counts()
            if not self.dist.main:  # rank 0 writes the results; the others return them
                return self.dist.broadcast(None)
        results_of = []
        for k, m in enumerate(self.members):
            metrics: Dict[str, Dict[str, float]] = {}
            prediction_files: Dict[str, List[str]] = {}
            for split in ("dev", "test"):
                metrics[split], preds = scored[split][k]
                files = self.task.write_predictions(m.dir / "predictions", split, self.splits[split], preds)
                prediction_files[split] = [str(Path(f).relative_to(m.dir)) for f in files]
            member_state = {**state, **m.progress()}
            results = self.results(metrics, member_state, prediction_files, member=m)
            warning = self.still_improving(member_state, m)
            if warning:
                results["warnings"] = [warning]
                print(f"superb: warning: {warning}", file=sys.stderr, flush=True)
            if len(self.members) > 1:
                atomic_write_json(m.dir / "config.json", m.config)
            atomic_write_json(m.dir / "results.json", results)
            if m.board is not None:
                m.board.metrics("test", plain_data(metrics["test"]), int(state["step"]))
                m.board.close()
                m.board = None
            results_of.append(results)
        out = results_of[0] if len(self.members) == 1 else self._sweep_results(results_of)
        draw_training_curves(self.output_dir)
        return self.dist.broadcast(out)

    def _sum_cache_counts(self) -> None:
        """The feature store counts of every process of a data-parallel run (for results.json)."""
        names = ("hits", "misses", "corrupt", "writes", "refused", "crops_uncached")
        mine = [*(self._cache_counts[k] for k in names[:3]),
                *((self.store.writes, self.store.refused) if self.store is not None else (0, 0)), self._crops_uncached]
        self._cache_totals = {k: int(v) for k, v in zip(names, self.dist.sum(mine, self.device))}

    def _sweep_results(self, results_of: List[Dict[str, Any]]) -> Dict[str, Any]:
        """The sweep's results.json: the best rate by dev (its metrics, layer weights, predictions)
        and every rate's dev and test numbers under ``sweep``."""
        best = self._best_member()
        out = json.loads(json.dumps(results_of[self.members.index(best)]))
        folder = member_folder(best.lr)
        out["predictions"] = {split: [f"{folder}/{f}" for f in files] for split, files in out["predictions"].items()}
        out["config"] = self.config
        out["sweep"] = {
            "rates": self.rates, "best_lr": best.lr, "selected_by": f"best dev {self.task.primary_metric}",
            "members": [{"lr": m.lr, "dir": member_folder(m.lr), "best_step": m.best_step,
                         "best_dev": m.best, "metrics": r["metrics"]} for m, r in zip(self.members, results_of)],
        }
        atomic_write_json(self.output_dir / "results.json", out)
        return out

    def still_improving(self, state, member: Optional[Member] = None) -> Optional[str]:
        """A note when training ended while dev was still improving: the best dev checkpoint is the
        last evaluation and it beat the one before (more steps would likely change the result)."""
        history, primary = state.get("history") or [], self.task.primary_metric
        if len(history) < 2 or state.get("best_step") != history[-1]["step"]:
            return None
        last, before = history[-1][primary], history[-2][primary]
        if not self.task.is_better(last, before):
            return None
        return (f"dev {primary} was still improving when training ended ({before:.2f} at step {history[-2]['step']} "
                f"-> {last:.2f} at step {history[-1]['step']}, the last evaluation); runner.total_steps="
                f"{self.config['runner']['total_steps']} may be too few: `superb resume {self.output_dir} --max-steps N` "
                "trains on" + (f" (lr {member.lr:g} of the sweep)" if member is not None and member.rng is not None else ""))

    def results(self, metrics, state, prediction_files, member: Optional[Member] = None) -> Dict[str, Any]:
        config = member.config if member is not None else self.config
        featurizer = member.featurizer if member is not None else self.featurizer
        up = config["upstream"]
        reported = {k for split in metrics.values() for k in split} | {self.task.primary_metric}
        ckpt = up.get("ckpt")
        n_params = sum(p.numel() for p in self.upstream.parameters())
        extra: Dict[str, Any] = {"parameters": n_params, **code_provenance(up["name"])}
        weights, digest = self.weights_identity()["weights"], self.weights_identity()["digest"]
        if digest is not None and not ckpt:
            extra["checkpoint_sha256_of"] = "the module's state_dict (names, dtypes, shapes, values)"
        return {
            "superb_results_version": RESULTS_VERSION,
            "task": self.task.name,
            "task_category": self.task.category,
            "upstream": {
                "name": up["name"], "checkpoint": str(ckpt) if ckpt else None, "checkpoint_sha256": digest,
                "weights": weights, "options": up.get("options") or {},
                "num_layers": self.upstream.num_layers, "hidden_sizes": self.upstream.hidden_sizes,
                "downsample_rate": self.upstream.downsample_rate,
                "feature": up.get("feature") or "hidden_states", "layers": self.layer_ids, **extra,
            },
            "metrics": metrics,
            "primary_metric": self.task.primary_metric,
            "higher_is_better": {m: d for m, d in self.task.higher_is_better().items() if m in reported},
            "metric_units": self.task.metric_units(reported),
            "best_step": state["best_step"],
            "steps": state["step"],
            "dev_history": state["history"],
            "layer_weights": featurizer.layer_weights() if featurizer is not None else None,
            "data": {"dir": str(self.data_dir), **self.data_source(),
                     "num_examples": {k: len(v) for k, v in self.splits.items()},
                     **({"notes": self.task.data_notes} if self.task.data_notes else {})},
            "predictions": prediction_files,
            "config": config,
            "wall_time_s": round(state["elapsed"], 2),
            "device": str(self.device) + (f" ({torch.cuda.get_device_name(self.device)})" if self.device.type == "cuda" else ""),
            "precision": self.precision,
            "threads": self.threads,
            "workers": self.workers,
            "feature_cache": self.cache_report(),
            **({"data_parallel": {"processes": self.dist.world, "backend": self.dist.backend,
                                  "evaluation": "sharded, gathered on rank 0"}} if self.dist.active else {}),
            "versions": package_versions(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def apply_decode_sets(config: Dict[str, Any], sets, where) -> None:
    """Merge ``superb evaluate --set`` items (``KEY=VALUE`` strings, parsed as on the command line)
    or a mapping of dotted keys to Python values (the Python API's ``settings``, taken as they are)
    into a run's config; only decoding settings may change."""
    overrides = nest(sets.items(), "settings") if isinstance(sets, Mapping) else parse_set(sets)
    allowed = tuple(get_task(config["task"]["name"]).decode_settings)
    bad = [f"{k}" for k in overrides if k != "task"] + [f"task.{k}" for k in overrides.get("task", {})
                                                        if k not in allowed]
    if bad:
        can = ", ".join(f"task.{k}" for k in allowed) or "none for this task"
        raise ConfigError(f"evaluate --set may change only decoding settings ({can}); {', '.join(bad)} would "
                          f"change the trained model or its protocol: start a new run instead")
    merge_config(config, overrides, f"evaluate --set (into {where})")


def evaluate_run(run_dir, split: str = "test", device: Optional[str] = None, progress: bool = True,
                 upstream: Optional[str] = None, trust_run_dir: bool = False,
                 sets=(), upstream_model: Optional[torch.nn.Module] = None) -> Dict[str, float]:
    """Re-evaluate a finished run's best checkpoint on ``split``; writes ``evaluate-<split>.json``.

    ``upstream``/``trust_run_dir``: see :meth:`Runner.for_evaluation` (custom upstreams). ``sets``:
    decoding settings to evaluate with instead of the run's (ASR: ``task.decoder=kenlm``,
    ``task.kenlm.lm_path=...``); recorded in the JSON, with the decoder's description.
    """
    runner = Runner.for_evaluation(run_dir, device=device, progress=progress, upstream=upstream,
                                   trust_run_dir=trust_run_dir, sets=sets, upstream_model=upstream_model)
    try:
        if split not in runner.splits:
            raise ValueError(f"unknown split {split!r}; this task has {', '.join(runner.splits)}")
        metrics, preds = runner.evaluate(split)
        metrics = plain_data(metrics)
        runner.task.write_predictions(runner.output_dir / "evaluate", split, runner.splits[split], preds)
        record = {"split": split, "metrics": metrics}
        if sets:
            record["settings"] = ([f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sets.items()]
                                  if isinstance(sets, Mapping) else list(sets))
        if "decoder" in (runner.task.data_notes or {}):
            record["decoder"] = plain_data(runner.task.data_notes["decoder"])
        atomic_write_json(runner.output_dir / f"evaluate-{split}.json", record)
        return metrics
    finally:
        runner.close()


IN_MEMORY_PREFIX = "in-memory:"


def in_memory_name(model: torch.nn.Module) -> str:
    """The name a run records for an in-memory upstream: ``in-memory:<module>.<class>``."""
    cls = type(model)
    return f"{IN_MEMORY_PREFIX}{cls.__module__}.{cls.__qualname__}"


def check_in_memory_upstream(model) -> torch.nn.Module:
    """An in-memory upstream must follow the upstream contract (see superb.upstream.base)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"upstream must be a registered name, a checkpoint path or a torch.nn.Module; got "
                        f"{type(model).__name__}")
    missing = [a for a in ("hidden_sizes", "downsample_rate") if not hasattr(model, a)]
    if missing:
        raise TypeError(f"in-memory upstream {type(model).__name__} lacks {', '.join(missing)}: an upstream declares "
                        "hidden_sizes (one feature size per hidden state) and downsample_rate (16 kHz samples per "
                        "frame) and returns UpstreamOutput(hidden_states, lengths) from forward(wavs, wav_lens); "
                        "subclass superb.upstream.Upstream")
    sizes = list(model.hidden_sizes)
    if not sizes or not all(isinstance(d, int) and d > 0 for d in sizes):
        raise TypeError(f"in-memory upstream {type(model).__name__}: hidden_sizes must be positive integers, got {sizes}")
    rate = model.downsample_rate
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise TypeError(f"in-memory upstream {type(model).__name__}: downsample_rate must be a positive integer, "
                        f"got {rate!r}")
    if not hasattr(model, "num_layers"):
        model.num_layers = len(sizes)
    return model


def state_sha256(model: torch.nn.Module) -> str:
    """sha256 over a module's state_dict: each entry's name, dtype, shape and bytes, in key order."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_run_upstream(config: Dict[str, Any], cfg_path: Path, upstream: Optional[str], trust_run_dir: bool,
                       upstream_model: Optional[torch.nn.Module], how_again: str) -> None:
    """A run folder is data: the upstream its ``config.json`` names is rebuilt only when that is
    safe. A custom upstream (``file.py:Class``, ``module:Class``) runs only when ``upstream``
    names it again or ``trust_run_dir`` is set; an in-memory one needs its module
    (``upstream_model``; ``how_again`` says how to pass it); ``upstream`` must be the run's own."""
    name = str(config["upstream"].get("name"))
    if name.startswith(IN_MEMORY_PREFIX) or upstream_model is not None:
        given = in_memory_name(upstream_model) if upstream_model is not None else None
        if given != name:
            raise RunDirectoryError(f"{cfg_path} names the in-memory upstream {name!r}: pass that module again "
                                    f"({how_again})" + (f"; got {given!r}" if given else ""))
        return
    if upstream is not None and canonical_name(upstream) != canonical_name(name):
        raise RunDirectoryError(f"--upstream {upstream!r} is not the upstream of the run in {cfg_path.parent} "
                                f"({name!r})")
    if is_custom_name(name) and upstream is None and not trust_run_dir:
        raise RunDirectoryError(
            f"{cfg_path} names the custom upstream {name!r}; a run folder is data, so superb does not "
            f"import code it names. Pass --upstream {name!r} to run that code, or --trust-run-dir")


def resume_run(run_dir, device: Optional[str] = None, threads: Optional[int] = None, workers: Optional[int] = None,
               total_steps: Optional[int] = None, progress: bool = True, upstream: Optional[str] = None,
               trust_run_dir: bool = False, upstream_model: Optional[torch.nn.Module] = None,
               tensorboard: Optional[bool] = None) -> Dict[str, Any]:
    """``superb resume RUN_DIR``: continue a run from its folder alone (its ``config.json``; for a
    cross-validated task run with ``task.fold: all``, from its fold folders). As for ``evaluate``, a
    custom upstream that the folder names runs only when ``upstream`` names it again or
    ``trust_run_dir`` is set, and an in-memory one needs ``upstream_model``. ``device``,
    ``threads``, ``workers``, ``total_steps`` and ``tensorboard`` (None: the run's) may differ."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    folds = sorted(run_dir.glob("fold*/config.json"))
    if cfg_path.is_file():
        config = read_run_config(cfg_path)
    elif folds:
        cfg_path = folds[0]
        config = read_run_config(cfg_path)
        config["task"]["fold"] = "all"
    else:
        raise RunDirectoryError(f"{run_dir} holds no run to resume (no config.json, no fold*/config.json)")
    if config.get("sweep_member_of"):
        raise RunDirectoryError(f"{run_dir} is one learning rate of the sweep in {config['sweep_member_of']}; "
                                f"its rates train together: superb resume {config['sweep_member_of']}")
    check_run_upstream(config, cfg_path, upstream, trust_run_dir, upstream_model,
                       "superb.run(module, ..., output=run_dir, resume=True)")
    if device is not None:
        config["device"] = device
    if threads is not None:
        config["threads"] = threads
    if workers is not None:
        config["workers"] = workers
    if tensorboard is not None:
        config["tensorboard"] = tensorboard
    if total_steps is not None:
        config["runner"]["total_steps"] = int(total_steps)
    return run_benchmark(config, run_dir, resume=True, progress=progress, upstream_model=upstream_model)


def draw_training_curves(run_dir: Path) -> None:
    """``training_curves.png`` next to a run's results.json (loss and dev metric against step;
    one line per rate of a sweep, per fold of a cross-validated task). A plot that cannot be
    drawn is reported, never fatal: the numbers are in results.json and log.jsonl."""
    try:
        from .plots import write_training_curves

        write_training_curves(run_dir)
    except (ValueError, OSError, ImportError) as exc:
        print(f"superb: warning: training curves not drawn: {exc}", file=sys.stderr, flush=True)


def run_benchmark(config: Dict[str, Any], output_dir, resume: bool = False, progress: bool = True,
                  upstream_model: Optional[torch.nn.Module] = None) -> Dict[str, Any]:
    """Run one benchmark; a task with folds and ``task.fold: all`` runs every fold.

    Each fold runs in ``<output>/fold<k>/`` with its own results; ``<output>/results.json`` then
    holds the mean of every metric over folds (SUPERB's ER protocol) and each fold's metrics.
    """
    task_cls = get_task(config["task"]["name"])
    if not task_cls.folds or str(config["task"].get("fold")) != "all":
        return Runner(config, output_dir, resume=resume, progress=progress, upstream_model=upstream_model).run()
    output_dir = Path(output_dir)
    per_fold: Dict[str, Dict[str, Any]] = {}
    for fold in task_cls.folds:
        sub = json.loads(json.dumps(config))
        sub["task"]["fold"] = fold
        fold_dir = output_dir / f"fold{fold}"
        if resume and (fold_dir / "results.json").is_file():
            per_fold[str(fold)] = fileio.read_json(fold_dir / "results.json")
            continue
        per_fold[str(fold)] = Runner(sub, fold_dir, resume=resume and (fold_dir / "config.json").is_file(),
                                     progress=progress, upstream_model=upstream_model).run()
    first = next(iter(per_fold.values()))
    metrics = {
        split: {m: float(np.mean([r["metrics"][split][m] for r in per_fold.values()])) for m in first["metrics"][split]}
        for split in first["metrics"]
    }
    results = dict(first)
    results.update({
        "metrics": metrics,
        "folds": {k: {"metrics": r["metrics"], "layer_weights": r["layer_weights"], "best_step": r["best_step"],
                      "predictions": {s: [f"fold{k}/{f}" for f in fs] for s, fs in r["predictions"].items()}}
                  for k, r in per_fold.items()},
        "layer_weights": np.mean([r["layer_weights"] for r in per_fold.values()], axis=0).tolist(),
        "predictions": {s: [f"fold{k}/{f}" for k, r in per_fold.items() for f in r["predictions"][s]] for s in first["predictions"]},
        "best_step": None,
        "wall_time_s": round(sum(r["wall_time_s"] for r in per_fold.values()), 2),
        "config": config,
    })
    if "sweep" in first:  # a learning-rate sweep picks its rate in each fold (on that fold's dev set)
        results["sweep"] = {"rates": first["sweep"]["rates"], "selected_by": first["sweep"]["selected_by"],
                            "per_fold": {k: {"best_lr": r["sweep"]["best_lr"], "members": r["sweep"]["members"]}
                                         for k, r in per_fold.items()}}
    if distributed.context(config.get("device", "auto")).main:  # a data-parallel run: rank 0 writes
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(output_dir / "results.json", results)
        draw_training_curves(output_dir)
    return results
