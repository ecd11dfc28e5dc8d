"""``superb`` command line: run, evaluate, list (and the commands of EXTRA_COMMANDS).

User errors (bad paths, audio, config keys, names) print one line ``superb: error: ...`` and exit
with status 2; ``--debug`` shows the traceback instead.

Start-up stays cheap: building the parser imports no torch. Handlers import what they need when
they run, and the modules of :data:`EXTRA_COMMANDS` are imported only when their subcommand is
chosen -- until then ``superb --help`` lists them with the names and help texts read from their
``register`` function's source (:func:`declared_subcommands`). ``superb list tasks`` reads the
task descriptions from the task modules' source too; ``superb list upstreams`` imports the
upstream modules (and so torch) once, then reads its cached listing (:func:`upstream_listing`).
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

#: modules with ``register(subparsers)`` adding more subcommands
EXTRA_COMMANDS: tuple = (
    "superb.benchmark.extract",
    "superb.benchmark.export",
    "superb.benchmark.submit",
    "superb.benchmark.check_upstream",
    "superb.benchmark.feature_store",
    "superb.benchmark.bench",
    "superb.benchmark.pretrain",
)


def _options(items: List[str]) -> dict:
    from .config import parse_scalar

    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--upstream-option expects key=value, got {item!r}")
        out[key.strip()] = parse_scalar(raw)
    return out


def _relaunched(args) -> Optional[int]:
    """``--nproc N`` (N > 1): this command again in N data-parallel processes (torch.distributed.run);
    its exit status. None: run here (no --nproc, or 1)."""
    if args.nproc is None or args.nproc == 1:
        return None
    from .distributed import relaunch, strip_nproc

    return relaunch(strip_nproc(args.argv), args.nproc)


def cmd_run(args) -> int:
    code = _relaunched(args)
    if code is not None:
        return code
    from . import distributed
    from .api import DEFAULT_CACHE_MAX_GB, default_output, run_config
    from .runner import run_benchmark

    cfg = run_config(args.upstream, args.task, data=args.data, ckpt=args.upstream_ckpt, random_init=args.random_init,
                     options=_options(args.upstream_option), feature=args.upstream_feature, config_file=args.config,
                     sets=args.set or [], max_steps=args.max_steps, seed=args.seed, device=args.device,
                     threads=args.threads, mini_profile=args.mini_profile, mini_seed=args.mini_seed,
                     cache_dir=args.cache_dir, feature_cache=args.feature_cache, cache_dtype=args.cache_dtype,
                     cache_max_gb=DEFAULT_CACHE_MAX_GB if args.cache_max_gb is None else args.cache_max_gb,
                     workers=args.workers, tensorboard=not args.no_tensorboard)
    ctx = distributed.context(args.device)
    output = args.output or default_output(cfg["upstream"]["name"], cfg["task"]["name"])
    output = ctx.broadcast(output)  # one folder for every process of a data-parallel run (its time stamp)
    try:
        results = run_benchmark(cfg, output, resume=args.resume, progress=not args.quiet)
    finally:
        distributed.shutdown()
    if ctx.main:
        _print_results(output, results)
    return 0


def _print_results(output, results) -> None:
    print(f"results: {Path(output) / 'results.json'}")
    for split, metrics in results["metrics"].items():
        shown = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
        print(f"  {split}: {shown}")
    sweep = results.get("sweep")
    if sweep and "per_fold" in sweep:  # a cross-validated task: each fold picks its rate on its dev set
        rows = ", ".join(f"fold {k}: lr {v['best_lr']:g}" for k, v in sweep["per_fold"].items())
        print(f"  learning rates chosen by each fold's dev {results['primary_metric']}: {rows}")
    elif sweep:
        primary = results["primary_metric"]
        rows = ", ".join(f"lr {m['lr']:g} {m['best_dev']:.2f}" for m in sweep["members"])
        print(f"  learning rates (best dev {primary}): {rows}; reported: lr {sweep['best_lr']:g} "
              f"({Path(output) / next(m['dir'] for m in sweep['members'] if m['lr'] == sweep['best_lr'])})")


def cmd_resume(args) -> int:
    code = _relaunched(args)
    if code is not None:
        return code
    from . import distributed
    from .runner import resume_run

    try:  # under torchrun the runner joins the process group with the backend of the run's device
        results = resume_run(args.run_dir, device=args.device, threads=args.threads, workers=args.workers,
                             total_steps=args.max_steps, tensorboard=False if args.no_tensorboard else None,
                             progress=not args.quiet, upstream=args.upstream, trust_run_dir=args.trust_run_dir)
        main = distributed.context(args.device).main
    finally:
        distributed.shutdown()
    if main:
        _print_results(args.run_dir, results)
    return 0


def cmd_evaluate(args) -> int:
    from .runner import evaluate_run

    metrics = evaluate_run(args.run_dir, split=args.split, device=args.device, progress=not args.quiet,
                           upstream=args.upstream, trust_run_dir=args.trust_run_dir, sets=args.sets)
    print(json.dumps({"split": args.split, "metrics": metrics}, indent=2))
    return 0


def _table(rows: List[Tuple[str, ...]]) -> Tuple[List[str], str]:
    """Rows padded to column widths computed from their content (the last column is not padded),
    two spaces apart, and the indent of the second column (for continuation lines)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  " + "  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]).rstrip() for r in rows]
    return lines, " " * (2 + widths[0] + 2)


