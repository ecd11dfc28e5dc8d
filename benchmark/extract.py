"""``superb extract`` and ``superb inspect``.

:func:`extract_features` runs an upstream on audio files and writes **all** its hidden states
per file to one ``torch.save`` file (plain tensors, dicts and lists: readable with
``torch.load(path, weights_only=True)``)::

    {"upstream": name, "checkpoint": path or None, "random_init": bool,
     "downsample_rate": int, "sample_rate": 16000, "num_layers": L,
     "files": [{"path": str, "num_samples": int, "num_frames": T,
                "hidden_states": [FloatTensor[T, D_l] for each of the L layers]}, ...]}

Files are read in batches formed by duration (:class:`superb.downstream.sampler.DurationBatchSampler`
in length order, at most ``max_seconds`` of padded audio per batch, ``--max-seconds``; 0 = one
file at a time). Every upstream is batch-invariant (``tests/test_padding_invariance.py``), so a
file's features equal the ones it gets alone (within float rounding; ``tests/test_fast_forward.py``
checks it), and the files are written in the order given.

:func:`register` adds both subcommands to the ``superb`` parser (listed in
``superb.benchmark.cli.EXTRA_COMMANDS``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import torch

from superb.upstream.base import SAMPLE_RATE


#: default padded audio per extraction batch (seconds); bounds the peak memory, not the corpus
DEFAULT_MAX_SECONDS = 60.0


def extract_features(upstream, audio_paths: Iterable, output, device: str = "cpu",
                     progress: bool = False, meta: Optional[Dict] = None,
                     max_seconds: float = DEFAULT_MAX_SECONDS) -> Dict:
    """Extract every hidden state of ``upstream`` for each file of ``audio_paths``; save to
    ``output`` and return the saved dict. Audio must be 16 kHz mono (see
    :mod:`superb.downstream.audio`). Files are batched by duration: at most ``max_seconds`` of
    padded audio per forward (``0``: one file at a time); a longer file is a batch of its own."""
    from superb.downstream.audio import load_audio, segment_for

    paths = [Path(p) for p in audio_paths]
    if not paths:
        raise ValueError("superb extract: no audio files given")
    if max_seconds < 0:
        raise ValueError(f"--max-seconds must be >= 0, got {max_seconds}")
    output = Path(output)
    if output.exists() and output.is_dir():
        raise ValueError(f"--output {output} is a folder; give a file name such as feats.pt")
    output.parent.mkdir(parents=True, exist_ok=True)
    segments = [segment_for(p) for p in paths]  # validate every file before the slow part
    upstream = upstream.to(device).eval()
    files: List[Optional[Dict]] = [None] * len(paths)
    done = 0
    for batch in duration_batches([s.num_samples for s in segments], max_seconds):
        wavs = [torch.from_numpy(load_audio(segments[i])) for i in batch]
        lens = torch.tensor([w.shape[0] for w in wavs], device=device)
        padded = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True).to(device)
        with torch.no_grad():
            out = upstream(padded, lens)
        for j, i in enumerate(batch):
            t = int(out.lengths[j])
            files[i] = {
                "path": str(paths[i]),
                "num_samples": int(lens[j]),
                "num_frames": t,
                "hidden_states": [h[j, :t].detach().float().cpu().clone() for h in out.hidden_states],
            }
            done += 1
            if progress:
                print(f"[{done}/{len(segments)}] {paths[i]}: {len(out.hidden_states)} layers x {t} frames")
        del out, padded
    result = {
        "upstream": getattr(upstream, "upstream_name", type(upstream).__name__),
        "checkpoint": None,
        "random_init": False,
        "downsample_rate": int(upstream.downsample_rate),
        "sample_rate": SAMPLE_RATE,
        "num_layers": int(upstream.num_layers),
        "files": files,
    }
    result.update(meta or {})
    torch.save(result, output)
    return result


def duration_batches(num_samples: List[int], max_seconds: float) -> List[List[int]]:
    """Indices of ``num_samples`` in batches of at most ``max_seconds`` of padded audio
    (``len(batch) * longest``), in length order (:class:`DurationBatchSampler` without
    shuffling); ``0`` gives one file per batch. A file longer than the budget is alone."""
    if max_seconds == 0:
        return [[i] for i in range(len(num_samples))]
    from superb.downstream.sampler import DurationBatchSampler

    budget = max(int(max_seconds * SAMPLE_RATE), max(num_samples))
    return DurationBatchSampler(num_samples, budget, shuffle=False).epoch_batches()


def cmd_extract(args) -> int:
    from superb.upstream import build_upstream

    from .cli import _options

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    upstream = build_upstream(args.upstream, ckpt=args.upstream_ckpt, random_init=args.random_init,
                              **_options(args.upstream_option))
    result = extract_features(upstream, args.audio, args.output, device=device, progress=not args.quiet,
                              meta={"checkpoint": args.upstream_ckpt, "random_init": bool(args.random_init)},
                              max_seconds=args.max_seconds)
    print(f"wrote {args.output}: {len(result['files'])} file(s), {result['num_layers']} hidden states each, "
          f"{result['downsample_rate']} samples/frame")
    return 0


def cmd_inspect(args) -> int:
    from superb.upstream.inspection import format_inspection, inspect_checkpoint

    info = inspect_checkpoint(args.path)
    print(json.dumps(info, indent=2, default=str) if args.json else format_inspection(info))
    return 0


def register(sub) -> None:
    """Add ``inspect`` and ``extract`` to the ``superb`` subcommand parser ``sub``."""
    ins = sub.add_parser("inspect", help="describe an upstream checkpoint (family, format, config, size)")
    ins.add_argument("path", help="checkpoint file or model folder")
    ins.add_argument("--json", action="store_true", help="print JSON instead of text")
    ins.set_defaults(func=cmd_inspect)

    ex = sub.add_parser("extract", help="write all hidden states of an upstream for audio files")
    ex.add_argument("--upstream", required=True, help="upstream name (`superb list`)")
    ex.add_argument("--upstream-ckpt", help="checkpoint file or model folder of a pretrained upstream")
    ex.add_argument("--random-init", action="store_true", help="use the untrained architecture")
    ex.add_argument("--upstream-option", action="append", metavar="KEY=VALUE", help="option passed to the upstream")
    ex.add_argument("--output", required=True, help="output file (torch.save), e.g. feats.pt")
    ex.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    ex.add_argument("--quiet", action="store_true", help="no per-file progress lines")
    ex.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                    help="padded audio per batch in seconds (files batched by duration; 0 = one file "
                         f"at a time; default {DEFAULT_MAX_SECONDS:g})")
    ex.add_argument("audio", nargs="+", help="16 kHz mono audio files")
    ex.set_defaults(func=cmd_extract)
