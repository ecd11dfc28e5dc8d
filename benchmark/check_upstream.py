"""``superb check-upstream NAME``: does an upstream keep the contract the benchmark relies on?

The model is frozen the way the runner freezes it (``eval()``, ``requires_grad_(False)``) and run
on small synthetic batches. Checks (PASS / WARN / FAIL; any FAIL makes the exit status 1):

* declared     ``hidden_sizes`` are positive ints, ``num_layers == len(hidden_sizes)``, an integer
               ``downsample_rate`` > 0
* output       an ``UpstreamOutput`` with ``num_layers`` hidden states, each ``[B, T', D_l]`` with
               ``D_l == hidden_sizes[l]``, one ``T'`` for all layers, floating point, finite on
               valid frames
* lengths      a ``LongTensor[B]`` with ``0 < lengths <= T'``, the longest utterance filling
               ``T'``, non-decreasing in the input length, and equal to the frames each utterance
               gets when run alone (unpadded)
* frame rate   the measured samples per frame (difference of two single-utterance runs, 2 s and
               4 s) against the declared ``downsample_rate``
* determinism  two runs of the same batch in eval mode give identical values
* batch        each utterance's valid frames in a padded batch against the same utterance alone
  invariance   (max abs difference <= 1e-4 x max(1, scale)). WARN only: models that normalise
               over time (wav2vec 2.0 Base's group-norm CNN) legitimately differ, as in fairseq.
* frozen       after a backward pass through a learnable weighted sum of the hidden states, no
               upstream parameter holds a gradient, no parameter requires one, the hidden states
               do not require grad, and forward leaves the buffers unchanged
* speed        wall time of one 10 s clip (after a warm-up), as a real-time factor
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import torch

from superb.upstream.base import SAMPLE_RATE

PASS, WARN, FAIL, INFO = "PASS", "WARN", "FAIL", "INFO"


@dataclass
class Check:
    name: str
    status: str
    detail: str


@dataclass
class Report:
    upstream: str
    checks: List[Check] = field(default_factory=list)
    facts: Dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    @property
    def ok(self) -> bool:
        return not any(c.status == FAIL for c in self.checks)

    def status(self, name: str) -> str:
        return next(c.status for c in self.checks if c.name == name)

    def text(self) -> str:
        lines = [f"check-upstream {self.upstream}"]
        for c in self.checks:
            lines.append(f"  {c.status:<4}  {c.name:<18} {c.detail}")
        nfail = sum(c.status == FAIL for c in self.checks)
        nwarn = sum(c.status == WARN for c in self.checks)
        lines.append(f"result: {'OK' if self.ok else 'FAILED'} ({nfail} failed, {nwarn} warnings)")
        return "\n".join(lines)

    def to_json(self) -> Dict[str, Any]:
        return {"upstream": self.upstream, "ok": self.ok, "checks": [asdict(c) for c in self.checks],
                "facts": self.facts}


class _Abort(Exception):
    """A failed check that makes the later checks meaningless."""


def _signal(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float32) / SAMPLE_RATE
    return 0.1 * torch.sin(2 * math.pi * (150 + 50 * seed) * t) + 0.05 * torch.randn(n, generator=g)


def _batch(lengths: List[int], seed: int = 0):
    wavs = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        wavs[i, :n] = _signal(n, seed + i)
    return wavs, torch.tensor(lengths, dtype=torch.long)


def _run(model, wavs, lens, device):
    with torch.no_grad():
        return model(wavs.to(device), lens.to(device))


def _check_output(report: Report, out, model, batch_size: int, where: str) -> None:
    from superb.upstream import UpstreamOutput

    if not isinstance(out, UpstreamOutput):
        report.add("output", FAIL, f"{where}: forward returned {type(out).__name__}, not UpstreamOutput")
        raise _Abort
    hs, sizes = out.hidden_states, list(model.hidden_sizes)
    problems = []
    if len(hs) != len(sizes):
        problems.append(f"{len(hs)} hidden states, hidden_sizes declares {len(sizes)}")
    for i, h in enumerate(hs):
        if not isinstance(h, torch.Tensor) or h.dim() != 3:
            problems.append(f"state {i} is not a [B, T', D] tensor ({getattr(h, 'shape', type(h).__name__)})")
            continue
        if h.shape[0] != batch_size:
            problems.append(f"state {i} has batch {h.shape[0]}, expected {batch_size}")
        if i < len(sizes) and h.shape[2] != sizes[i]:
            problems.append(f"state {i} has {h.shape[2]} features, hidden_sizes[{i}] = {sizes[i]}")
        if not h.is_floating_point():
            problems.append(f"state {i} has dtype {h.dtype}")
    frames = {h.shape[1] for h in hs if isinstance(h, torch.Tensor) and h.dim() == 3}
    if len(frames) > 1:
        problems.append(f"layers disagree on T': {sorted(frames)}")
    if problems:
        report.add("output", FAIL, f"{where}: " + "; ".join(problems))
        raise _Abort


def check_upstream(model, name: str = "", device: str = "cpu", speed_seconds: float = 10.0,
                   atol: float = 1e-4) -> Report:
    """Run every check on ``model`` (an :class:`~superb.upstream.Upstream`); returns the report."""
    report = Report(name or getattr(model, "upstream_name", type(model).__name__))
    dev = torch.device(device)
    try:
        _checks(report, model, dev, speed_seconds, atol)
    except _Abort:
        report.add("stopped", INFO, "later checks skipped after the failure above")
    except Exception as exc:  # noqa: BLE001 - a crashing upstream is a finding, not a crash of the tool
        report.add("crashed", FAIL, f"{type(exc).__name__}: {exc}")
    return report


def _checks(report: Report, model, dev, speed_seconds: float, atol: float) -> None:
    # -- declared ------------------------------------------------------------------------------
    try:
        sizes = list(model.hidden_sizes)
        rate = model.downsample_rate
        nl = model.num_layers
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        report.add("declared", FAIL, f"reading hidden_sizes / num_layers / downsample_rate failed: {exc}")
        raise _Abort
    bad = []
    if not sizes or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        bad.append(f"hidden_sizes must be positive ints, got {sizes}")
    if nl != len(sizes):
        bad.append(f"num_layers {nl} != len(hidden_sizes) {len(sizes)}")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        bad.append(f"downsample_rate must be a positive int, got {rate!r}")
    if bad:
        report.add("declared", FAIL, "; ".join(bad))
        raise _Abort
    shown = f"{sizes[0]} x {len(sizes)}" if len(set(sizes)) == 1 else str(sizes)
    report.add("declared", PASS, f"{len(sizes)} hidden states (dims {shown}), downsample_rate {rate} "
                                 f"({SAMPLE_RATE / rate:g} frames/s)")
    report.facts.update({"num_layers": len(sizes), "hidden_sizes": sizes, "downsample_rate": rate})

    model.eval().requires_grad_(False).to(dev)
    buffers_before = {k: b.detach().clone() for k, b in model.named_buffers()}

    # -- output shapes ---------------------------------------------------------------------------
    lens = [24000, 16000, 11200]
    wavs, wav_lens = _batch(lens)
    try:
        out = _run(model, wavs, wav_lens, dev)
    except Exception as exc:  # noqa: BLE001
        report.add("output", FAIL, f"forward on a padded batch of {lens} samples raised {type(exc).__name__}: {exc}")
        raise _Abort
    _check_output(report, out, model, len(lens), f"batch of {lens} samples")
    T = out.hidden_states[0].shape[1]
    report.add("output", PASS, f"{len(out.hidden_states)} states of [B={len(lens)}, T'={T}, D] for inputs of {lens} samples")

    # -- lengths -----------------------------------------------------------------------------------
    L = out.lengths
    problems = []
    if L.dtype != torch.long or L.dim() != 1 or L.shape[0] != len(lens):
        report.add("lengths", FAIL, f"lengths must be LongTensor[{len(lens)}], got {L.dtype} {tuple(L.shape)}")
        raise _Abort
    Ll = L.cpu().tolist()
    if min(Ll) <= 0 or max(Ll) > T:
        problems.append(f"lengths {Ll} must lie in 1..T'={T}")
    if max(Ll) != T:
        problems.append(f"the longest utterance has {max(Ll)} valid frames but T'={T} (extra padding frames)")
    if any(Ll[i] < Ll[j] for i in range(len(lens)) for j in range(len(lens)) if lens[i] > lens[j]):
        problems.append(f"lengths {Ll} are not non-decreasing in the input lengths {lens}")
    singles = []
    for i, n in enumerate(lens):
        o = _run(model, wavs[i:i + 1, :n], wav_lens[i:i + 1], dev)
        _check_output(report, o, model, 1, f"single utterance of {n} samples")
        singles.append(o)
    alone = [int(o.lengths[0]) for o in singles]
    full = [o.hidden_states[0].shape[1] for o in singles]
    if alone != Ll:
        problems.append(f"batched lengths {Ll} differ from single-utterance lengths {alone}")
    if alone != full:
        problems.append(f"a single unpadded utterance reports {alone} valid frames of T'={full}")
    finite = all(torch.isfinite(h[i, : Ll[i]]).all() for h in out.hidden_states for i in range(len(lens)))
    if not finite:
        problems.append("NaN or inf in valid frames")
    if problems:
        report.add("lengths", FAIL, "; ".join(problems))
    else:
        report.add("lengths", PASS, f"{Ll} valid frames for {lens} samples; equal when run alone")
    report.facts["lengths"] = {str(n): f for n, f in zip(lens, Ll)}

    # -- frame rate ----------------------------------------------------------------------------
    n1, n2 = 32000, 64000
    f1 = int(_run(model, *_batch([n1], 7), dev).lengths[0])
    f2 = int(_run(model, *_batch([n2], 7), dev).lengths[0])
    measured = (n2 - n1) / (f2 - f1) if f2 != f1 else math.inf
    report.facts["measured_downsample_rate"] = measured
    detail = f"declared {rate}, measured {measured:g} samples/frame ({n1} samples -> {f1} frames, {n2} -> {f2})"
    if math.isfinite(measured) and abs(measured - rate) <= 0.01 * rate:
        report.add("frame rate", PASS, detail)
    else:
        report.add("frame rate", FAIL, detail)

    # -- determinism ---------------------------------------------------------------------------
    again = _run(model, wavs, wav_lens, dev)
    diff = max(float((a[i, : Ll[i]] - b[i, : Ll[i]]).abs().max())
               for a, b in zip(out.hidden_states, again.hidden_states) for i in range(len(lens)))
    if diff == 0.0:
        report.add("determinism", PASS, "two eval-mode runs are identical")
    else:
        report.add("determinism", FAIL, f"two eval-mode runs differ by up to {diff:.3g} (dropout or randomness "
                                        "left on in eval mode?)")

    # -- batch invariance ------------------------------------------------------------------------
    worst, worst_rel = 0.0, 0.0
    for i, single in enumerate(singles):
        n = min(Ll[i], alone[i])
        for hb, hs in zip(out.hidden_states, single.hidden_states):
            d = float((hb[i, :n] - hs[0, :n]).abs().max())
            scale = max(1.0, float(hs[0, :n].abs().max()))
            worst, worst_rel = max(worst, d), max(worst_rel, d / scale)
    report.facts["batch_max_abs_diff"] = worst
    if worst_rel <= atol:
        report.add("batch invariance", PASS, f"padded batch vs alone: max abs diff {worst:.2g}")
    else:
        report.add("batch invariance", WARN, f"padded batch vs alone: max abs diff {worst:.3g} (padding changes valid "
                                             "frames; expected only for models normalising over time)")

    # -- frozen ----------------------------------------------------------------------------------
    problems = []
    weights = torch.zeros(len(sizes), device=dev, requires_grad=True)
    out = model(wavs.to(dev), wav_lens.to(dev))  # with autograd on, as in training
    if any(h.requires_grad for h in out.hidden_states):
        problems.append("hidden states require grad: some upstream computation is not frozen "
                        "(parameters outside the module, or tensors created with requires_grad)")
    if len(set(sizes)) == 1:
        mix = sum(torch.softmax(weights, 0)[i] * h.float() for i, h in enumerate(out.hidden_states))
    else:
        mix = sum(weights[i] * h.float().mean() for i, h in enumerate(out.hidden_states))
    mix.pow(2).mean().backward()
    with_grad = [k for k, p in model.named_parameters() if p.grad is not None]
    needs = [k for k, p in model.named_parameters() if p.requires_grad]
    if with_grad:
        problems.append(f"{len(with_grad)} parameters received gradients ({', '.join(with_grad[:3])}...)")
    if needs:
        problems.append(f"{len(needs)} parameters require grad after forward ({', '.join(needs[:3])}...)")
    if weights.grad is None:
        problems.append("no gradient reached the layer weights (hidden states detached from nothing?)")
    changed = [k for k, b in model.named_buffers() if k in buffers_before and not torch.equal(b, buffers_before[k])]
    if changed:
        problems.append(f"forward changed buffers {', '.join(changed[:3])} in eval mode")
    nparams = sum(p.numel() for p in model.parameters())
    if problems:
        report.add("frozen", FAIL, "; ".join(problems))
    else:
        report.add("frozen", PASS, f"no gradient reaches the {nparams:,} upstream parameters; buffers unchanged")
    report.facts["parameters"] = nparams

    # -- speed -----------------------------------------------------------------------------------
    n = int(speed_seconds * SAMPLE_RATE)
    _run(model, *_batch([16000], 3), dev)
    clip = _batch([n], 5)
    times = []
    for _ in range(2):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        _run(model, *clip, dev)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
    best = min(times)
    report.facts["seconds_per_clip"] = best
    report.add("speed", INFO, f"{speed_seconds:g} s clip in {best * 1000:.1f} ms on {dev} "
                              f"({speed_seconds / max(best, 1e-9):.0f}x real time)")


def cmd_check_upstream(args) -> int:
    from superb.upstream import build_upstream, get_spec

    from .cli import _options

    spec = get_spec(args.name)
    torch.manual_seed(args.seed)
    model = build_upstream(spec.name, ckpt=args.upstream_ckpt, random_init=bool(args.random_init),
                           **_options(args.upstream_option))
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    report = check_upstream(model, spec.name, device=device, speed_seconds=args.seconds)
    print(report.text())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0 if report.ok else 1


def register(sub) -> None:
    p = sub.add_parser("check-upstream", help="validate an upstream against the contract and time it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="upstream name, path/to/file.py:ClassName, module:ClassName or hear:<module>")
    p.add_argument("--upstream-ckpt", help="checkpoint file or model folder")
    p.add_argument("--random-init", action="store_true", help="check the untrained architecture")
    p.add_argument("--upstream-option", action="append", metavar="KEY=VALUE", help="option passed to the upstream")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length of the speed check (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed for random-init weights")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.set_defaults(func=cmd_check_upstream)