def _upstream_listing_key() -> str:
    """What the list of upstreams depends on: superb's version, every source file of the
    ``superb.upstream`` package (path, size, mtime) and the installed ``superb.upstreams`` plug-in
    entry points (name, target, distribution and version). Computed without importing torch."""
    import hashlib
    from importlib import metadata

    import superb

    spec = importlib.util.find_spec("superb.upstream")
    parts = [f"superb {superb.__version__}"]
    for root in spec.submodule_search_locations or []:
        for f in sorted(Path(root).rglob("*.py")):
            st = f.stat()
            parts.append(f"{f.relative_to(root)} {st.st_size} {st.st_mtime_ns}")
    try:
        eps = metadata.entry_points(group="superb.upstreams")
    except TypeError:  # pragma: no cover - Python < 3.10
        eps = metadata.entry_points().get("superb.upstreams", [])
    for ep in sorted(eps, key=lambda e: (e.name, e.value)):
        dist = getattr(ep, "dist", None)
        parts.append(f"ep {ep.name}={ep.value} {dist.name if dist else ''} {dist.version if dist else ''}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def upstream_listing() -> Tuple[List[Dict[str, object]], List[str]]:
    """``(rows, warnings)`` for ``superb list upstreams``: name, downsample rate, layers,
    description and formats of every registered upstream, and the warnings of plug-ins that
    failed to load.

    Listing needs the upstream modules imported (their specs are built in code, with torch), about
    2 s; the result is kept in ``<cache dir>/listing/upstreams-<key>.json``, keyed on everything
    it depends on (:func:`_upstream_listing_key`), so later listings read one small file and
    import no torch. A missing or unreadable cache file is rebuilt."""
    import warnings

    from superb.downstream.fileio import atomic_write_json
    from superb.downstream.fileio import default_cache_dir

    path = default_cache_dir() / "listing" / f"upstreams-{_upstream_listing_key()}.json"
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        return cached["rows"], cached["warnings"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from superb.upstream import list_upstreams

        specs = list_upstreams()
    rows = [{"name": s.name, "downsample_rate": s.downsample_rate, "layers": str(s.layers),
             "description": s.description, "formats": list(s.formats)} for s in specs]
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"rows": rows, "warnings": notes})
    except OSError:
        pass  # a read-only cache only costs the next listing its 2 s
    return rows, notes


