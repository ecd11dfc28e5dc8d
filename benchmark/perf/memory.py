"""Peak memory of duration-batched extraction: bounded by the batch budget, not by the corpus.

Run: ``python -m superb.benchmark.perf.memory [--small 50] [--large 200] [--max-seconds 20]``.

Each corpus size runs in a fresh child process (peak RSS is a high-water mark: it never goes
down inside one process). The child builds a random-init upstream (default ``hubert``, tiny
options with ``--tiny`` for a quick look), makes a synthetic corpus of utterances of 1 to 4 s,
forms ``superb extract``'s duration batches (``--max-seconds`` of padded audio each) and runs the
upstream on every batch, keeping only what ``superb extract`` keeps per file (its hidden states,
here reduced to their frame count so that the saved output does not grow the peak); it reports
the peak resident set size: ``VmHWM`` of ``/proc/self/status`` on Linux (psutil's ``peak_wset``
on Windows; ``tracemalloc`` misses torch's allocations). Printed: both peaks, the RSS before the first batch and the ratio.

With glibc's default allocator the peak still creeps up with the number of batches (the heap
fragments under tensors of changing shapes: measured x1.73 growth for x4 audio); with
``--mmap-threshold 131072`` (``MALLOC_MMAP_THRESHOLD_``, large buffers mmap'ed and returned to the
system when freed) it stays flat (x1.16), which shows the growth is the allocator's, not data
kept alive.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SR = 16000


def peak_rss_bytes() -> int:
    """Peak resident set size of this process: ``VmHWM`` (Linux), else psutil's ``peak_wset``
    (Windows), else ``getrusage`` (macOS reports bytes)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        peak = getattr(psutil.Process().memory_info(), "peak_wset", None)
        if peak:
            return int(peak)
    except ImportError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def child(n: int, max_seconds: float, upstream: str, tiny: bool, threads: int) -> dict:
    import torch

    from superb.benchmark.extract import duration_batches
    from superb.upstream import build_upstream

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    options = dict(num_layers=2, hidden_size=64, num_heads=4, ffn_dim=128) if tiny else {}
    model = build_upstream(upstream, random_init=True, **options).eval()
    g = torch.Generator().manual_seed(1)
    lens = [int(SR * (1 + 3 * torch.rand(1, generator=g).item())) for _ in range(n)]
    batches = duration_batches(lens, max_seconds)
    before = peak_rss_bytes()
    frames = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            wavs = torch.nn.utils.rnn.pad_sequence(
                [torch.randn(lens[i], generator=g) * 0.1 for i in batch], batch_first=True)
            out = model(wavs, torch.tensor([lens[i] for i in batch]))
            frames += int(out.lengths.sum())
            del out, wavs
    return {"utterances": n, "audio_s": sum(lens) / SR, "batches": len(batches), "frames": frames,
            "rss_before_bytes": before, "peak_rss_bytes": peak_rss_bytes(),
            "seconds": time.perf_counter() - start}


def run_child(n: int, args) -> dict:
    cmd = [sys.executable, "-m", "superb.benchmark.perf.memory", "--child", str(n),
           "--max-seconds", str(args.max_seconds), "--upstream", args.upstream, "--threads", str(args.threads)]
    if args.tiny:
        cmd.append("--tiny")
    env = dict(os.environ)
    if args.mmap_threshold is not None:  # glibc: allocations above it are mmap'ed and returned on free
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=50, help="utterances of the small corpus")
    ap.add_argument("--large", type=int, default=200, help="utterances of the large corpus")
    ap.add_argument("--max-seconds", type=float, default=20.0, help="padded audio per batch")
    ap.add_argument("--upstream", default="hubert")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer 64-d model (quick)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mmap-threshold", type=int, default=None,
                    help="set glibc's MALLOC_MMAP_THRESHOLD_ (bytes) in the children: large buffers are then "
                         "returned to the system when freed instead of fragmenting the heap")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.max_seconds, args.upstream, args.tiny, args.threads)))
        return 0
    rows = [run_child(n, args) for n in (args.small, args.large)]
    mib = 1024 ** 2
    print(f"upstream {args.upstream}{' (tiny)' if args.tiny else ''}, budget {args.max_seconds:g} s per batch"
          + (f", MALLOC_MMAP_THRESHOLD_={args.mmap_threshold}" if args.mmap_threshold is not None else ""))
    print("| utterances | audio (s) | batches | RSS before first batch (MiB) | peak RSS (MiB) | time (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['utterances']} | {r['audio_s']:.0f} | {r['batches']} | {r['rss_before_bytes'] / mib:.0f} | "
              f"{r['peak_rss_bytes'] / mib:.0f} | {r['seconds']:.0f} |")
    small, large = rows
    print(f"corpus x{large['audio_s'] / small['audio_s']:.1f}: peak RSS x{large['peak_rss_bytes'] / small['peak_rss_bytes']:.2f} "
          f"(growth above the pre-batch RSS x{(large['peak_rss_bytes'] - large['rss_before_bytes']) / max(1, small['peak_rss_bytes'] - small['rss_before_bytes']):.2f})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
