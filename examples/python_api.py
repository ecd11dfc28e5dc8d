"""The Python API from a notebook or script: benchmark an in-memory model, re-evaluate it, export.

    python examples/python_api.py [OUTPUT_DIR]

Runs keyword spotting on the embedded mini corpus (tiny profile, a few steps: seconds on a CPU)
with an untrained model built in memory, and with the FBANK baseline for comparison.
"""
import sys
import tempfile
from pathlib import Path

import torch

import superb
from my_upstream import MyUpstream  # examples/my_upstream.py: any superb.upstream.Upstream works


def main(out: Path) -> dict:
    torch.manual_seed(0)
    model = MyUpstream(dim=32)  # in memory: no file, no registration
    quick = {"runner.total_steps": 6, "runner.eval_every": 3, "runner.save_every": 3}
    mine = superb.run(model, "ks", output=out / "mine-ks", mini_profile="tiny", overrides=quick, progress=False)
    print(mine)
    again = superb.evaluate(mine.output_dir, upstream=model, progress=False)  # the module is needed again
    assert again["accuracy"] == mine.test["accuracy"]
    base = superb.run("fbank", "ks", output=out / "fbank-ks", mini_profile="tiny", overrides=quick, progress=False)
    print(base)
    board = superb.export([mine.output_dir, base.output_dir])
    for row in board["upstreams"]:
        print(f"{row['label']:<40} KS accuracy {row['tasks']['ks']['values']}")
    return {"mine": mine, "fbank": base, "board": board}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="superb-api-")))