def cmd_list(args) -> int:
    if args.what in ("all", "upstreams"):
        from superb.downstream.audio import SAMPLE_RATE

        rows, notes = upstream_listing()
        for note in notes:
            print(f"superb: warning: {note}", file=sys.stderr)
        print("Upstreams (name, frames per second, hidden states, description; then the weights it loads):")
        fps = [f"{SAMPLE_RATE / r['downsample_rate']:.0f} fps" for r in rows]
        fps = [f.rjust(max(map(len, fps))) for f in fps]
        lines, indent = _table([(r["name"], f, f"layers {r['layers']}", r["description"]) for r, f in zip(rows, fps)])
        for line, r in zip(lines, rows):
            print(line)
            print(f"{indent}formats: {'; '.join(r['formats'])}")
    if args.what in ("all", "tasks"):
        from superb.downstream.tasks import describe_tasks

        infos = describe_tasks()
        print("Tasks (name, category, metrics with the primary first (↑ higher / ↓ lower is better), dataset):")
        metrics = [", ".join(f"{m} {'↑' if up else '↓'}" for m, up in t.shown_metrics()) for t in infos]
        lines, indent = _table([(t.name, t.category, m, t.dataset) for t, m in zip(infos, metrics)])
        for line, t in zip(lines, infos):
            print(line)
            print(f"{indent}--data: {t.data_help}")
    return 0


def cmd_show_recipe(args) -> int:
    """Print a task's recipe as shipped, comments included (no torch imported)."""
    from superb.downstream.tasks import recipe_file

    path = recipe_file(args.task)
    print(f"# {path}")
    print(Path(path).read_text(encoding="utf-8"), end="")
    return 0


def declared_subcommands(module: str) -> Optional[List[Tuple[str, Dict[str, object]]]]:
    """``[(name, {"help": ..., "aliases": ...}), ...]`` of the subcommands ``module.register(sub)``
    adds, read from its source without importing it; None when the source does not say plainly
    (``sub`` used other than in top-level ``sub.add_parser("name", help="...")`` statements, or
    values that are not literals): the caller then imports the module."""
    try:
        spec = importlib.util.find_spec(module)
        origin = spec.origin if spec is not None else None
        if not origin or not origin.endswith(".py"):
            return None
        source = Path(origin).read_text(encoding="utf-8")
        tree = None
        # parse only `def register` up to the next top-level line (a cut inside a string or a
        # bracket is a SyntaxError: then the whole file is parsed)
        start = re.search(r"^def register\(", source, re.M)
        if start and not source[:start.start()].rstrip().rsplit("\n", 1)[-1].startswith("@"):
            end = re.compile(r"^[^\s#]", re.M).search(source, start.end())
            try:
                tree = ast.parse(source[start.start():end.start() if end else None])
            except SyntaxError:
                tree = None
        if tree is None:
            tree = ast.parse(source, filename=origin)
    except (ImportError, OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    func = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "register"), None)
    if func is None or not func.args.args or func.decorator_list:
        return None
    sub = func.args.args[0].arg
    out: List[Tuple[str, Dict[str, object]]] = []
    for stmt in func.body:
        call = stmt.value if isinstance(stmt, (ast.Assign, ast.Expr, ast.AnnAssign)) else None
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "add_parser"
                and isinstance(call.func.value, ast.Name) and call.func.value.id == sub):
            try:
                name = ast.literal_eval(call.args[0]) if len(call.args) == 1 else None
                kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("help", "aliases")}
            except (ValueError, TypeError, SyntaxError):
                return None
            if not isinstance(name, str) or any(k.arg is None for k in call.keywords):
                return None
            out.append((name, kw))
            uses = [n for arg in [*call.args, *call.keywords] for n in ast.walk(arg)]
        else:
            uses = list(ast.walk(stmt))
        if any(isinstance(n, ast.Name) and n.id == sub for n in uses):
            return None  # `sub` handed on or used another way: only importing tells
    return out


