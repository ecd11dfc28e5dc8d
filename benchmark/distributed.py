"""Data parallel inside one run: ``torchrun --nproc-per-node N -m superb.benchmark.cli run ...``.

``superb run --nproc N`` (and ``superb resume --nproc N``) re-launches itself through
``python -m torch.distributed.run --standalone --nproc-per-node N`` (a free rendezvous port is
picked by torch). Each process trains the same featurizer + head, wrapped in
``DistributedDataParallel``; the frozen upstream is not wrapped (it has no gradients) and each
process runs it only on its part of every batch, which is where the time goes.

Design choices:

* **One global batch, split by a pure rule.** Every process builds the same duration batches
  (the sampler is a function of seed and epoch). :func:`shard` cuts one batch into N parts: its
  utterances sorted by length (ties: their place in the batch), then dealt round-robin, part
  ``r`` to rank ``r``. The parts are balanced in padded length and the rule needs no
  communication; a part may be empty (a batch of fewer utterances than processes).
* **The same gradient as one process.** A task's loss is a mean over the batch's utterances
  (``Task.loss_mean_over = "utterances"``). Rank ``r`` holds ``n_r`` of the batch's ``n``
  utterances, so it scales its part's mean loss by ``N * n_r / n``; DDP averages the gradients
  (divides their sum by N), which leaves ``sum_r (n_r / n) * grad_r`` -- the gradient of the
  whole batch's mean, as one process computes it. Accumulation (``runner.accumulate``) divides by
  the number of batches as before and syncs only on the last one (``no_sync``); clipping and the
  optimiser step then act on identical, already reduced gradients in every process. A task that
  does not declare what its loss averages over is refused (another normaliser, e.g. frames,
  would need its own weights). An empty part contributes a zero loss that touches every
  parameter, so every process takes part in every reduction.
* **Equal up to float rounding, and to RNG draws.** The summation order differs from one
  process, so logged losses agree to about 1e-6 relative (the test asks 1e-5). A head that
  draws random numbers in training (dropout, SpecAugment) draws them per process on its part,
  so such runs are equivalent in distribution, not bit-identical, to one process.
* **Rank 0 writes, alone.** config.json, log.jsonl, checkpoints, predictions, results.json,
  TensorBoard and progress output come from rank 0; it alone holds the run folder's lock. It
  checks the folder and builds the run first, then hands the resolved config to the others
  (or its error, which every process then raises), so the mini corpus and the feature store
  namespace are created once. ``last.pt`` holds every rank's RNG states, so a resume with the
  same number of processes continues each process's stream; any number of processes may
  resume a run (the global batches do not depend on it).
* **Evaluation sharded, gathered on rank 0.** Dev/test batches are dealt round-robin to the
  processes, predictions are gathered to rank 0, which scores them and broadcasts the metrics
  (every process keeps the same dev history and picks the same best step).
* The feature store is safe for concurrent writers (unique temporary names, ``os.replace``;
  see :mod:`superb.benchmark.feature_store`), so every process reads and writes it directly.
* Backend ``nccl`` on CUDA (process ``r`` uses ``cuda:LOCAL_RANK``), ``gloo`` on the CPU.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    """This process's place in the run: ``rank`` of ``world`` processes (``local`` on this node)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    backend: Optional[str] = None

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    # -- collectives (no-ops in one process) ----------------------------------------------------
    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` in every process."""
        if not self.active:
            return obj
        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> Optional[List[Any]]:
        """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere)."""
        if not self.active:
            return [obj]
        out = [None] * self.world if self.main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def sum(self, values: Sequence[float], device: torch.device) -> List[float]:
        """The element-wise sum of ``values`` over the processes (float64)."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()


SINGLE = Context()
_started_here = False


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r}: expected a whole number (set by torchrun)") from None


def context(device_name: Optional[str] = "auto") -> Context:
    """This process's :class:`Context`; joins the process group torchrun describes (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) on first use. ``device_name`` (the
    run's ``--device``) picks the backend: nccl for CUDA, gloo otherwise."""
    global _started_here
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
    else:
        world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return SINGLE
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank = _env_int("RANK", 0) if not dist.is_initialized() else dist.get_rank()
    local_rank = _env_int("LOCAL_RANK", rank)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    if not dist.is_initialized():
        cuda = _wants_cuda(device_name)
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
        _started_here = True
    return Context(rank, world, local_rank, local_world, dist.get_backend())


def _wants_cuda(device_name: Optional[str]) -> bool:
    name = device_name or "auto"
    if name == "auto":
        return torch.cuda.is_available()
    return str(name).startswith("cuda")


def process_device(name: Optional[str], ctx: Context) -> Optional[str]:
    """The device a process of a data-parallel run uses: ``cuda:LOCAL_RANK`` for ``auto``/``cuda``
    on a CUDA machine; ``cuda:N`` (one GPU for every process) is an error naming the value."""
    if not ctx.active:
        return name
    name = name or "auto"
    if name == "auto":
        return f"cuda:{ctx.local_rank}" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return f"cuda:{ctx.local_rank}"
    if str(name).startswith("cuda:"):
        raise ValueError(f"--device {name}: a data-parallel run gives process r the GPU cuda:LOCAL_RANK; "
                         "pass --device cuda (or auto)")
    return name


def shutdown() -> None:
    """Leave the process group if :func:`context` joined it (``superb run`` under torchrun)."""
    global _started_here
    if _started_here and dist.is_initialized():
        import gc

        gc.collect()  # DDP reducers left in reference cycles hold the group: free them first
        dist.barrier()  # no process leaves while another is still in a collective
        dist.destroy_process_group()
    _started_here = False


def shard(indices: Sequence[int], num_samples: Sequence[int], rank: int, world: int) -> tuple:
    """Rank ``rank``'s part of one batch: the batch's utterances sorted by length (ties: their
    place in the batch), dealt round-robin to ``world`` parts. A pure function of its arguments."""
    order = sorted(range(len(indices)), key=lambda j: (int(num_samples[indices[j]]), j))
    return tuple(int(indices[j]) for j in order[rank::world])


def relaunch(argv: Sequence[str], nproc: int) -> int:
    """``superb ARGV`` in ``nproc`` processes through ``torch.distributed.run``; its exit status."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"--nproc must be a whole number >= 1, got {nproc!r}")
    if os.environ.get("WORLD_SIZE"):
        raise ValueError("--nproc: this process was started by torchrun already (WORLD_SIZE="
                         f"{os.environ['WORLD_SIZE']}); drop --nproc")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "superb.benchmark.cli", *argv]
    return subprocess.call(cmd)


def strip_nproc(argv: Sequence[str]) -> List[str]:
    """``argv`` without its ``--nproc N`` / ``--nproc=N``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out
