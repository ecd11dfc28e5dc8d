"""FBANK / MFCC: the batched Kaldi front end against the per-utterance torchaudio loop, one run.

    OMP_NUM_THREADS=2 python tools/bench_frontend.py [--batches 20] [--batch 16]

Prints seconds of audio per second for both and their ratio (same audio, same process,
interleaved rounds so machine load hits both alike), and the max abs difference on valid frames.
"""
import argparse
import time

import torch

from superb.upstream import build_upstream


def per_utterance(model, wavs, lens):
    return [model._features(w[:n]) for w, n in zip(wavs, lens.tolist())]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    torch.manual_seed(0)
    cases = {"1 s clips (Speech Commands)": (16000, 16001), "0.5-2 s mix": (8000, 32000)}
    for (case, (lo, hi)), name in [(c, n) for c in cases.items() for n in ("fbank", "mfcc")]:
        model = build_upstream(name)
        data = []
        for _ in range(args.batches):
            lens = torch.randint(lo, hi, (args.batch,))
            data.append((torch.randn(args.batch, int(lens.max())) * 0.1, lens))
        seconds = sum(float(l.sum()) for _, l in data) / 16000
        t_loop = t_batch = 0.0
        worst = 0.0
        with torch.no_grad():
            per_utterance(model, *data[0]), model(*data[0])  # warm-up
            for wavs, lens in data:
                t0 = time.perf_counter()
                ref = per_utterance(model, wavs, lens)
                t1 = time.perf_counter()
                out = model(wavs, lens)
                t2 = time.perf_counter()
                t_loop += t1 - t0
                t_batch += t2 - t1
                for i, r in enumerate(ref):
                    worst = max(worst, float((out.hidden_states[0][i, : r.shape[0]] - r).abs().max()))
        print(f"{case:<28} {name}: per-utterance {seconds / t_loop:8.0f} s audio/s | batched {seconds / t_batch:8.0f} s audio/s | "
              f"ratio {t_loop / t_batch:5.1f}x | max |diff| {worst:.2e}")


if __name__ == "__main__":
    main()
