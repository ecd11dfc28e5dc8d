"""Whole runs side by side: the feature store and the learning-rate sweep against plain runs.

    OMP_NUM_THREADS=1 python -m superb.benchmark.perf.runs store [--upstream fbank] [--task ks] [--max-steps N]
    OMP_NUM_THREADS=1 python -m superb.benchmark.perf.runs sweep [--upstream hubert --random-init] [--task pr]
                                                               [--rates 5] [--max-steps N]

``store``: the same recipe three times in one process - ``--feature-cache off`` (every step runs
the upstream, as s3prl does), ``auto`` with an empty store (cold: the first pass fills it) and
``auto`` again (warm: no upstream call) - and prints each wall time, the ratios and whether the
test metrics agree. ``sweep``: one run with K learning rates (one upstream pass, K heads) against
a run with one rate, store off (the frame-level case where features are too big to keep), and
prints the ratio. The mini corpus is built first and not timed. Nothing here is a test.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def _warm_corpus(upstream, task, work, random_init, profile):
    """Build the mini corpus (and import everything) outside the timings."""
    import superb

    superb.run(upstream, task, output=work / "warmup", random_init=random_init, max_steps=2, mini_profile=profile,
               progress=False, feature_cache="off")


def cmd_store(args, work: Path) -> dict:
    _warm_corpus(args.upstream, args.task, work, args.random_init, args.profile)
    store = work / "store"
    rows = {}
    for label, mode in (("off", "off"), ("cold", "auto"), ("warm", "auto")):
        seconds, res = _store_run(args, work, label, mode, store)
        rows[label] = {"seconds": round(seconds, 1), "test": res.test, "cache": res["feature_cache"]}
        print(f"{label:>5}: {seconds:8.1f} s  test {json.dumps(res.test)}  store {res['feature_cache'].get('kind', '-')}",
              flush=True)
    same = rows["off"]["test"] == rows["cold"]["test"] == rows["warm"]["test"]
    print(f"ratio off/cold {rows['off']['seconds'] / rows['cold']['seconds']:.2f}x, "
          f"off/warm {rows['off']['seconds'] / rows['warm']['seconds']:.2f}x; test metrics identical: {same}")
    return rows


def _store_run(args, work: Path, label: str, mode: str, store: Path):
    import superb

    from superb.benchmark.api import run_config
    from superb.benchmark.runner import run_benchmark

    cfg = run_config(args.upstream, args.task, random_init=args.random_init, max_steps=args.max_steps,
                     mini_profile=args.profile, feature_cache=mode, workers=args.workers)
    cfg["cache"]["dir"] = str(store)
    start = time.perf_counter()
    results = run_benchmark(cfg, work / label, progress=False)
    return time.perf_counter() - start, superb.Results(work / label, results)


def cmd_sweep(args, work: Path) -> dict:
    from superb.benchmark.api import run_config
    from superb.benchmark.runner import run_benchmark

    _warm_corpus(args.upstream, args.task, work, args.random_init, args.profile)
    rates = [float(f"{1e-4 * 10 ** (i * 2 / max(args.rates - 1, 1)):.3g}") for i in range(args.rates)]
    rows = {}
    for label, lr in (("one rate", rates[len(rates) // 2]), (f"{len(rates)} rates", rates)):
        cfg = run_config(args.upstream, args.task, random_init=args.random_init, max_steps=args.max_steps,
                         mini_profile=args.profile, feature_cache="off", workers=args.workers,
                         sets=[f"optimizer.lr={json.dumps(lr)}"])
        start = time.perf_counter()
        run_benchmark(cfg, work / label.replace(" ", "_"), progress=False)
        rows[label] = round(time.perf_counter() - start, 1)
        print(f"{label:>10}: {rows[label]:8.1f} s (lr {lr})", flush=True)
    one, many = rows["one rate"], rows[f"{len(rates)} rates"]
    print(f"ratio {len(rates)} rates / one rate: {many / one:.2f}x (K separate runs: ~{len(rates)}x)")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["store", "sweep"])
    ap.add_argument("--upstream", default=None, help="default: fbank for store, hubert (random-init) for sweep")
    ap.add_argument("--random-init", action="store_true")
    ap.add_argument("--task", default=None, help="default: ks for store, pr for sweep")
    ap.add_argument("--max-steps", type=int, default=None, help="default: the mini recipe's")
    ap.add_argument("--profile", default="default", choices=["tiny", "default"])
    ap.add_argument("--rates", type=int, default=5)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--keep", help="keep the run folders here instead of a temporary folder")
    args = ap.parse_args(argv)
    if args.upstream is None:
        args.upstream = "fbank" if args.what == "store" else "hubert"
        args.random_init = args.random_init or args.what == "sweep"
    args.task = args.task or ("ks" if args.what == "store" else "pr")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="superb-perf-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return (cmd_store if args.what == "store" else cmd_sweep)(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
