"""Hand-written run directories (results.json + prediction files) in the runner's format."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, List, Optional

from superb.benchmark import leaderboard as lb

SHA = {"hubert_base": "a" * 64, "wav2vec2": "b" * 64}


def write_run(root: Path, name: str, task: str, test: Dict[str, float], upstream: str = "hubert_base",
              dev: Optional[Dict[str, float]] = None, files: Optional[Dict[str, str]] = None,
              layer_weights: Optional[List[float]] = None, folds: Optional[Dict[str, dict]] = None,
              fold=None, sha: Optional[str] = None, downsample_rate: int = 320, split_files: Optional[Dict] = None,
              primary: Optional[str] = None, higher: Optional[Dict[str, bool]] = None) -> Path:
    """A finished run: ``files`` are written under ``predictions/test/`` and listed as test predictions."""
    run = root / name
    run.mkdir(parents=True, exist_ok=True)
    preds: Dict[str, List[str]] = {"test": []}
    for rel, text in (files or {}).items():
        p = run / "predictions" / "test" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text)
        preds["test"].append(str(p.relative_to(run)))
    for split, rels in (split_files or {}).items():
        preds[split] = rels
    if primary is None:
        primary = next(iter(test))
    data = {
        "superb_results_version": 1,
        "task": task,
        "task_category": "content",
        "upstream": {"name": upstream, "checkpoint": f"/ckpt/{upstream}.pt",
                     "checkpoint_sha256": sha or SHA.get(upstream, "c" * 64), "weights": "pretrained", "options": {},
                     "num_layers": 13, "hidden_sizes": [768] * 13, "downsample_rate": downsample_rate},
        "metrics": {"dev": dev if dev is not None else dict(test), "test": dict(test)},
        "primary_metric": primary,
        "higher_is_better": higher or {primary: True},
        "metric_units": "percent",
        "layer_weights": layer_weights if layer_weights is not None else [1 / 13] * 13,
        "predictions": preds,
        "config": {"task": {"name": task, **({"fold": fold} if fold is not None else {})}},
        "steps": 10, "wall_time_s": 1.0, "device": "cpu", "versions": {},
    }
    if folds is not None:
        data["folds"] = folds
    (run / "results.json").write_text(json.dumps(data, indent=2))
    return run


def result_keys(task: str) -> Dict[str, str]:
    """Leaderboard metric name -> the canonical results.json key."""
    return {m.name: m.result_keys[0] for m in lb.TASKS[task].metrics}


def write_published_runs(root: Path, names=None, skip=()) -> None:
    """One run per (published upstream, paper-view task) with the published values."""
    for name in names or lb.PUBLISHED_ROWS:
        slug = name.lower().replace(" ", "_").replace(".", "")
        for task, values in lb.PUBLISHED_ROWS[name].items():
            if (name, task) in skip:
                continue
            keys = result_keys(task)
            test = {keys[m]: v / lb.metric(task, m).scale for m, v in values.items()}
            higher = {keys[m]: lb.metric(task, m).higher_is_better for m in values}
            folds = None
            if lb.TASKS[task].folds:
                folds = {str(k): {"metrics": {"test": test}, "predictions": {"test": []}} for k in range(1, 6)}
            write_run(root, f"{slug}/{task}", task, test, upstream=slug, sha=hashlib.sha256(name.encode()).hexdigest(),
                      folds=folds, higher=higher)