class LazySubcommands(argparse._SubParsersAction):
    """Subparsers whose :data:`EXTRA_COMMANDS` modules are imported when their command is chosen.

    :meth:`add_module` adds a placeholder per declared subcommand (shown in ``--help`` as the
    real one would be); choosing one imports the module and lets its ``register`` replace the
    placeholders, at the same place in the help and the choices."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lazy: Dict[str, str] = {}  # placeholder name or alias -> module

    def add_module(self, module: str) -> None:
        declared = declared_subcommands(module)
        if declared is None:
            importlib.import_module(module).register(self)
            return
        for name, kw in declared:
            self.add_parser(name, add_help=False, **kw)
            for key in (name, *kw.get("aliases", ())):
                self._lazy[key] = module

    def load(self, module: str) -> None:
        """Import ``module`` and register its real subparsers in place of the placeholders."""
        names = [k for k, m in self._lazy.items() if m == module]
        choice_order, help_order = list(self._name_parser_map), [a.dest for a in self._choices_actions]
        for key in names:
            del self._lazy[key]
            self._name_parser_map.pop(key, None)
        self._choices_actions[:] = [a for a in self._choices_actions if a.dest not in names]
        importlib.import_module(module).register(self)
        rank = {k: i for i, k in enumerate(choice_order)}
        parsers = sorted(self._name_parser_map.items(), key=lambda kv: rank.get(kv[0], len(rank)))
        self._name_parser_map.clear()
        self._name_parser_map.update(parsers)
        rank = {k: i for i, k in enumerate(help_order)}
        self._choices_actions.sort(key=lambda a: rank.get(a.dest, len(rank)))

    def __call__(self, parser, namespace, values, option_string=None):
        module = self._lazy.get(values[0]) if values else None
        if module is not None:
            self.load(module)
        super().__call__(parser, namespace, values, option_string)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="superb", description="Benchmark speech representations the SUPERB way.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, action=LazySubcommands)

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
    run.add_argument("--cache-dir", help="where the mini corpus is built and the feature store kept (<dir>/features; "
                     "default $SUPERB_CACHE_DIR or XDG cache)")
    run.add_argument("--feature-cache", default="auto", choices=["auto", "frames", "off"],
                     help="store the frozen upstream's hidden states and reuse them across epochs, tasks and runs "
                          "(auto: time-means for linear pooled heads, frames otherwise; off: compute every step)")
    run.add_argument("--cache-max-gb", type=float,
                     help="disk budget of the feature store in GB (default 20; a full store stops growing)")
    run.add_argument("--cache-dtype", default="fp32", choices=["fp32", "fp16", "bf16"],
                     help="storage precision of the feature store (fp32, the default, is exact)")
    run.add_argument("--workers", type=int,
                     help="input-pipeline processes reading audio and stored features ahead (default: from the cores)")
    run.add_argument("--no-tensorboard", action="store_true",
                     help="write no TensorBoard event files (<output>/tensorboard/; config key tensorboard)")
    run.add_argument("--nproc", type=int, metavar="N",
                     help="train data-parallel in N processes on this machine (re-launches through torchrun; "
                          "one GPU each on CUDA)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    res = sub.add_parser("resume", help="continue a stopped run from its folder alone")
    res.add_argument("run_dir")
    res.add_argument("--max-steps", type=int, help="train to this many steps instead (runner.total_steps)")
    res.add_argument("--device", default=None, help="another device than the run's")
    res.add_argument("--threads", type=int, help="CPU threads (default: the run's)")
    res.add_argument("--workers", type=int, help="input-pipeline processes (default: the run's)")
    res.add_argument("--no-tensorboard", action="store_true",
                     help="write no more TensorBoard event files (default: as the run did)")
    res.add_argument("--nproc", type=int, metavar="N", help="continue data-parallel in N processes (see run --nproc)")
    res.add_argument("--quiet", action="store_true", help="no progress output")
    res.add_argument("--upstream", help="the run's custom upstream (file.py:Class, module:Class), named again")
    res.add_argument("--trust-run-dir", action="store_true",
                     help="import a custom upstream named in the run folder's config.json without --upstream")
    res.set_defaults(func=cmd_resume)

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

    show = sub.add_parser("show-recipe", help="print a task's recipe (its protocol settings, with their sources)")
    show.add_argument("task", help="task name (superb list tasks)")
    show.set_defaults(func=cmd_show_recipe)

    for module in EXTRA_COMMANDS:
        sub.add_module(module)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for `run --nproc N` to launch itself again
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
