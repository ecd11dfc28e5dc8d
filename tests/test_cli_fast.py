"""The command line starts without torch: `--help`, `run --help` and `list tasks` import neither
torch nor numpy; lazily registered subcommands behave as eagerly registered ones; `superb list`
is aligned and shows each task's metrics without its internal reference values.

Nothing here is timed (tools/bench_cli.py measures); the checks are on what gets imported."""
import json
import subprocess
from pathlib import Path
import sys
import textwrap

import pytest

from superb.benchmark import cli
from superb.benchmark import leaderboard as lb
from superb.downstream import tasks as task_pkg
from superb.downstream.tasks import describe_tasks, list_tasks

HEAVY = ("torch", "torchaudio", "numpy", "scipy", "sklearn", "librosa")


def _modules_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; return which HEAVY modules it left imported."""
    probe = code + f"\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_and_run_help_import_no_torch():
    imported = _modules_after(textwrap.dedent("""
        import contextlib, io
        from superb.benchmark.cli import build_parser
        parser = build_parser()
        for argv in (["--help"], ["run", "--help"], ["list", "--help"], ["evaluate", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()) as out:
                try:
                    parser.parse_args(argv)
                except SystemExit as exc:
                    assert exc.code == 0, argv
            assert "usage: superb" in out.getvalue(), argv
        assert "check-upstream" in parser.format_help() and "export" in parser.format_help()
    """))
    assert not any(imported.values()), imported


def test_list_tasks_imports_no_torch():
    imported = _modules_after(textwrap.dedent("""
        import contextlib, io
        from superb.benchmark.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["list", "tasks"]) == 0
        assert "ks  " in out.getvalue() and "balanced_accuracy" in out.getvalue()
    """))
    assert not any(imported.values()), imported


def test_show_recipe_prints_the_recipe_with_its_comments_and_imports_no_torch():
    from superb.downstream.tasks import recipe_file

    text = Path(recipe_file("asr")).read_text(encoding="utf-8")
    imported = _modules_after(textwrap.dedent(f"""
        import contextlib, io
        from superb.benchmark.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["show-recipe", "ASR"]) == 0  # task names are case-insensitive
        assert out.getvalue().split("\\n", 1)[1] == {text!r}
    """))
    assert "#" in text and not any(imported.values()), imported


def _eager_parser(monkeypatch):
    monkeypatch.setattr(cli, "declared_subcommands", lambda module: None)  # every module imported, as before
    return cli.build_parser()


def _sub_helps(parser):
    sub = next(a for a in parser._actions if isinstance(a, cli.LazySubcommands))
    return {name: p.format_help() for name, p in sub.choices.items()}


def test_lazy_subcommands_match_eager_registration(monkeypatch):
    lazy = cli.build_parser()
    lazy_top = lazy.format_help()
    args = lazy.parse_args(["inspect", "some.pt", "--json"])  # imports superb.benchmark.extract now
    assert args.func.__module__ == "superb.benchmark.extract" and args.path == "some.pt" and args.json
    for argv in (["export", "runs"], ["submit", "runs", "--out", "x.zip"], ["check-upstream", "fbank"],
                 ["cache", "info"], ["bench", "--upstream", "fbank", "--output", "b"],
                 ["pretrain", "--objective", "apc", "--output", "o"]):
        assert lazy.parse_args(argv).command == argv[0]
    eager = _eager_parser(monkeypatch)
    assert lazy_top == lazy.format_help() == eager.format_help()  # same listing, same order, before and after
    assert _sub_helps(lazy) == _sub_helps(eager)


def test_declared_subcommands_reads_register_or_gives_up(tmp_path, monkeypatch, request):
    monkeypatch.syspath_prepend(str(tmp_path))
    request.addfinalizer(lambda: [sys.modules.pop(m, None) for m in ("plain_cmd", "handed_on_cmd", "computed_cmd")])
    (tmp_path / "plain_cmd.py").write_text(textwrap.dedent('''
        def register(sub):
            p = sub.add_parser("hello", help="say " "hello", aliases=["hi"])
            p.set_defaults(func=lambda args: 0)
    '''))
    (tmp_path / "handed_on_cmd.py").write_text(textwrap.dedent('''
        def _add(sub):
            sub.add_parser("hidden", help="made by a helper")
        def register(sub):
            sub.add_parser("shown", help="plain")
            _add(sub)
    '''))
    (tmp_path / "computed_cmd.py").write_text(textwrap.dedent('''
        HELP = "computed"
        def register(sub):
            sub.add_parser("c", help=HELP)
    '''))
    (tmp_path / "wrapped_cmd.py").write_text(textwrap.dedent('''
        def register(sub):
            sub.add_parser("w", help="""two
        lines""")
        # a top-level comment, then more of the module
        def _later():
            pass
    '''))
    assert cli.declared_subcommands("plain_cmd") == [("hello", {"help": "say hello", "aliases": ["hi"]})]
    assert cli.declared_subcommands("wrapped_cmd") == [("w", {"help": "two\nlines"})]  # whole file parsed
    assert cli.declared_subcommands("handed_on_cmd") is None
    assert cli.declared_subcommands("computed_cmd") is None
    monkeypatch.setattr(cli, "EXTRA_COMMANDS", (*cli.EXTRA_COMMANDS, "plain_cmd", "handed_on_cmd"))
    parser = cli.build_parser()
    assert "handed_on_cmd" in sys.modules and "plain_cmd" not in sys.modules  # fallback imported, plain one lazy
    assert "hidden" in parser.format_help() and "say hello" in parser.format_help()
    assert parser.parse_args(["hi"]).func(None) == 0 and "plain_cmd" in sys.modules


def test_task_descriptions_read_from_source_equal_the_classes():
    for info, cls in zip(describe_tasks(), list_tasks()):
        assert info == task_pkg._imported_info(cls), cls.name
        assert task_pkg._static_info(*task_pkg.TASKS[cls.name].split(":")) is not None, cls.name


def test_task_reader_falls_back_when_the_source_does_not_tell(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))  # fake_tasks is read, never imported
    fields = dict(name="x", title="X", category="c", dataset="d", primary_metric="acc")
    body = "".join(f"    {k} = {v!r}\n" for k, v in fields.items()) + "    metrics = {'acc': Metric(HIGHER, PERCENT)}\n"
    (tmp_path / "fake_tasks.py").write_text(
        "from superb.downstream.tasks.base import Task\n"
        "from superb.downstream.tasks.declaration import HIGHER, PERCENT, Metric\n"
        "DIR = 'corpus'\n"
        f"class Full(Task):\n{body}    data_help = f'folder holding {{DIR}}/'\n"
        f"class Inherited(Full):\n    name = 'y'\n"
        f"class Computed(Task):\n{body}    data_help = DIR.upper()\n"
        f"class Shadowed(Task):\n{body}    DIR = 'other'\n    data_help = f'{{DIR}}/'\n"
        f"class Unknown(object):\n{body}    data_help = ''\n"
        f"class OtherCall(Task):\n{body.replace('Metric(', 'dict(')}    data_help = ''\n")
    full = task_pkg._static_info("fake_tasks", "Full")
    assert full is not None and full.data_help == "folder holding corpus/"
    assert full.metrics == {"acc": task_pkg.Metric(True, "percent")} and full.trainable and full.folds == ()
    inherited = task_pkg._static_info("fake_tasks", "Inherited")  # followed to the base class
    assert inherited.name == "y" and inherited.data_help == full.data_help
    assert task_pkg._static_info("fake_tasks", "Computed") is None
    assert task_pkg._static_info("fake_tasks", "Shadowed").data_help == "other/"
    assert task_pkg._static_info("fake_tasks", "Unknown") is None  # a base the reader cannot follow
    assert task_pkg._static_info("fake_tasks", "OtherCall") is None  # only declaration classes are called


def _rows(out: str, header: str):
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header)) + 1
    rows = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        rows.append(line)
    return rows[0::2], rows[1::2]  # entry lines, continuation lines


def test_list_tasks_is_aligned_and_shows_no_internal_metrics(capsys):
    assert cli.main(["list", "tasks"]) == 0
    entries, continued = _rows(capsys.readouterr().out, "Tasks")
    infos = describe_tasks()
    assert [e.split()[0] for e in entries] == [t.name for t in infos]
    columns = set()
    for line, t in zip(entries, infos):
        metric_text = ", ".join(f"{m} {'↑' if up else '↓'}" for m, up in t.shown_metrics())
        cat = line.index(" " + t.category + " ", 2 + len(t.name)) + 1
        met = line.index(metric_text, cat + len(t.category))
        data = line.index(t.dataset, met + len(metric_text))
        columns.add((cat, met, data))
        shown = [m for m, _ in t.shown_metrics()]
        arrow = "↑" if t.metrics[t.primary_metric].higher_is_better else "↓"
        assert shown[0] == t.primary_metric and metric_text.split(", ")[0] == f"{t.primary_metric} {arrow}"
        for m, d in t.metrics.items():
            assert (m in shown) != d.internal, (t.name, m)
        if t.name in lb.TASKS:  # every leaderboard column of the task is shown, none is internal
            for metric in lb.TASKS[t.name].metrics:
                assert metric.result_keys[0] in shown and not t.metrics[metric.result_keys[0]].internal
    assert len(columns) == 1, columns  # one start column each for category, metrics, dataset
    assert {len(c) - len(c.lstrip()) for c in continued} == {next(iter(columns))[0]}
    text = "\n".join(entries)
    for internal in ("wer_constant", "cer_constant", "bleu_constant", "pesq_failed", "pesq_input", "stoi_input",
                     "si_sdr_input", "mcd_source"):
        assert internal not in text
    ks = next(e for e in entries if e.startswith("  ks "))
    assert "accuracy ↑, balanced_accuracy ↑" in ks
    vc = next(e for e in entries if e.startswith("  vc "))
    assert "mcd ↓, wer ↓, cer ↓, accept ↑" in vc


def test_list_upstreams_is_aligned(capsys):
    assert cli.main(["list", "upstreams"]) == 0
    entries, continued = _rows(capsys.readouterr().out, "Upstreams")
    assert len(entries) >= 10 and len(entries) == len(continued)
    fps_ends = {line.index(" fps") for line in entries}
    layers = {line.index("layers ") for line in entries}
    assert len(fps_ends) == 1 and len(layers) == 1
    name_width = max(len(e.split()[0]) for e in entries)
    assert {len(c) - len(c.lstrip()) for c in continued} == {2 + name_width + 2}
    assert all(c.lstrip().startswith("formats: ") for c in continued)


@pytest.mark.parametrize("name", ["wer_constant", "cer_constant", "bleu_constant", "pesq_failed", "pesq_input",
                                  "si_sdr_input", "mcd_source"])
def test_internal_metrics_are_declared_internal(name):
    declared = [d for t in describe_tasks() for m, d in t.metrics.items() if m == name]
    assert declared and all(d.internal for d in declared)
    for t in describe_tasks():
        for m in ("accuracy", "balanced_accuracy", "accept", "wer", "si_sdri"):
            assert m not in t.metrics or not t.metrics[m].internal


def test_list_upstreams_is_cached_and_the_cache_follows_the_sources(tmp_path, monkeypatch):
    """The first listing imports the upstream modules and writes the listing; the next one reads
    it without torch and prints the same; a changed key (a source file touched) rebuilds it."""
    code = textwrap.dedent("""
        import contextlib, io
        from superb.benchmark.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["list", "upstreams"]) == 0
        print(json.dumps(out.getvalue()))
    """)
    env_code = f"import os, json\nos.environ['SUPERB_CACHE_DIR'] = {str(tmp_path)!r}\n" + code

    def listing():
        probe = env_code + f"\nimport sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        text_line, mods_line = out.stdout.strip().splitlines()[-2:]
        return json.loads(text_line), json.loads(mods_line)

    first, mods = listing()
    assert mods["torch"] and "hubert " in first and "fbank " in first
    files = list((tmp_path / "listing").glob("upstreams-*.json"))
    assert len(files) == 1
    second, mods = listing()
    assert second == first and not mods["torch"]
    # the key moves with the upstream sources: a different key is a different file
    monkeypatch.setenv("SUPERB_CACHE_DIR", str(tmp_path))
    key = cli._upstream_listing_key()
    assert files[0].name == f"upstreams-{key}.json"
    files[0].write_text("{not json")  # a damaged listing is rebuilt, not trusted
    third, mods = listing()
    assert third == first and mods["torch"]
