"""Per-task protocol configs (YAML), installed with the package.

``load_recipe("ks")`` returns the recipe of a task as a dict. Recipes are found through the
package, never relative to the working directory.
"""
from __future__ import annotations

from importlib import resources
from typing import Any, Dict, List

import yaml


def available_recipes() -> List[str]:
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def load_recipe(task: str) -> Dict[str, Any]:
    path = resources.files(__name__) / f"{task}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no recipe for task {task!r}; available: {', '.join(available_recipes())}")
    return yaml.safe_load(path.read_text(encoding="utf-8"))
