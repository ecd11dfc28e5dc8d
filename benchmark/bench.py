"""``superb bench``: every task of the benchmark for one upstream, in one command.

    superb bench --upstream hubert --upstream-ckpt hubert_base_ls960.pt --tasks superb --lr-search \\
                 --data pr=/data/LibriSpeech --data asr=/data/LibriSpeech ... --output bench/hubert
    superb bench --upstream fbank --tasks all --mini-profile tiny --max-steps 50 --jobs 2 --output bench/fbank

Output folder::

    <output>/
      bench.json          the index: settings, every job's state/folder/wall time/error, the boards
      summary.md          the same for people: job table, leaderboard table, links
      table.md            the leaderboard table (markdown) of the finished runs
      plots/              scores.png and layer_weights_<upstream>.png (``superb export --plot``)
      predict.zip         the public-set submission (``superb submit``'s validation), when it applies
      runs/<task>/        one run folder per task (``superb run``'s layout; its own tensorboard/)
      jobs/<task>.json    the job spec each worker runs (the full run config)
      logs/<task>.log     each job's output (local executor); submitit/ holds submitit's logs

**Jobs.** One job per task. The full run config of every task is resolved and checked before any
job starts (bad names, keys or data folders fail at once, naming the task). A job whose folder
holds ``results.json`` is done and skipped; one whose folder holds a started run
(``config.json``) resumes it from ``checkpoints/last.pt`` (a run killed before its first save has
nothing to resume and starts over); the rest start fresh. So a bench
killed at any point and restarted with the same command finishes only what is missing, and the
resumed runs give the numbers an uninterrupted run gives (the runner's exact resume). A job that
fails is reported with its error and log file, the other jobs go on, and the final table is made
of the tasks that finished (the command then exits with status 1).

**Learning-rate search** (``--lr-search``): the SUPERB protocol tunes only the learning rate,
on a log grid (s3prl's maintainers search 1e-1 ... 1e-7; ``--lr-grid`` to change it). Each trainable
task trains one head per rate in one run (``optimizer.lr`` as a list: one upstream pass, the
rates' own optimisers, checkpoints and dev histories; see :mod:`superb.benchmark.runner`); the
best rate by dev is the run's result and the only one whose test numbers are reported (ER: each
fold picks its rate on its own dev set, as a cross-validated protocol must). QbE
trains nothing and runs once.

**Executors.** ``local``: at most ``--jobs`` worker processes at once (``python -m
superb.benchmark.bench --job SPEC``), each with ``--threads`` CPU threads (default: the cores
divided among the jobs) and, on a machine with GPUs, one GPU of its own
(``CUDA_VISIBLE_DEVICES``; ``--jobs`` is then capped by the GPU count). ``slurm``: the same job
function submitted through submitit as one SLURM job array (``--slurm-partition``,
``--slurm-gpus-per-job``, ``--slurm-time-min``, ``--jobs`` = the array's parallelism); a job
preempted or reaching its time limit is requeued by submitit (``Checkpointable``) and resumes
from its last save. ``submitit-local`` and ``submitit-debug`` run that very code path through
submitit's local and debug executors (no sbatch): what the tests use.

**Data.** Without ``--data`` every task uses the embedded mini corpus (``--mini-profile``); with
it, every selected task needs its folder (``--data TASK=DIR``): a bench never mixes real and
mini data. Mini runs are marked as such in the table (``[mini]``) and the submission zip is then
only a format check.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

#: the SUPERB-SG tasks (SUPERB-SG paper: ST, OOD-ASR, VC, SE, SS)
SG_TASKS = ("st", "ood_asr", "vc", "se", "ss")
#: the learning-rate grid of the search (s3prl maintainers: 1e-1 ... 1e-7 on a log scale)
DEFAULT_LR_GRID = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)
EXECUTORS = ("local", "slurm", "submitit-local", "submitit-debug")
#: seconds between two progress lines of a running job
PROGRESS_EVERY_S = 60.0


class BenchError(ValueError):
    """A bench that cannot start (bad task selection, data, executor settings)."""


# -- selection ---------------------------------------------------------------------------------
def task_sets() -> Dict[str, tuple]:
    from superb.downstream.tasks import describe_tasks

    from . import leaderboard as lb

    every = tuple(t.name for t in describe_tasks())
    return {"all": every, "superb": lb.VIEWS["paper"], "public": lb.VIEWS["public"],
            "sg": tuple(t for t in SG_TASKS if t in every)}


def select_tasks(spec: str) -> List[str]:
    """``all``, ``superb`` (the paper's 10 tasks), ``public`` (the public set's), ``sg`` or a comma
    list of task ids (case-insensitive, did-you-mean on typos); sets may be mixed in the list."""
    from superb.downstream.tasks import get_task

    sets = task_sets()
    out: List[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        try:
            names = sets.get(item.lower()) or (get_task(item).name,)
        except LookupError as exc:  # UnknownTaskError: its did-you-mean, plus the sets
            raise BenchError(f"--tasks: {str(exc).strip(chr(34))}; or a set: {', '.join(sets)}") from None
        out.extend(n for n in names if n not in out)
    if not out:
        raise BenchError(f"--tasks {spec!r} selects no task; give all, superb, public, sg or task ids")
    return out


def parse_data(items: Sequence[str], tasks: Sequence[str]) -> Dict[str, Optional[str]]:
    """``--data TASK=DIR`` items → folder per task; none at all → the mini corpus everywhere."""
    from superb.downstream.tasks import get_task

    given: Dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BenchError(f"--data expects TASK=DIR, got {item!r}")
        name = get_task(key.strip()).name
        path = Path(value).expanduser()
        if not path.is_dir():
            raise BenchError(f"--data {name}={value}: not a folder")
        given[name] = str(path.resolve())
    if not given:
        return {t: None for t in tasks}
    unknown = [t for t in given if t not in tasks]
    if unknown:
        raise BenchError(f"--data names tasks that are not selected: {', '.join(unknown)}")
    missing = [t for t in tasks if t not in given]
    if missing:
        raise BenchError(f"--data given for some tasks but not for {', '.join(missing)}; a bench does not mix "
                         "real corpora with the mini corpus (give every task's folder, or none)")
    return given


def parse_sets(items: Sequence[str], tasks: Sequence[str]) -> Dict[str, List[str]]:
    """``--set KEY=VALUE`` (every task) and ``--set TASK:KEY=VALUE`` (one task) → per-task lists."""
    from superb.downstream.tasks import get_task

    out: Dict[str, List[str]] = {t: [] for t in tasks}
    for item in items or ():
        head, sep, _ = item.partition("=")
        if not sep:
            raise BenchError(f"--set expects [TASK:]KEY=VALUE, got {item!r}")
        if ":" in head:
            task, _, rest = item.partition(":")
            name = get_task(task.strip()).name
            if name not in out:
                raise BenchError(f"--set {item!r}: task {name} is not selected")
            out[name].append(rest)
        else:
            for t in tasks:
                out[t].append(item)
    return out


# -- jobs ----------------------------------------------------------------------------------------
@dataclass
class Job:
    task: str
    run_dir: str
    spec: str
    state: str = "pending"  # pending, running, done, skipped, failed
    error: Optional[str] = None
    log: Optional[str] = None
    wall_s: Optional[float] = None
    resumed: bool = False
    metrics: Dict[str, Any] = field(default_factory=dict)
    started: Optional[float] = None

    def public(self) -> Dict[str, Any]:
        d = asdict(self)
        d.pop("started")
        return d


def run_state(run_dir: Path) -> str:
    """``done`` (results.json), ``started`` (a run's config.json, or a fold's) or ``new``."""
    if (run_dir / "results.json").is_file():
        return "done"
    if (run_dir / "config.json").is_file() or any(run_dir.glob("fold*/config.json")):
        return "started"
    return "new"


def discard_unsaved(run_dir: Path) -> List[Path]:
    """Remove the run folders under ``run_dir`` (itself, or a cross-validated task's folds) that
    were started but killed before their first save: no ``checkpoints/last.pt``, so there is no
    training state to resume (the runner refuses such a folder) and nothing but a config and
    the first log lines to lose. Returns them."""
    gone = []
    for d in [run_dir, *sorted(run_dir.glob("fold*"))]:
        if ((d / "config.json").is_file() and not (d / "results.json").is_file()
                and not (d / "checkpoints" / "last.pt").is_file()):
            shutil.rmtree(d)
            gone.append(d)
    return gone


def run_job(spec_path) -> Dict[str, Any]:
    """Run (or resume, or skip) the job of ``spec_path``; returns its results' test metrics.
    The one function every executor runs."""
    from superb.downstream.fileio import read_json

    from .runner import run_benchmark

    spec = read_json(spec_path)
    run_dir = Path(spec["run_dir"])
    for d in discard_unsaved(run_dir):
        print(f"superb: {d} stopped before its first save (no checkpoints/last.pt): starting it over",
              file=sys.stderr, flush=True)
    state = run_state(run_dir)
    if state == "done":
        return read_json(run_dir / "results.json")["metrics"]
    results = run_benchmark(spec["config"], run_dir, resume=state == "started", progress=True)
    return results["metrics"]


try:  # submitit's requeue hook; the class works without it for the local executor
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover - submitit is a dependency
    _Checkpointable = object


class BenchJob(_Checkpointable):
    """``run_job(spec)`` as a submitit callable. On preemption or time-out submitit calls
    :meth:`checkpoint` (``Checkpointable``) and requeues the same job, which resumes the run from
    its ``checkpoints/last.pt`` (the run folder is the state; nothing else is pickled)."""

    def __init__(self, spec_path: str):
        self.spec_path = str(spec_path)

    def __call__(self) -> Dict[str, Any]:
        return run_job(self.spec_path)


def _gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([v for v in visible.split(",") if v.strip()])
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # pragma: no cover - a broken CUDA install counts as none
        return 0


# -- progress --------------------------------------------------------------------------------------
def _latest_step(run_dir: Path):
    """``(step, total, wall_s)`` of the newest training line under ``run_dir`` (any log.jsonl: a
    sweep's rates, a task's folds), or None."""
    logs = sorted(run_dir.rglob("log.jsonl"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return None
    last = None
    try:
        for line in logs[-1].read_text(encoding="utf-8").splitlines():
            rec = json.loads(line) if line.strip() else {}
            if "loss" in rec:
                last = rec
        cfg = json.loads((logs[-1].parent / "config.json").read_text(encoding="utf-8"))
        total = int(cfg["runner"]["total_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if last is None:
        return None
    return int(last["step"]), total, float(last.get("wall_s") or 0.0)


def progress_line(job: Job, done: int, total: int) -> str:
    head = f"bench [{done}/{total}] {job.task}"
    if job.state == "running":
        where = _latest_step(Path(job.run_dir))
        elapsed = time.time() - (job.started or time.time())
        if where is None:
            return f"{head}: running ({elapsed:.0f} s, no step logged yet)"
        step, steps, wall = where
        eta = wall / max(step, 1) * (steps - step)
        return f"{head}: running, step {step}/{steps} ({100 * step / max(steps, 1):.0f} %), about {eta / 60:.1f} min left"
    if job.state in ("done", "skipped"):
        shown = ", ".join(f"{k} {v:.2f}" for k, v in (job.metrics.get("test") or {}).items()
                          if isinstance(v, (int, float)))
        when = "already finished" if job.state == "skipped" else f"done in {job.wall_s:.0f} s"
        return f"{head}: {when}; test {shown}"
    if job.state == "failed":
        return f"{head}: FAILED: {job.error}" + (f" (log: {job.log})" if job.log else "")
    return f"{head}: {job.state}"


# -- executors -----------------------------------------------------------------------------------
def _error_line(lines: List[str]) -> str:
    """The line of a job's output that says what went wrong: its last ``superb: error:`` or
    exception line, else its last line."""
    errs = [t for t in lines if t.startswith("superb: error:") or "Error" in t]
    return (errs or lines or [""])[-1][:500]


def _tail(path: Optional[str]) -> str:
    if not path or not Path(path).is_file():
        return ""
    return _error_line(Path(path).read_text(encoding="utf-8", errors="replace").strip().splitlines())


def _die_with_parent() -> None:
    """In a local worker, before it runs: the kernel kills it when the bench process dies (Linux
    ``PR_SET_PDEATHSIG``), so ``kill -9`` of a bench leaves no worker running on behind it and
    a restarted bench finds the run folders unlocked. Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except OSError:
            pass


def run_local(jobs: List[Job], parallel: int, threads: int, out: Path, say) -> None:
    """At most ``parallel`` worker processes; each job's output in ``logs/<task>.log``."""
    gpus = _gpu_count()
    if gpus:
        parallel = min(parallel, gpus)
    free_gpus = list(range(gpus))
    (out / "logs").mkdir(parents=True, exist_ok=True)
    pending = [j for j in jobs if j.state == "pending"]
    running: Dict[int, tuple] = {}
    last_note = time.time()
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            gpu = free_gpus.pop(0) if gpus else None
            if gpu is not None:
                env["CUDA_VISIBLE_DEVICES"] = str(gpu)
            job.log = str(out / "logs" / f"{job.task}.log")
            fh = open(job.log, "a", encoding="utf-8")
            proc = subprocess.Popen([sys.executable, "-m", "superb.benchmark.bench", "--job", job.spec],
                                    stdout=fh, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
            job.state, job.started = "running", time.time()
            running[id(job)] = (job, proc, fh, gpu)
            say(job)
        time.sleep(0.5)
        for key, (job, proc, fh, gpu) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            fh.close()
            del running[key]
            if gpu is not None:
                free_gpus.append(gpu)
            _finish(job, rc == 0, None if rc == 0 else (_tail(job.log) or f"exit status {rc}"))
            say(job)
        if running and time.time() - last_note >= PROGRESS_EVERY_S:
            last_note = time.time()
            for job, *_ in running.values():
                say(job)


def run_submitit(jobs: List[Job], args, out: Path, say) -> None:
    """The jobs through submitit: a SLURM job array, or submitit's local / debug executor."""
    import submitit

    cluster = {"slurm": "slurm", "submitit-local": "local", "submitit-debug": "debug"}[args.executor]
    executor = submitit.AutoExecutor(folder=str(out / "submitit" / "%j"), cluster=cluster)
    params: Dict[str, Any] = {"timeout_min": int(args.slurm_time_min), "name": "superb-bench"}
    if cluster == "slurm":
        params.update(slurm_partition=args.slurm_partition, slurm_gpus_per_node=args.slurm_gpus_per_job,
                      slurm_array_parallelism=int(args.jobs), cpus_per_task=args.threads or 8)
        params = {k: v for k, v in params.items() if v is not None}
    executor.update_parameters(**params)
    todo = [j for j in jobs if j.state == "pending"]
    submitted: List[tuple] = []
    if cluster == "slurm":  # one array; SLURM bounds the parallelism
        with executor.batch():
            handles = [executor.submit(BenchJob(j.spec)) for j in todo]
        for j, h in zip(todo, handles):
            j.state, j.started, j.log = "running", time.time(), str(out / "submitit")
            say(j)
        submitted = list(zip(todo, handles))
        _wait(submitted, say)
        return
    parallel = 1 if cluster == "debug" else max(1, int(args.jobs))
    while todo or submitted:
        while todo and len(submitted) < parallel:
            j = todo.pop(0)
            handle = executor.submit(BenchJob(j.spec))
            j.state, j.started = "running", time.time()
            j.log = str(Path(str(handle.paths.stderr)))
            say(j)
            submitted.append((j, handle))
        if cluster == "debug":  # the debug executor runs the job when its result is asked for
            _collect(*submitted.pop(0))
            say(j)
            continue
        time.sleep(0.5)
        for pair in [p for p in submitted if p[1].done()]:
            submitted.remove(pair)
            _collect(*pair)
            say(pair[0])


def _wait(submitted, say) -> None:
    last_note = time.time()
    while submitted:
        time.sleep(2.0)
        for pair in [p for p in submitted if p[1].done()]:
            submitted.remove(pair)
            _collect(*pair)
            say(pair[0])
        if submitted and time.time() - last_note >= PROGRESS_EVERY_S:
            last_note = time.time()
            for j, _ in submitted:
                say(j)


def _collect(job: Job, handle) -> None:
    try:
        handle.result()
        _finish(job, True, None)
    except Exception as exc:  # a failed task is reported; the others go on
        _finish(job, False, _error_line(str(exc).strip().splitlines()) or type(exc).__name__)


def _finish(job: Job, ok: bool, error: Optional[str]) -> None:
    from superb.downstream.fileio import read_json

    job.wall_s = round(time.time() - (job.started or time.time()), 1)
    results = Path(job.run_dir) / "results.json"
    if ok and results.is_file():
        job.state, job.metrics = "done", read_json(results)["metrics"]
    else:
        job.state = "failed"
        job.error = error or "the job ended without results.json"


# -- the bench -----------------------------------------------------------------------------------
def job_threads(args) -> int:
    """CPU threads of each job: ``--threads``, else the usable cores divided among ``--jobs``."""
    from .runner import usable_cores

    return args.threads or max(1, usable_cores() // max(1, int(args.jobs)))


def prepare(args, out: Path, threads: int) -> List[Job]:
    """Resolve and check every task's run config, write the job specs; nothing runs yet."""
    from superb.downstream.fileio import atomic_write_json
    from superb.downstream.tasks import get_task

    from .api import run_config
    from .cli import _options

    tasks = select_tasks(args.tasks)
    data = parse_data(args.data, tasks)
    sets = parse_sets(args.set, tasks)
    grid = [float(x) for x in args.lr_grid.split(",")] if args.lr_grid else list(DEFAULT_LR_GRID)
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    jobs = []
    for task in tasks:
        extra = list(sets[task])
        if args.lr_search and get_task(task).trainable:
            extra.append(f"optimizer.lr=[{','.join(repr(g) for g in grid)}]")
        try:
            cfg = run_config(args.upstream, task, data=data[task], ckpt=args.upstream_ckpt, random_init=args.random_init,
                             options=_options(args.upstream_option), sets=extra, max_steps=args.max_steps,
                             seed=args.seed, device=args.device, threads=threads, mini_profile=args.mini_profile,
                             mini_seed=args.mini_seed, cache_dir=args.cache_dir, feature_cache=args.feature_cache,
                             workers=args.workers, tensorboard=not args.no_tensorboard)
        except (ValueError, KeyError) as exc:
            raise BenchError(f"task {task}: {exc}") from None
        run_dir = out / "runs" / task
        spec = out / "jobs" / f"{task}.json"
        atomic_write_json(spec, {"task": task, "run_dir": str(run_dir.resolve()), "config": cfg})
        jobs.append(Job(task, str(run_dir.resolve()), str(spec.resolve())))
    return jobs


def finish(out: Path, jobs: List[Job], args) -> Dict[str, Any]:
    """Table, plots, submission zip and the index, from the finished runs."""
    from superb.downstream.fileio import atomic_write_json, atomic_write_text

    from .export import ExportError, board_json, build_board, collect, render_table
    from .submit import SubmitError, plan_submission, write_zip

    finished = [Path(j.run_dir) for j in jobs if j.state in ("done", "skipped")]
    index: Dict[str, Any] = {"upstream": args.upstream, "upstream_ckpt": args.upstream_ckpt,
                             "random_init": bool(args.random_init), "tasks": [j.task for j in jobs],
                             "executor": args.executor, "lr_search": bool(args.lr_search),
                             "jobs": [j.public() for j in jobs], "boards": {}, "plots": [], "submission": None}
    tables = []
    if finished:
        try:
            col = collect(finished)
            for view in ("paper", "public"):
                board = build_board(col, view)
                index["boards"][view] = board_json(board)
                tables.append(f"### {view} view\n\n" + render_table(board, markdown=True))
            from .plots import write_plots

            try:
                index["plots"] = [str(p.relative_to(out)) for p in
                                  write_plots(col, build_board(col, "paper"), out / "plots")]
            except (ImportError, OSError, ValueError) as exc:
                index["plots_error"] = str(exc)
            try:
                plan = plan_submission(col, allow_mini=True)
                write_zip(plan.files, out / "predict.zip")
                index["submission"] = {"zip": "predict.zip", "tasks": plan.included, "missing": plan.missing,
                                       "mini": plan.mini}
            except SubmitError as exc:
                index["submission"] = {"error": str(exc)}
        except ExportError as exc:
            index["export_error"] = str(exc)
    atomic_write_text(out / "table.md", "\n".join(tables) or "no finished task\n")
    atomic_write_json(out / "bench.json", index)
    atomic_write_text(out / "summary.md", summary(index, tables, out))
    return index


def summary(index: Dict[str, Any], tables: List[str], out: Path) -> str:
    lines = [f"# superb bench: {index['upstream']}", ""]
    lines += ["| task | state | wall (s) | test | run folder | TensorBoard |", "|---|---|---:|---|---|---|"]
    for j in index["jobs"]:
        test = ", ".join(f"{k} {v:.2f}" for k, v in (j["metrics"].get("test") or {}).items()
                         if isinstance(v, (int, float)))
        rel = os.path.relpath(j["run_dir"], out)
        tb = f"{rel}/tensorboard" if (Path(j["run_dir"]) / "tensorboard").is_dir() else "-"
        state = j["state"] + (f": {j['error']}" if j["error"] else "")
        lines.append(f"| {j['task']} | {state} | {j['wall_s'] if j['wall_s'] is not None else '-'} | {test or '-'} "
                     f"| [{rel}]({rel}) | {tb} |")
    lines += ["", "## Leaderboard", ""] + (tables or ["no finished task"]) + [""]
    if index["plots"]:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in index["plots"]] + [""]
    sub = index.get("submission") or {}
    if sub.get("zip"):
        note = f" (mini corpus: {sub['mini']}; a format check, not a result)" if sub.get("mini") else ""
        lines += ["## Submission", "", f"[{sub['zip']}]({sub['zip']}): {', '.join(sub['tasks'])}{note}", ""]
    elif sub.get("error"):
        lines += ["## Submission", "", f"not written: {sub['error']}", ""]
    lines += ["TensorBoard for every run: `tensorboard --logdir runs`", ""]
    return "\n".join(lines)


def cmd_bench(args) -> int:
    if args.executor not in EXECUTORS:  # argparse's choices already say so; kept for the API
        raise BenchError(f"--executor {args.executor!r}: choose {', '.join(EXECUTORS)}")
    if int(args.jobs) < 1:
        raise BenchError(f"--jobs must be >= 1, got {args.jobs}")
    out = Path(args.output).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    threads = job_threads(args)
    jobs = prepare(args, out, threads)
    total = len(jobs)

    def say(job: Job) -> None:
        done = sum(j.state in ("done", "skipped", "failed") for j in jobs)
        print(progress_line(job, done, total), flush=True)

    from superb.downstream.fileio import read_json

    for job in jobs:
        state = run_state(Path(job.run_dir))
        if state == "done":
            job.state, job.metrics = "skipped", read_json(Path(job.run_dir) / "results.json")["metrics"]
            say(job)
        job.resumed = state == "started"
    print(f"bench: {args.upstream}, {total} task(s) ({', '.join(j.task for j in jobs)}), executor {args.executor}, "
          f"{args.jobs} at a time; output {out}", flush=True)
    if args.executor == "local":
        run_local(jobs, int(args.jobs), threads, out, say)
    else:
        run_submitit(jobs, args, out, say)
    index = finish(out, jobs, args)
    failed = [j for j in jobs if j.state == "failed"]
    print(f"bench: {total - len(failed)}/{total} tasks finished; {out / 'summary.md'}", flush=True)
    for view, board in index["boards"].items():
        for row in board.get("upstreams", []):
            if row.get("superb_s") is not None:
                print(f"bench: SUPERB_s ({view} view) {row['label']}: {row['superb_s']:.1f}", flush=True)
    if failed:
        print("bench: failed: " + "; ".join(f"{j.task} ({j.error})" for j in failed), file=sys.stderr, flush=True)
        return 1
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="every task for one upstream: runs, SUPERB score, plots, submission zip",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", required=True, help="upstream name (`superb list`)")
    p.add_argument("--upstream-ckpt", help="checkpoint file or model folder of a pretrained upstream")
    p.add_argument("--random-init", action="store_true", help="benchmark the untrained architecture")
    p.add_argument("--upstream-option", action="append", metavar="KEY=VALUE", help="option passed to the upstream")
    p.add_argument("--tasks", default="superb",
                   help="all, superb (the paper's 10), public (the public set's 10), sg, or task ids: ks,asr,...")
    p.add_argument("--output", required=True, help="the bench folder (runs, table, plots, zip, bench.json)")
    p.add_argument("--data", action="append", metavar="TASK=DIR",
                   help="a task's corpus folder (repeatable; none: the mini corpus for every task)")
    p.add_argument("--set", action="append", metavar="[TASK:]KEY=VALUE",
                   help="override a config key for every task, or for one (ks:optimizer.lr=1e-3)")
    p.add_argument("--lr-search", action="store_true",
                   help="train one head per learning rate of --lr-grid in each run, report the best by dev")
    p.add_argument("--lr-grid", help="comma-separated rates (default 1e-1,...,1e-7)")
    p.add_argument("--executor", default="local", choices=EXECUTORS)
    p.add_argument("--jobs", type=int, default=1, help="jobs at once (local: processes; slurm: array parallelism)")
    p.add_argument("--threads", type=int, help="CPU threads per job (default: the cores divided among --jobs)")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-steps", type=int, help="training steps of every task (default: each recipe's)")
    p.add_argument("--seed", type=int)
    p.add_argument("--mini-profile", default="default", choices=["tiny", "default"])
    p.add_argument("--mini-seed", type=int, default=0)
    p.add_argument("--cache-dir", help="mini corpus and feature store folder")
    p.add_argument("--feature-cache", default="auto", choices=["auto", "frames", "off"])
    p.add_argument("--workers", type=int, help="input-pipeline processes per job")
    p.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files in the run folders")
    p.add_argument("--slurm-partition")
    p.add_argument("--slurm-gpus-per-job", type=int, default=1)
    p.add_argument("--slurm-time-min", type=int, default=24 * 60, help="time limit per job (minutes)")
    p.set_defaults(func=cmd_bench)


def _job_main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m superb.benchmark.bench")
    ap.add_argument("--job", required=True, help="a job spec written by superb bench")
    args = ap.parse_args(argv)
    try:
        run_job(args.job)
    except (ValueError, KeyError, OSError) as exc:
        print(f"superb: error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover - the local executor's worker
    sys.exit(_job_main())


__all__ = ["BenchJob", "DEFAULT_LR_GRID", "Job", "cmd_bench", "finish", "prepare", "run_job", "run_state",
           "select_tasks"]
