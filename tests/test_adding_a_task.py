"""docs/adding-a-task.md, followed from the outside: a toy task is added as a plug-in in exactly the
files the document lists (task module, recipe, entry point), then listed, run end to end on the
tiny mini corpus, exported and described -- without editing a file of the toolkit.

Also: no task module imports another task module (the shared pieces live in corpora/, heads/,
metrics/), and every task's declaration is complete."""
import ast
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from superb.benchmark.cli import main
from superb.downstream import tasks as task_pkg

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "adding-a-task.md"

TOY_MODULE = textwrap.dedent('''
    """A toy task: is the spoken command "yes"? (binary, on the Speech Commands layout)."""
    from pathlib import Path

    import torch
    import torch.nn.functional as F

    from superb.downstream.corpora.speech_commands import prepare_speech_commands
    from superb.downstream.example import Example
    from superb.downstream.heads.pooling import UtterancePooledHead
    from superb.downstream.metrics.classification import accuracy
    from superb.downstream.tasks.base import Task, write_lines
    from superb.downstream.tasks.declaration import HIGHER, PERCENT, Metric

    LABELS = ("other", "yes")


    class YesDetection(Task):
        name = "toy_yes"
        title = "Toy: yes or not"
        category = "content"
        dataset = "Speech Commands v0.01 (yes vs everything else)"
        metrics = {"accuracy": Metric(HIGHER, PERCENT)}
        primary_metric = "accuracy"
        mini_split = "speech_commands"
        recipe = "toy_yes.yaml"
        data_help = "the Speech Commands folder"

        def prepare(self, data_dir):
            splits = prepare_speech_commands(Path(data_dir))
            return {k: [Example(e.id, e.audio, "yes" if e.label == "yes" else "other") for e in v]
                    for k, v in splits.items()}

        def build_head(self, input_dim, downsample_rate):
            return UtterancePooledHead(input_dim, int(self.cfg["projector_dim"]), len(LABELS))

        def loss(self, head, feats, lengths, examples):
            target = torch.tensor([LABELS.index(e.label) for e in examples], device=feats.device)
            return F.cross_entropy(head(feats, lengths), target)

        def predict(self, head, feats, lengths, examples):
            return [LABELS[i] for i in head(feats, lengths).argmax(-1).tolist()]

        def score(self, examples, predictions):
            return {"accuracy": accuracy([e.label for e in examples], predictions)}

        def write_predictions(self, out_dir, split, examples, predictions):
            lines = [f"{e.id} {p}" for e, p in zip(examples, predictions)]
            return [write_lines(Path(out_dir) / split / "predict.txt", lines)]
''')

TOY_RECIPE = textwrap.dedent("""
    task:
      name: toy_yes
      projector_dim: 32
    runner:
      total_steps: 100
      eval_every: 50
      save_every: 50
      log_every: 10
      accumulate: 1
      grad_clip: 1.0
      seed: 7
      precision: fp32
    optimizer:
      name: Adam
      lr: 1.0e-3
    scheduler:
      name: constant
      warmup_steps: 0
    batch:
      max_seconds: 8.0
      eval_max_seconds: 32.0
    featurizer:
      layer: null
      layer_norm: false
    mini:
      runner:
        total_steps: 4
        eval_every: 2
""")

ENTRY_POINTS = "[superb.tasks]\ntoy_yes = toy_superb.toy_yes:YesDetection\n"


def _doc_files(section: str):
    """The bullets (text before the dash) of the first list under a ``## <section>`` heading."""
    text = DOC.read_text(encoding="utf-8")
    part = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0].strip().split("\n\n")
    bullets = next(p for p in part if p.startswith("- "))
    return [line[2:].split(" — ")[0].replace("`", "") for line in bullets.splitlines()]


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    """The plug-in, installed by putting its folder on sys.path (what pip does for a wheel)."""
    site = tmp_path / "site"
    files = {
        "toy_superb/__init__.py": "",
        "toy_superb/toy_yes.py": TOY_MODULE,
        "toy_superb/toy_yes.yaml": TOY_RECIPE,
        "toy_superb-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: toy-superb\nVersion: 0.1\n",
        "toy_superb-0.1.dist-info/entry_points.txt": ENTRY_POINTS,
    }
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    monkeypatch.syspath_prepend(str(site))
    task_pkg.refresh()
    yield site, files
    monkeypatch.undo()
    sys.modules.pop("toy_superb.toy_yes", None)
    sys.modules.pop("toy_superb", None)
    task_pkg.refresh()
    assert "toy_yes" not in task_pkg.TASKS


