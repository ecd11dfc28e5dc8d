"""``superb extract`` and ``superb inspect``.

:func:`extract_features` runs an upstream on audio files and writes **all** its hidden states
per file to one ``torch.save`` file (plain tensors, dicts and lists: readable with
``torch.load(path, weights_only=True)``)::

    {"upstream": name, "checkpoint": path or None, "random_init": bool,
     "downsample_rate": int, "sample_rate": 16000, "num_layers": L,
     "files": [{"path": str, "num_samples": int, "num_frames": T,
                "hidden_states": [FloatTensor[T, D_l] for each of the L layers]}, ...]}

Files are processed one at a time, so the features of a file never depend on other files.

:func:`register` adds both subcommands to the ``superb`` parser (listed in
``superb.benchmark.cli.EXTRA_COMMANDS``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import torch

from superb.upstream.base import SAMPLE_RATE


def extract_features(upstream, audio_paths: Iterable, output, device: str = "cpu",
                     progress: bool = False, meta: Optional[Dict] = None) -> Dict:
    """Extract every hidden state of ``upstream`` for each file of ``audio_paths``; save to
    ``output`` and return the saved dict. Audio must be 16 kHz mono (see
    :mod:`superb.downstream.audio`)."""
    from superb.downstream.audio import load_audio, segment_for

    paths = [Path(p) for p in audio_paths]
    if not paths:
        raise ValueError("superb extract: no audio files given")
    output = Path(output)
    if output.exists() and output.is_dir():
        raise ValueError(f"--output {output} is a folder; give a file name such as feats.pt")
    output.parent.mkdir(parents=True, exist_ok=True)
    segments = [segment_for(p) for p in paths]  # validate every file before the slow part
    upstream = upstream.to(device).eval()
    files: List[Dict] = []
    for i, seg in enumerate(segments):
        wav = torch.from_numpy(load_audio(seg)).to(device).unsqueeze(0)
        lens = torch.tensor([wav.shape[1]], device=device)
        with torch.no_grad():
            out = upstream(wav, lens)
        t = int(out.lengths[0])
        files.append({
            "path": str(paths[i]),
            "num_samples": int(wav.shape[1]),
            "num_frames": t,
            "hidden_states": [h[0, :t].detach().float().cpu().contiguous() for h in out.hidden_states],
        })
        if progress:
            print(f"[{i + 1}/{len(segments)}] {paths[i]}: {len(out.hidden_states)} layers x {t} frames")
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


def cmd_extract(args) -> int:
    from superb.upstream import build_upstream

    from .cli import _options

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    upstream = build_upstream(args.upstream, ckpt=args.upstream_ckpt, random_init=args.random_init,
                              **_options(args.upstream_option))
    result = extract_features(upstream, args.audio, args.output, device=device, progress=not args.quiet,
                              meta={"checkpoint": args.upstream_ckpt, "random_init": bool(args.random_init)})
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
    ex.add_argument("audio", nargs="+", help="16 kHz mono audio files")
    ex.set_defaults(func=cmd_extract)
