"""FBANK / MFCC: the batched Kaldi front end against the per-utterance torchaudio loop, one run.

    OMP_NUM_THREADS=2 python -m superb.benchmark.perf.frontend [--batches 20] [--batch 32] [--profile]

For each case (batches of 1-s clips, the Speech Commands case, and a 0.5-2 s mix) and each
upstream (``fbank``, ``mfcc``) it times the per-utterance reference (``torchaudio.compliance.kaldi``,
the upstream's ``_features``) and the batched upstream on the same audio in the same process,
in interleaved rounds (the order alternates from round to round) so machine load hits both alike,
and prints seconds of audio per second for both, their ratio (total loop time / total batched
time, and the median of the per-round ratios), the max abs difference on valid frames, and the
time of the float32 FFT of the valid frames alone (the same FFT both paths must run to equal the
reference; ``bound``: loop time / that FFT time, the ratio no front end doing that FFT can beat).
``--profile`` adds a ``torch.profiler`` table of the batched path (operators by self CPU time).
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import List, Optional

import torch

from superb.upstream import build_upstream

CASES = {"1 s clips (Speech Commands)": (16000, 16001), "0.5-2 s mix": (8000, 32001)}


def per_utterance(model, wavs, lens):
    return [model._features(w[:n]) for w, n in zip(wavs, lens.tolist())]


def make_batches(batches: int, batch: int, lo: int, hi: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(batches):
        lens = torch.randint(lo, hi, (batch,), generator=gen)
        data.append((torch.randn(batch, int(lens.max()), generator=gen) * 0.1, lens))
    return data


def measure(name: str, data) -> dict:
    """Interleaved timing of the per-utterance loop and the batched upstream on ``data``."""
    model = build_upstream(name)
    seconds = sum(float(lens.sum()) for _, lens in data) / 16000
    t_loop = t_batch = t_fft = worst = 0.0
    ratios = []
    from superb.upstream.frontends import kaldi_frame_lengths
    fft_inputs = [torch.randn(int(kaldi_frame_lengths(lens).sum()), 512) for _, lens in data]
    with torch.no_grad():
        per_utterance(model, *data[0]), model(*data[0])  # warm-up
        for i, (wavs, lens) in enumerate(data):
            order = ("loop", "batch", "fft") if i % 2 == 0 else ("fft", "batch", "loop")
            times = {}
            for which in order:
                t0 = time.perf_counter()
                if which == "loop":
                    ref = per_utterance(model, wavs, lens)
                elif which == "batch":
                    out = model(wavs, lens)
                else:  # the floor: the float32 FFT of the valid frames alone, which both must do
                    torch.fft.rfft(fft_inputs[i])
                times[which] = time.perf_counter() - t0
            t_loop += times["loop"]
            t_batch += times["batch"]
            t_fft += times["fft"]
            ratios.append(times["loop"] / times["batch"])
            for j, r in enumerate(ref):
                worst = max(worst, float((out.hidden_states[0][j, : r.shape[0]] - r).abs().max()))
    return {"upstream": name, "audio_s": seconds, "loop_rate": seconds / t_loop,
            "batch_rate": seconds / t_batch, "ratio": t_loop / t_batch,
            "median_round_ratio": statistics.median(ratios), "max_abs_diff": worst,
            "fft_share": t_fft / t_batch, "ratio_bound_fft_only": t_loop / t_fft}


def profile(name: str, data, rows: int = 15) -> str:
    model = build_upstream(name)
    with torch.no_grad():
        model(*data[0])
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for wavs, lens in data:
                model(wavs, lens)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv: Optional[List[str]] = None) -> List[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=20, help="batches per case (default 20)")
    ap.add_argument("--batch", type=int, default=32, help="utterances per batch (default 32)")
    ap.add_argument("--upstreams", default="fbank,mfcc")
    ap.add_argument("--profile", action="store_true", help="also print a torch.profiler table")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.batches} batches per case")
    results = []
    for case, (lo, hi) in CASES.items():
        data = make_batches(args.batches, args.batch, lo, hi)
        for name in args.upstreams.split(","):
            r = measure(name, data)
            r["case"] = case
            results.append(r)
            print(f"{case:<28} {name:<5}: per-utterance {r['loop_rate']:7.0f} s audio/s | "
                  f"batched {r['batch_rate']:8.0f} s audio/s | ratio {r['ratio']:5.1f}x "
                  f"(median round {r['median_round_ratio']:5.1f}x) | max |diff| {r['max_abs_diff']:.2e} | "
                  f"FFT alone {100 * r['fft_share']:.0f}% of batched, bound {r['ratio_bound_fft_only']:.1f}x",
                  flush=True)
            if args.profile:
                print(profile(name, data))
    return results


if __name__ == "__main__":
    main()