def test_the_doc_lists_the_files_the_plugin_has(toy_plugin):
    _, files = toy_plugin
    listed = _doc_files("A task from outside the toolkit (a plug-in package)")
    assert listed == ["<package>/<task>.py", "<package>/<task>.yaml", "entry point superb.tasks"]
    # what the test wrote: the module, the recipe and the entry point (plus the package's own files)
    wrote = sorted(f for f in files if not f.endswith(("__init__.py", "METADATA")))
    assert wrote == ["toy_superb-0.1.dist-info/entry_points.txt", "toy_superb/toy_yes.py", "toy_superb/toy_yes.yaml"]
    assert ENTRY_POINTS.startswith("[superb.tasks]")
    inside = _doc_files("A task inside the toolkit")
    assert inside == ["downstream/tasks/<task>.py", "recipes/<task>.yaml", "docs/tasks/<task>.md",
                      "tests/test_<task>.py"]
    for pattern in inside[:2]:  # every built-in task has both files
        for name in task_pkg.TASKS:
            if task_pkg.TASKS[name].startswith("superb."):
                info = task_pkg.task_info(name)
                path = ROOT / pattern.replace("<task>", info.recipe or name if "recipes" in pattern else
                                              task_pkg.TASKS[name].split(":")[0].rsplit(".", 1)[1])
                assert path.is_file(), path


def test_a_plugin_task_is_listed_run_and_exported(toy_plugin, tmp_path, capsys):
    assert task_pkg.TASKS["toy_yes"] == "toy_superb.toy_yes:YesDetection"
    info = task_pkg._static_info("toy_superb.toy_yes", "YesDetection")
    assert info is not None and info.recipe == "toy_yes.yaml"  # read from source, like the built-in tasks
    assert main(["list", "tasks"]) == 0
    assert re.search(r"^  toy_yes +content +accuracy ↑", capsys.readouterr().out, flags=re.M)
    out = tmp_path / "run"
    cache = tmp_path / "cache"
    assert main(["run", "--upstream", "fbank", "--task", "toy_yes", "--mini-profile", "tiny", "--cache-dir",
                 str(cache), "--output", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "toy_yes" and results["steps"] == 4
    assert results["metric_units"] == {"accuracy": "percent"} and results["higher_is_better"] == {"accuracy": True}
    assert 0.0 <= results["metrics"]["test"]["accuracy"] <= 100.0
    lines = (out / "predictions" / "test" / "predict.txt").read_text().splitlines()
    assert lines and all(line.split()[1] in ("yes", "other") for line in lines)
    capsys.readouterr()
    assert main(["export", str(out), "--format", "json"]) == 0  # not a leaderboard task: shown apart
    exported = json.loads(capsys.readouterr().out)
    assert "toy_yes" in json.dumps(exported)


# -- the shape of the task package -------------------------------------------------------------------
def _task_modules():
    return sorted({target.split(":")[0] for target in task_pkg.TASKS.values()})


def test_no_task_module_imports_another_task_module():
    task_modules = set(_task_modules())
    for module in task_modules:
        path = task_pkg._module_file(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = task_pkg._imported_from(node, module)
                sources = {source} | {f"{source}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                sources = {a.name for a in node.names}
            else:
                continue
            others = (sources & task_modules) - {module}
            assert not others, f"{module} imports the task module(s) {sorted(others)}"


def test_every_task_declares_everything():
    for info in task_pkg.describe_tasks():
        assert info.category in ("content", "speaker", "paralinguistic", "semantic", "synthesis"), info.name
        assert info.primary_metric in info.metrics and not info.metrics[info.primary_metric].internal
        assert all(d.unit for d in info.metrics.values()), info.name
        assert info.mini_split and task_pkg.recipe_file(info.name).is_file(), info.name
        if info.leaderboard is not None:
            assert info.submission, f"{info.name}: a leaderboard task names its submission files"
            for column in info.leaderboard.columns:
                assert column.result_keys[0] in info.metrics, (info.name, column.name)
