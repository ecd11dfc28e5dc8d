"""Start-up time of the ``superb`` command line, one run, side by side.

    python tools/bench_cli.py [--repeat 5]

Runs ``superb --help``, ``superb run --help``, ``superb list tasks``, ``superb list`` (and two
reference points: a bare interpreter and ``import torch``) in fresh subprocesses, round-robin so
machine load hits every command alike, and prints the median, min and max wall time of each plus
whether the command imported torch (checked in a separate, untimed subprocess).

The commands run as ``python -m superb.benchmark.cli ARGS`` with the interpreter running this
script (the installed ``superb`` script does the same import).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import List, Optional, Sequence, Tuple

#: (label, python arguments); None: a reference row, not a superb command
COMMANDS: Tuple[Tuple[str, List[str]], ...] = (
    ("superb --help", ["-m", "superb.benchmark.cli", "--help"]),
    ("superb run --help", ["-m", "superb.benchmark.cli", "run", "--help"]),
    ("superb list tasks", ["-m", "superb.benchmark.cli", "list", "tasks"]),
    ("superb list", ["-m", "superb.benchmark.cli", "list"]),
    ("(python -c pass)", ["-c", "pass"]),
    ("(python -c 'import torch')", ["-c", "import torch"]),
)

#: runs the CLI in-process and reports whether torch got imported
_PROBE = ("import sys, contextlib, io\n"
          "from superb.benchmark.cli import main\n"
          "with contextlib.redirect_stdout(io.StringIO()):\n"
          "    try:\n"
          "        main(sys.argv[1:])\n"
          "    except SystemExit:\n"
          "        pass\n"
          "print('yes' if 'torch' in sys.modules else 'no')\n")


def wall_time(python: str, args: Sequence[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([python, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return elapsed


def imports_torch(python: str, args: Sequence[str]) -> str:
    if args[:2] != ["-m", "superb.benchmark.cli"]:
        return "yes" if "torch" in " ".join(args) else "no"
    out = subprocess.run([python, "-c", _PROBE, *args[2:]], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per command (median reported)")
    ap.add_argument("--python", default=sys.executable, help="interpreter with superb installed")
    args = ap.parse_args(argv)
    times = {label: [] for label, _ in COMMANDS}
    wall_time(args.python, ["-m", "superb.benchmark.cli", "list"])  # warm the OS file cache and .pyc files
    for _ in range(args.repeat):
        for label, cmd in COMMANDS:
            times[label].append(wall_time(args.python, cmd))
    width = max(len(label) for label, _ in COMMANDS)
    print(f"{'command':<{width}}  median s  min s  max s  imports torch")
    for label, cmd in COMMANDS:
        t = times[label]
        print(f"{label:<{width}}  {statistics.median(t):>8.2f}  {min(t):>5.2f}  {max(t):>5.2f}  "
              f"{imports_torch(args.python, cmd)}")
    print(f"({args.repeat} fresh subprocesses each, round-robin; {sys.platform}, python "
          f"{sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
