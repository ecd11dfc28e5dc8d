"""One prepared GPU check (issue #14): HuBERT throughput in bf16 and fp32, a KS recipe on CUDA
and on CPU, peak GPU memory. Sized for a machine with one NVIDIA GPU and ~15 minutes of GPU time
in all: the whole check ends in well under 8 minutes, each part under its own time limit.

    python -m superb.benchmark.perf.gpu_check OUT_DIR             # on the GPU machine
    python -m superb.benchmark.perf.gpu_check OUT_DIR --quick     # CPU smoke test, tiny sizes
    tools/gpu-check.sh OUT_DIR                                     # the same, with nvidia-smi

Parts (each runs in its own process with a timeout unless ``--in-process``; a part that fails or
runs out of time is recorded as such and the others still run):

* ``hubert`` -- random-init HuBERT Base (``build_upstream("hubert", random_init=True)``), all
  hidden states of a batch of 2-16 s utterances: warm-up, then timed rounds with
  ``torch.cuda.synchronize`` around them, in bf16 autocast and in fp32; real-time factor (seconds
  of audio per wall second), the max abs difference between the bf16 and fp32 last layer on valid
  frames (also relative to the fp32 layer's max abs value), and each precision's
  ``torch.cuda.max_memory_allocated`` peak.
* ``ks`` -- the KS recipe with the ``fbank`` upstream on the tiny mini corpus
  (``mini_profile="tiny"``), a few hundred steps with the same seed on CUDA and on the CPU,
  through :func:`superb.run` (the project's runner); both runs' metrics, their differences, wall
  times and the CUDA run's peak memory.

Results: ``OUT_DIR/gpu_check.json`` (everything) and ``OUT_DIR/gpu_check.txt`` (a summary).
No network is needed: HuBERT is random-init and the mini corpus is synthesised locally.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

PARTS = ("hubert", "ks")
SAMPLE_RATE = 16000

# full size (the GPU machine) and --quick (a CPU smoke test of the same code paths)
SIZES = {
    "full": {"hubert_seconds": [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0], "hubert_rounds": 10,
             "hubert_warmup": 3, "ks_steps": 200, "hubert_timeout_s": 240, "ks_timeout_s": 180},
    "quick": {"hubert_seconds": [0.5, 1.0], "hubert_rounds": 1, "hubert_warmup": 1, "ks_steps": 10,
              "hubert_timeout_s": 120, "ks_timeout_s": 120},
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m superb.benchmark.perf.gpu_check",
                                 description="HuBERT bf16/fp32 throughput, KS on CUDA vs CPU, peak GPU memory.")
    ap.add_argument("out_dir", help="folder for gpu_check.json and gpu_check.txt (created)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: tiny sizes, device cpu unless --device is given")
    ap.add_argument("--device", default=None, help="device of the GPU side (default: cuda; --quick: cpu)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--ks-steps", type=int, default=None, help="training steps of the KS runs")
    ap.add_argument("--hubert-rounds", type=int, default=None, help="timed batches per precision")
    ap.add_argument("--hubert-timeout-s", type=float, default=None)
    ap.add_argument("--ks-timeout-s", type=float, default=None)
    ap.add_argument("--in-process", action="store_true",
                    help="run the parts in this process (no per-part timeout; for tests)")
    ap.add_argument("--part-json", default=None, help=argparse.SUPPRESS)  # internal: one part -> file
    args = ap.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    size = SIZES["quick" if args.quick else "full"]
    args.device = args.device or ("cpu" if args.quick else "cuda")
    args.ks_steps = args.ks_steps or size["ks_steps"]
    args.hubert_rounds = args.hubert_rounds or size["hubert_rounds"]
    args.hubert_warmup = size["hubert_warmup"]
    args.hubert_seconds = size["hubert_seconds"]
    args.hubert_timeout_s = args.hubert_timeout_s or size["hubert_timeout_s"]
    args.ks_timeout_s = args.ks_timeout_s or size["ks_timeout_s"]
    return args


# ----------------------------------------------------------------------------------------- parts

def _sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device) -> Optional[float]:
    import torch
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)


def hubert_part(args: argparse.Namespace) -> Dict[str, Any]:
    """Random-init HuBERT Base: all hidden states of a 2-16 s batch, bf16 autocast vs fp32."""
    import torch

    from superb.upstream import build_upstream
    from superb.upstream.base import valid_mask

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_upstream("hubert", random_init=True).to(device).eval()
    lens = torch.tensor([int(s * SAMPLE_RATE) for s in args.hubert_seconds])
    gen = torch.Generator().manual_seed(0)
    wavs = torch.randn(len(lens), int(lens.max()), generator=gen) * 0.1
    wavs = (wavs * valid_mask(lens, wavs.shape[1])).to(device)
    wav_lens = lens.to(device)
    audio_s = float(lens.sum()) / SAMPLE_RATE
    result: Dict[str, Any] = {"batch_seconds": args.hubert_seconds, "audio_s_per_batch": audio_s,
                              "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                              "device": str(device)}
    last: Dict[str, torch.Tensor] = {}
    for precision in ("bf16", "fp32"):
        amp = precision == "bf16"

        def forward():
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                return model(wavs, wav_lens)

        _reset_peak(device)
        for _ in range(args.hubert_warmup):
            out = forward()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(args.hubert_rounds):
            out = forward()
        _sync(device)
        wall = time.perf_counter() - t0
        mask = valid_mask(out.lengths, out.hidden_states[-1].shape[1]).unsqueeze(-1)
        last[precision] = (out.hidden_states[-1].float() * mask).cpu()
        result[precision] = {"rounds": args.hubert_rounds, "wall_s": round(wall, 4),
                             "rtf_audio_s_per_s": round(audio_s * args.hubert_rounds / wall, 1),
                             "ms_per_batch": round(1000 * wall / args.hubert_rounds, 2),
                             "hidden_states": len(out.hidden_states),
                             "peak_memory_mib": _peak_mib(device)}
        del out
    diff = (last["bf16"] - last["fp32"]).abs().max().item()
    scale = last["fp32"].abs().max().item()
    result["bf16_vs_fp32_last_layer"] = {"max_abs_diff": diff, "fp32_max_abs": scale,
                                         "relative": diff / scale if scale else None}
    result["bf16_speedup"] = round(result["bf16"]["rtf_audio_s_per_s"] / result["fp32"]["rtf_audio_s_per_s"], 2)
    return result


def ks_part(args: argparse.Namespace, work_dir: Path) -> Dict[str, Any]:
    """The KS recipe (fbank upstream, tiny mini corpus), same seed on the device and on the CPU."""
    import torch

    import superb

    cache = work_dir / "cache"
    result: Dict[str, Any] = {"upstream": "fbank", "task": "ks", "mini_profile": "tiny",
                              "max_steps": args.ks_steps, "seed": 0, "runs": {}}
    for label, device in (("device", args.device), ("cpu", "cpu")):
        dev = torch.device(device)
        _reset_peak(dev)
        t0 = time.perf_counter()
        res = superb.run("fbank", "ks", output=work_dir / f"ks-{label}", max_steps=args.ks_steps, seed=0,
                         device=device, mini_profile="tiny", cache_dir=cache, progress=False)
        data = res.data
        result["runs"][label] = {"device": device, "metrics": data["metrics"], "best_step": data.get("best_step"),
                                 "dev_history": data.get("dev_history"),
                                 "precision": data.get("precision"), "run_wall_s": data.get("wall_time_s"),
                                 "total_wall_s": round(time.perf_counter() - t0, 2),
                                 "peak_memory_mib": _peak_mib(dev)}
    a, b = result["runs"]["device"]["metrics"], result["runs"]["cpu"]["metrics"]
    diffs = {f"{split}/{m}": abs(a[split][m] - b[split][m]) for split in a for m in a[split] if m in b.get(split, {})}
    result["metric_abs_diff"] = diffs
    result["max_metric_abs_diff"] = max(diffs.values()) if diffs else None
    result["identical_metrics"] = a == b
    return result


def run_part(name: str, args: argparse.Namespace, work_dir: Path) -> Dict[str, Any]:
    t0 = time.perf_counter()
    try:
        out = hubert_part(args) if name == "hubert" else ks_part(args, work_dir)
        status = "ok"
    except Exception as e:  # recorded, the other parts still run
        out, status = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}, "failed"
    return {"status": status, "part_wall_s": round(time.perf_counter() - t0, 2), **out}


def run_isolated(name: str, args: argparse.Namespace, out_dir: Path, work_dir: Path,
                 argv: List[str]) -> Dict[str, Any]:
    """One part in a child process under its timeout (a hung CUDA call cannot stall the check)."""
    timeout = args.hubert_timeout_s if name == "hubert" else args.ks_timeout_s
    part_json = work_dir / f"part-{name}.json"
    cmd = [sys.executable, "-m", "superb.benchmark.perf.gpu_check", str(out_dir), *argv,
           "--parts", name, "--in-process", "--part-json", str(part_json)]
    t0 = time.perf_counter()
    log = out_dir / f"gpu_check-{name}.log"
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, cwd=os.getcwd())
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "timeout_s": timeout, "part_wall_s": round(time.perf_counter() - t0, 2),
                    "log": log.name}
    if part_json.is_file():
        return json.loads(part_json.read_text())[name]
    return {"status": "failed", "returncode": proc.returncode, "part_wall_s": round(time.perf_counter() - t0, 2),
            "log": log.name}


# ---------------------------------------------------------------------------------------- output

def environment(device: str) -> Dict[str, Any]:
    import torch
    env: Dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cuda_available": torch.cuda.is_available(), "device": device,
                           "cpu_threads": torch.get_num_threads(), "host": platform.node()}
    if torch.cuda.is_available():
        env.update({"gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                    "cudnn": torch.backends.cudnn.version(),
                    "tf32_matmul": torch.backends.cuda.matmul.allow_tf32})
    return env


def _fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def format_text(results: Dict[str, Any]) -> str:
    env = results.get("environment", {})
    lines = [f"superb GPU check ({results.get('mode')}), {results.get('finished_at', '')}",
             f"torch {env.get('torch')}, device {env.get('device')}, GPU {env.get('gpu', 'none')}, "
             f"total {results.get('total_wall_s')} s", ""]
    h = results.get("parts", {}).get("hubert")
    if h is not None:
        lines.append(f"[hubert] {h.get('status')} in {h.get('part_wall_s')} s")
        if h.get("status") == "ok":
            lines.append(f"  random-init HuBERT Base ({h['params_m']} M params), batch of {h['batch_seconds']} s "
                         f"= {h['audio_s_per_batch']:.1f} s audio, all hidden states")
            for p in ("bf16", "fp32"):
                r = h[p]
                lines.append(f"  {p}: {r['rtf_audio_s_per_s']:>9.1f} s audio / s  ({r['ms_per_batch']} ms/batch, "
                             f"{r['rounds']} rounds), peak {_fmt(r['peak_memory_mib'])} MiB")
            d = h["bf16_vs_fp32_last_layer"]
            lines.append(f"  bf16 speed-up {h['bf16_speedup']}x; last layer bf16 vs fp32: max |diff| "
                         f"{d['max_abs_diff']:.3e} (fp32 max |x| {d['fp32_max_abs']:.3e}, "
                         f"relative {_fmt(d['relative'], '.3e')})")
        else:
            lines.append(f"  {h.get('error') or h.get('log')}")
    k = results.get("parts", {}).get("ks")
    if k is not None:
        lines.append(f"[ks] {k.get('status')} in {k.get('part_wall_s')} s")
        if k.get("status") == "ok":
            lines.append(f"  fbank / ks / mini tiny, {k['max_steps']} steps, seed {k['seed']}")
            for label, r in k["runs"].items():
                test = ", ".join(f"{m} {v:.3f}" for m, v in r["metrics"].get("test", {}).items())
                dev = ", ".join(f"{m} {v:.3f}" for m, v in r["metrics"].get("dev", {}).items())
                lines.append(f"  {label} {r['device']:<6} ({r['precision']}): test {test} | dev {dev} | "
                             f"run {_fmt(r.get('run_wall_s'))} s (with setup {r['total_wall_s']} s) | "
                             f"peak {_fmt(r['peak_memory_mib'])} MiB")
            lines.append(f"  identical metrics: {k['identical_metrics']}; max |diff| {_fmt(k['max_metric_abs_diff'], '.4f')}")
        else:
            lines.append(f"  {k.get('error') or k.get('log')}")
    peaks = [v for v in [results.get("peak_memory_mib")] if v is not None]
    lines += ["", f"peak torch.cuda.max_memory_allocated: {peaks[0] if peaks else '-'} MiB"]
    return "\n".join(lines) + "\n"


def write_results(out_dir, results: Dict[str, Any]) -> Dict[str, Path]:
    """Write ``gpu_check.json`` and ``gpu_check.txt`` into ``out_dir`` (created); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "gpu_check.json", "text": out / "gpu_check.txt"}
    paths["json"].write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")
    paths["text"].write_text(format_text(results))
    return paths


