"""Read speed of the feature store: ``Namespace.get`` against ``np.load`` of one ``.npy`` per entry.

Writes ``--entries`` entries of ``--layers`` x [``--frames``, ``--dim``] float32 (default 1000 of
13 x [50, 768], 2 MB each) both ways into a temporary folder, then reads them all back, passes
alternating, and prints the best time of each and their ratio. Both reads are eager (every byte
is read into memory) and both end in float32 torch tensors. ``--cold`` drops each file from the
page cache (``posix_fadvise(DONTNEED)``) before every pass, so reads come from disk.

    python -m superb.benchmark.perf.store_read [--entries 1000] [--dtype fp32] [--cold]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def _evict(paths) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="evict the files from the page cache before each pass")
    ap.add_argument("--dir", help="work folder (default: a temporary one, deleted at the end)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from superb.benchmark.feature_store import FeatureStore

    torch.set_num_threads(1)
    work = Path(args.dir or tempfile.mkdtemp(prefix="store-read-"))
    try:
        ns = FeatureStore(work / "store").namespace({"upstream": "perf", "layers": args.layers}, args.dtype)
        npy = work / "npy"
        npy.mkdir(parents=True, exist_ok=True)
        gen = torch.Generator().manual_seed(0)
        items = [f"{i:064x}" for i in range(args.entries)]
        np_dtype = {"fp32": np.float32, "fp16": np.float16, "bf16": np.float32}[args.dtype]
        for item in items:
            layers = torch.randn(args.layers, args.frames, args.dim, generator=gen)
            ns.put(item, list(layers))
            np.save(npy / f"{item}.npy", layers.numpy().astype(np_dtype))
        store_files = [str(ns._path(i)) for i in items]
        npy_files = [str(npy / f"{i}.npy") for i in items]

        def read_store():
            for item in items:
                ns.get(item)

        def read_npy():
            for p in npy_files:
                torch.from_numpy(np.load(p)).float()  # float() is a no-op for fp32

        best = {"store": float("inf"), "npy": float("inf")}
        for _ in range(args.passes):
            for name, fn, files in (("store", read_store, store_files), ("npy", read_npy, npy_files)):
                if args.cold:
                    _evict(files)
                t = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t)
        mb = sum(os.path.getsize(p) for p in store_files) / 1e6
        n = args.entries
        print(f"{n} entries of {args.layers} x [{args.frames}, {args.dim}] {args.dtype}, "
              f"{mb / n:.2f} MB each, {'cold' if args.cold else 'warm'} page cache, best of {args.passes}")
        for name in ("store", "npy"):
            print(f"  {name:5s} {best[name] * 1e3 / n:7.3f} ms/entry  {mb / best[name]:7.0f} MB/s")
        print(f"  ratio np.load / get: {best['npy'] / best['store']:.2f} (> 1: the store reads faster)")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
