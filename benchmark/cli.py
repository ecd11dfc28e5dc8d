"""``superb`` command line: run, evaluate, list (and the commands of EXTRA_COMMANDS).

User errors (bad paths, audio, config keys, names) print one line ``superb: error: ...`` and exit
with status 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
from pathlib import Path
from typing import List, Optional

from .config import parse_scalar

#: modules with ``register(subparsers)`` adding more subcommands
EXTRA_COMMANDS: tuple = (
    "superb.benchmark.extract",
    "superb.benchmark.export",
    "superb.benchmark.submit",
    "superb.benchmark.check_upstream",
)


def _options(items: List[str]) -> dict:
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--upstream-option expects key=value, got {item!r}")
        out[key.strip()] = parse_scalar(raw)
    return out


def cmd_run(args) -> int:
    from .config import resolve_config
    from .runner import run_benchmark

    from superb.downstream.tasks import get_task as _get_task

    args.task = _get_task(args.task).name  # task ids are case-insensitive (--task KS)
    use_mini = args.data is None
    cfg = resolve_config(args.task, use_mini, args.config, args.set or [], args.max_steps)
    from superb.downstream.tasks import get_task
    from superb.upstream import get_spec

    get_task(args.task)
    spec = get_spec(args.upstream)
    cfg = {
        "upstream": {
            "name": spec.name,
            "ckpt": str(Path(args.upstream_ckpt).expanduser().resolve()) if args.upstream_ckpt and Path(args.upstream_ckpt).exists() else args.upstream_ckpt,
            "random_init": bool(args.random_init),
            "options": _options(args.upstream_option),
        },
        "data": {
            "dir": str(Path(args.data).resolve()) if args.data else None,
            "mini_profile": args.mini_profile,
            "mini_seed": args.mini_seed,
            "cache_dir": args.cache_dir,
        },
        "device": args.device,
        "threads": args.threads,
        **cfg,
    }
    if args.upstream_feature:
        cfg["upstream"]["feature"] = args.upstream_feature
    if args.seed is not None:
        cfg["runner"]["seed"] = args.seed
    # file/module upstreams ("path/to/file.py:Class") get a flat, filesystem-safe folder name
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.name.replace("\\", "/").split("/")[-1])
    output = args.output or f"runs/{label}-{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    results = run_benchmark(cfg, output, resume=args.resume, progress=not args.quiet)
    print(f"results: {Path(output) / 'results.json'}")
    for split, metrics in results["metrics"].items():
        shown = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
        print(f"  {split}: {shown}")
    return 0


def cmd_evaluate(args) -> int:
    from .runner import evaluate_run

    metrics = evaluate_run(args.run_dir, split=args.split, device=args.device, progress=not args.quiet,
                           upstream=args.upstream, trust_run_dir=args.trust_run_dir, sets=args.sets)
    print(json.dumps({"split": args.split, "metrics": metrics}, indent=2))
    return 0


def cmd_list(args) -> int:
    from superb.downstream.tasks import list_tasks
    from superb.upstream import list_upstreams

    if args.what in ("all", "upstreams"):
        print("Upstreams (name, frames per second, hidden states, weights):")
        for s in list_upstreams():
            print(f"  {s.name:<16} {16000 / s.downsample_rate:>5.0f} fps  layers {s.layers:<6} {s.description}")
            print(f"  {'':<16} formats: {'; '.join(s.formats)}")
    if args.what in ("all", "tasks"):
        print("Tasks (name, category, metric, dataset):")
        for t in list_tasks():
            metric = ", ".join(f"{m} {'↑' if up else '↓'}" for m, up in t.metrics.items())
            print(f"  {t.name:<6} {t.category:<15} {metric:<20} {t.dataset}")
            print(f"  {'':<6} --data: {t.data_help}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="superb", description="Benchmark speech representations the SUPERB way.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train and test one upstream on one task")
    run.add_argument("--upstream", required=True, help="upstream name (`superb list`)")
    run.add_argument("--task", required=True, help="task id (`superb list tasks`)")
    run.add_argument("--data", help="corpus folder in its official layout; default: the embedded mini corpus")
    run.add_argument("--upstream-ckpt", help="checkpoint file or model folder of a pretrained upstream")
    run.add_argument("--random-init", action="store_true", help="benchmark the untrained architecture (recorded in results)")
    run.add_argument("--upstream-option", action="append", metavar="KEY=VALUE", help="option passed to the upstream (repeatable)")
    run.add_argument("--upstream-feature", metavar="NAME",
                     help="hidden states given to the featurizer: hidden_states (default, all), last_hidden_state, "
                          "hidden_state_N, or layers:0,3,5-7 (s3prl's -s)")
    run.add_argument("--config", help="YAML file overriding the task recipe")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key, e.g. optimizer.lr=1e-3")
    run.add_argument("--max-steps", type=int, help="training steps (overrides runner.total_steps)")
    run.add_argument("--output", help="run directory (default runs/<upstream>-<task>-<time>)")
    run.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    run.add_argument("--threads", type=int, help="CPU threads (default: half the cores this process may use)")
    run.add_argument("--resume", action="store_true", help="continue the run in --output from its last save")
    run.add_argument("--seed", type=int, help="overrides runner.seed")
    run.add_argument("--mini-profile", default="default", choices=["tiny", "default"], help="mini corpus profile")
    run.add_argument("--mini-seed", type=int, default=0, help="seed of the generated mini corpus")
    run.add_argument("--cache-dir", help="where the mini corpus is built (default $SUPERB_CACHE_DIR or XDG cache)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    ev = sub.add_parser("evaluate", help="evaluate a run's best checkpoint on a split")
    ev.add_argument("run_dir")
    ev.add_argument("--split", default="test")
    ev.add_argument("--device", default=None)
    ev.add_argument("--quiet", action="store_true")
    ev.add_argument("--upstream", help="the run's upstream, named again; needed to run a custom upstream "
                    "(file.py:Class, module:Class) that the run folder's config.json names")
    ev.add_argument("--trust-run-dir", action="store_true",
                    help="import a custom upstream named in the run folder's config.json without --upstream")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                    help="a decoding setting to evaluate with (repeatable; only the task's decoding keys, e.g. "
                         "ASR task.decoder=kenlm task.kenlm.lm_path=4-gram.arpa)")
    ev.set_defaults(func=cmd_evaluate)

    ls = sub.add_parser("list", help="list upstreams and tasks")
    ls.add_argument("what", nargs="?", default="all", choices=["all", "upstreams", "tasks"])
    ls.set_defaults(func=cmd_list)

    for module in EXTRA_COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("superb: interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, OSError) as exc:  # user errors: bad names, paths, audio, config
        if args.debug:
            raise
        print(f"superb: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