def overall_peak(parts: Dict[str, Any]) -> Optional[float]:
    peaks = []
    for p in parts.values():
        for r in [p.get("bf16"), p.get("fp32"), *p.get("runs", {}).values()]:
            if isinstance(r, dict) and r.get("peak_memory_mib") is not None:
                peaks.append(r["peak_memory_mib"])
    return max(peaks) if peaks else None


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.part_json:  # child: one part, its JSON to a file
        with tempfile.TemporaryDirectory(prefix="superb-gpu-check-") as tmp:
            res = {name: run_part(name, args, Path(tmp)) for name in args.parts}
        Path(args.part_json).write_text(json.dumps(res, default=str))
        return res
    t0 = time.perf_counter()
    if args.device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            print("gpu_check: CUDA is not available (use --quick or --device cpu for a CPU run)", file=sys.stderr)
    # arguments a child repeats (out_dir and the part selection are set per child)
    child_argv = [a for a in argv if a != args.out_dir]
    for flag in ("--parts",):
        if flag in child_argv:
            i = child_argv.index(flag)
            del child_argv[i: i + 2]
    child_argv = [a for a in child_argv if not a.startswith("--parts=")]
    parts: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="superb-gpu-check-") as tmp:
        for name in args.parts:
            print(f"gpu_check: part {name} ...", flush=True)
            if args.in_process:
                parts[name] = run_part(name, args, Path(tmp))
            else:
                parts[name] = run_isolated(name, args, out_dir, Path(tmp), child_argv)
            print(f"gpu_check: part {name}: {parts[name].get('status')} in {parts[name].get('part_wall_s')} s",
                  flush=True)
    results = {"mode": "quick" if args.quick else "full", "environment": environment(args.device),
               "settings": {"ks_steps": args.ks_steps, "hubert_rounds": args.hubert_rounds,
                            "hubert_warmup": args.hubert_warmup, "hubert_seconds": args.hubert_seconds,
                            "hubert_timeout_s": args.hubert_timeout_s, "ks_timeout_s": args.ks_timeout_s},
               "parts": parts, "peak_memory_mib": overall_peak(parts),
               "total_wall_s": round(time.perf_counter() - t0, 2),
               "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    paths = write_results(out_dir, results)
    print(paths["text"].read_text(), end="")
    return results


if __name__ == "__main__":
    main()
