"""``superb pretrain``: pretrain an upstream from unlabelled audio (one objective per family).

``superb pretrain --objective NAME [--data DIR] [--preset tiny|base] [--set KEY=VALUE] --output DIR
[--max-steps N] [--seed S] [--resume]`` runs :func:`superb.upstream.pretrain.loop.pretrain` and
ends with ``<output>/<objective>.ckpt`` in the family's official format (s3prl, CPC_audio,
fairseq, superb's BEST-RQ format; ``superb.upstream.pretrain.OBJECTIVES`` lists the names), which
``superb run --upstream <objective> --upstream-ckpt <output>/<objective>.ckpt`` loads. Without
``--data`` the mini corpus's LibriSpeech train subset is used (``--mini-profile``).
See docs/pretraining.md.
"""
from __future__ import annotations

import os


def cmd_pretrain(args) -> int:
    if args.nproc is not None and args.nproc != 1:  # this command again in N processes (torchrun)
        from .distributed import relaunch, strip_nproc

        return relaunch(strip_nproc(args.argv), args.nproc)
    from superb.upstream.pretrain.loop import pretrain

    from .distributed import shutdown

    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))
    try:
        summary = pretrain(args.objective, args.output, data=args.data, preset=args.preset,
                           max_steps=args.max_steps, seed=args.seed, resume=args.resume, device=device,
                           save_every=args.save_every, mini_profile=args.mini_profile, progress=not args.quiet,
                           sets=args.set or (), precision=args.precision)
    finally:
        shutdown()  # leave the process group when torchrun started this one
    if summary.get("processes", 1) > 1 and int(os.environ.get("RANK", "0")) != 0:
        return 0  # rank 0 reports
    loss = "no training (the initial weights)" if summary["last_loss"] is None else \
        f"last loss {summary['last_loss']:.4f}"
    print(f"pretrain: {summary['objective']} ({summary['preset']}), {summary['steps']} steps, {loss}, "
          f"{summary['wall_s']:.1f} s -> {summary['final_checkpoint']}")
    return 0


def register(sub) -> None:
    """Add ``pretrain`` to the ``superb`` subcommand parser ``sub``."""
    p = sub.add_parser("pretrain", help="pretrain an upstream from unlabelled audio (one objective per family)")
    p.add_argument("--objective", required=True,
                   help="apc, tera, mockingjay (generative); cpc, wav2vec2 (contrastive); hubert, best_rq "
                        "(predictive); data2vec (bootstrapping); vicreg (regularisation)")
    p.add_argument("--data", help="folder of 16 kHz mono audio (every .wav/.flac/.ogg under it); default: the "
                                  "mini corpus's LibriSpeech train subset")
    p.add_argument("--preset", default="tiny", help="tiny (default; small sizes) or base (the published sizes)")
    p.add_argument("--output", required=True, help="run folder: log.jsonl, checkpoints/last.pt, <objective>.ckpt")
    p.add_argument("--max-steps", type=int, help="training steps (default: the preset's); 0 writes the initial "
                                                 "random weights in the same format (the random-init baseline)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation, batches and masks")
    p.add_argument("--resume", action="store_true", help="continue from <output>/checkpoints/last.pt")
    p.add_argument("--save-every", type=int, help="steps between saves of checkpoints/last.pt (default: preset's)")
    p.add_argument("--mini-profile", default="default", help="mini corpus profile when --data is omitted")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda[:N] or auto")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="fp32 (default) or bf16 autocast of the objective's forward (weights stay fp32)")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="data-parallel in N processes on this machine (torchrun; gloo on CPU, nccl on GPU): each "
                        "takes its share of every batch, gradients are averaged, process 0 writes")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a preset value: a field of the objective's config (model.num_layers=2, "
                        "n_future=5) or loop.FIELD (loop.lr=1e-4); repeatable")
    p.add_argument("--quiet", action="store_true", help="no per-step lines")
    p.set_defaults(func=cmd_pretrain)
