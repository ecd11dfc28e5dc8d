"""The shared pretraining loop of ``superb pretrain`` (all objectives).

Data: every audio file (``.wav``, ``.flac``, ``.ogg``, any case) under ``--data``, recursively,
sorted by path; 16 kHz mono, validated as every superb reader does
(:func:`superb.downstream.audio.segment_for`). Without ``--data`` the train subset of the embedded
mini corpus's LibriSpeech split: ``ensure_split("librispeech", profile)/LibriSpeech/train``
(:func:`default_data`, built on first use in the user cache).

Features: the objective's own front end (the one the matching upstream computes), per file, once
(kept in memory up to ``feature_cache_mb``; the front ends are per-utterance, so a file's features
do not depend on its batch). A file with more than ``max_frames`` frames is randomly cropped to
``max_frames`` every time it is drawn (as s3prl's pretraining datasets crop to ``max_timestep``).

Batches: :class:`superb.downstream.sampler.DurationBatchSampler` over the (cropped) lengths, at
most ``batch_seconds`` of padded audio; epoch ``e`` is shuffled from ``(seed, e)``.

Optimisation: Adam on fp32 weights (``precision="bf16"``: the loss's forward under bfloat16
autocast), the learning rate rising linearly from 0 to ``lr`` over
``warmup_steps`` steps (0: constant from the start, as APC and TERA train), then constant; the
gradient norm clipped to ``grad_clip``.

Data parallel (under torchrun, ``superb pretrain --nproc N``): every process takes its share of
each batch (:func:`superb.benchmark.distributed.shard`) and draws its own crops and masks; DDP
averages the gradients, weighted by the shares' utterances; process 0 writes the log, the
checkpoints (every process's RNG state under ``ranks``: an exact resume in as many processes)
and the export.

Objective hooks: :meth:`Objective.prepare` runs once before the first step of a fresh run (not on
``--resume``: what it computes must live in the objective's ``state_dict``, e.g. k-means
centroids as buffers), with access to every file's features; :meth:`Objective.after_step` runs
after each optimiser step (an EMA teacher, a temperature schedule).

Randomness: the model is initialised from ``torch.manual_seed(seed)``; crops and alterations
draw from one ``torch.Generator`` seeded ``seed + 1``; dropout draws from torch's global RNG.
``checkpoints/last.pt`` (written atomically every ``save_every`` steps and at the end) holds the
model, the optimiser, both RNG states and the position in the epoch, as tensors and plain data
(loaded with ``weights_only``), so a resumed run produces the same losses and weights as one that
was never stopped (CPU; tested).

Outputs in ``--output``: ``log.jsonl`` (one line per step: ``step``, ``loss``, ``lr``,
``grad_norm``, ``wall_s``), ``checkpoints/last.pt``, ``pretrain.json`` (what ran) and, at the
end, ``<objective>.ckpt`` in the family's official format.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from superb.downstream.audio import SAMPLE_RATE, load_audio, segment_for
from superb.downstream.fileio import append_line, atomic_torch_save, atomic_write_json, rewind_log

from . import PRESET_NAMES, objective_module

#: audio file extensions read from --data (any case)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
CHECKPOINT_FORMAT = "superb-pretrain-v1"
#: --precision values
PRECISIONS = ("fp32", "bf16")


@dataclass
class LoopConfig:
    """Training settings of a preset (``--max-steps`` overrides ``max_steps``; 0 exports the
    initial weights: the same architecture, front end and format, random-init - the baseline a
    pretrained checkpoint is compared with)."""

    max_steps: int = 100
    lr: float = 1e-3
    #: padded audio per batch (seconds, after cropping)
    batch_seconds: float = 20.0
    #: longer utterances are randomly cropped to this many frames
    max_frames: int = 300
    grad_clip: float = 5.0
    save_every: int = 50
    #: linear learning-rate warm-up from 0 (steps); constant afterwards
    warmup_steps: int = 0
    #: features kept in memory (MB); the rest is recomputed when drawn
    feature_cache_mb: float = 1024.0

    def validate(self, where: str = "pretrain config") -> None:
        if int(self.max_steps) < 0:
            raise ValueError(f"{where}: max_steps must be >= 0, got {self.max_steps}")
        for key in ("max_frames", "save_every"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{where}: {key} must be >= 1, got {getattr(self, key)}")
        if int(self.warmup_steps) < 0:
            raise ValueError(f"{where}: warmup_steps must be >= 0, got {self.warmup_steps}")
        for key in ("lr", "batch_seconds", "grad_clip"):
            value = float(getattr(self, key))
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{where}: {key} must be a positive number, got {getattr(self, key)}")


class Objective(nn.Module):
    """What an objective module provides to the loop.

    ``features`` maps a padded waveform batch to the front end's features (no gradients);
    ``loss`` computes the scalar training loss of a feature batch (``generator`` for every random
    draw); ``export`` returns the final checkpoint in the family's official format. Optional:
    ``prepare`` (once, before a fresh run) and ``after_step`` (after every optimiser step)."""

    name: str = ""
    #: samples per feature frame
    hop: int = 160
    #: shortest file (samples) the objective can learn from
    min_samples: int = 400

    def features(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def loss(self, feats: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def export(self, step: int, loop: "LoopConfig") -> Dict[str, Any]:
        raise NotImplementedError

    def prepare(self, features: Callable[[int], torch.Tensor], num_files: int, generator: torch.Generator) -> None:
        """Before the first step of a fresh run: ``features(i)`` is file ``i``'s feature matrix
        (uncropped, as :meth:`features` computes it). Default: nothing."""

    def after_step(self, step: int) -> None:
        """After optimiser step ``step`` (1-based). Default: nothing."""


class _LossForward(nn.Module):
    """The objective's loss as ``forward``: what DistributedDataParallel wraps (its gradient hooks
    see every parameter the loss uses). ``feats=None``: an empty part, a zero loss that still
    touches every trainable parameter, so the processes' gradient reductions stay in step."""

    def __init__(self, objective: Objective):
        super().__init__()
        self.objective = objective

    def forward(self, feats, lengths, generator):
        if feats is None:
            return sum(p.reshape(-1)[0] * 0.0 for p in self.objective.parameters() if p.requires_grad)
        return self.objective.loss(feats, lengths, generator)


def learning_rate(loop: LoopConfig, step: int) -> float:
    """The learning rate of optimiser step ``step`` (1-based): linear warm-up, then ``lr``."""
    if loop.warmup_steps and step < loop.warmup_steps:
        return float(loop.lr) * step / loop.warmup_steps
    return float(loop.lr)


def find_audio(data) -> List[Path]:
    """Every audio file under ``data`` (recursively, sorted); an error naming the folder if none."""
    root = Path(data)
    if not root.exists():
        raise ValueError(f"--data {root}: no such folder")
    if not root.is_dir():
        raise ValueError(f"--data {root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise ValueError(f"--data {root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found under it")
    return files


def default_data(profile: str = "default", cache_dir=None) -> Path:
    """The mini corpus's LibriSpeech train subset (built on first use)."""
    from superb.downstream.mini import ensure_split

    return ensure_split("librispeech", profile=profile, cache_dir=cache_dir) / "LibriSpeech" / "train"


def _parse_value(key: str, raw: str, current: Any) -> Any:
    """``raw`` read as every command-line value is (:func:`superb.benchmark.config.parse_scalar`:
    YAML, ``1e-3`` a float), as a value of ``current``'s type; an error naming ``key`` otherwise."""
    from superb.benchmark.config import parse_scalar

    value = parse_scalar(raw, f"--set {key}={raw}")
    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif isinstance(current, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(current, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(current, (tuple, list)):
        ok = isinstance(value, list)
        value = type(current)(tuple(v) if isinstance(v, list) else v for v in value) if ok else value
    elif current is None:
        ok = True  # an optional field: any YAML value (None, a path, a number)
    else:
        ok = isinstance(value, type(current))
    if not ok:
        raise ValueError(f"--set {key}={raw}: expected a value like {current!r} ({type(current).__name__}), "
                         f"got {value!r}")
    return value


def apply_sets(cfg: Any, loop_cfg: LoopConfig, sets: Sequence[str], objective: str) -> Tuple[Any, LoopConfig]:
    """``--set KEY=VALUE`` overrides: ``loop.FIELD`` sets a :class:`LoopConfig` field, any other
    key a field of the objective's config, dotted into nested dataclasses (``model.num_layers=2``).
    An unknown key or a value of the wrong type is an error naming it."""
    for item in sets:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        target = loop_cfg if parts[0] == "loop" else cfg
        path = parts[1:] if parts[0] == "loop" else parts
        if not path:
            raise ValueError(f"--set {item!r}: expected loop.FIELD=VALUE")
        for i, name in enumerate(path):
            names = [f.name for f in dataclasses.fields(target)]
            if name not in names:
                where = "loop" if parts[0] == "loop" else objective
                raise ValueError(f"--set {key}: {where} config has no field {'.'.join(path[:i + 1])!r}; "
                                 f"its fields: {', '.join(names)}")
            if i < len(path) - 1:
                target = getattr(target, name)
                if not dataclasses.is_dataclass(target):
                    raise ValueError(f"--set {key}: {'.'.join(path[:i + 1])} is not a section")
        setattr(target, path[-1], _parse_value(key, raw, getattr(target, path[-1])))
    return cfg, loop_cfg


def build_objective(name: str, preset: str, seed: int, sets: Sequence[str] = ()):
    """``(objective, objective_config, loop_config)`` of ``name`` with preset ``preset`` and the
    ``--set`` overrides ``sets`` (:func:`apply_sets`), parameters initialised from
    ``torch.manual_seed(seed)``."""
    module = objective_module(name)
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown --preset {preset!r}; valid presets: {', '.join(PRESET_NAMES)}")
    cfg, loop_cfg = module.preset(name, preset)
    cfg, loop_cfg = apply_sets(cfg, loop_cfg, sets, name)
    torch.manual_seed(seed)
    return module.build(name, cfg), cfg, loop_cfg


def _data_fingerprint(files: Sequence[Path], lengths: Sequence[int]) -> str:
    h = hashlib.sha256()
    for f, n in zip(files, lengths):
        h.update(f"{f}\t{n}\n".encode("utf-8"))
    return h.hexdigest()


def _crop(feats: List[torch.Tensor], max_frames: int, generator: torch.Generator) -> List[torch.Tensor]:
    out = []
    for x in feats:
        if x.shape[0] > max_frames:
            start = int(torch.randint(0, x.shape[0] - max_frames + 1, (1,), generator=generator))
            x = x[start:start + max_frames]
        out.append(x)
    return out


class _Features:
    """Per-file features, computed alone and kept in memory within a budget."""

    def __init__(self, objective: Objective, segments, device, budget_mb: float):
        self.objective, self.segments, self.device = objective, segments, device
        self.budget = budget_mb * 2 ** 20
        self.used = 0
        self.cache: Dict[int, torch.Tensor] = {}

    def get(self, i: int) -> torch.Tensor:
        if i in self.cache:
            return self.cache[i]
        wav = torch.from_numpy(load_audio(self.segments[i])).to(self.device)
        with torch.no_grad():
            feats, lens = self.objective.features(wav[None], torch.tensor([wav.shape[0]], device=self.device))
        x = feats[0, : int(lens[0])].detach()
        size = x.numel() * x.element_size()
        if self.used + size <= self.budget:
            self.cache[i] = x
            self.used += size
        return x


def _pad(feats: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([x.shape[0] for x in feats])
    return torch.nn.utils.rnn.pad_sequence(feats, batch_first=True), lengths


def _load_last(path: Path) -> Dict[str, Any]:
    from superb.upstream.checkpoint_io import safe_load

    obj = safe_load(path, allow_foreign=False)
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a superb pretraining checkpoint (format {CHECKPOINT_FORMAT!r})")
    return obj


def _check_resume(ckpt: Dict[str, Any], expected: Dict[str, Any], path: Path) -> None:
    defaults = {"precision": "fp32", "processes": 1}  # keys added later
    for key in ("objective", "preset", "seed", "objective_config", "data_fingerprint", "num_files", "precision",
                "processes"):
        if ckpt.get(key, defaults.get(key)) != expected[key]:
            raise ValueError(f"--resume: {path} was written with {key} = {ckpt.get(key)!r}, this run has "
                             f"{expected[key]!r}; resume with the original settings or use another --output")
    loop_old = dict(ckpt.get("loop_config") or {})
    loop_new = dict(expected["loop_config"])
    loop_defaults = {f.name: f.default for f in dataclasses.fields(LoopConfig)}  # keys added later
    for key in set(loop_old) | set(loop_new):
        if key in ("max_steps", "save_every", "feature_cache_mb"):
            continue
        if loop_old.get(key, loop_defaults.get(key)) != loop_new.get(key, loop_defaults.get(key)):
            raise ValueError(f"--resume: {path} was written with loop_config.{key} = {loop_old.get(key)!r}, "
                             f"this run has {loop_new.get(key)!r}")


def pretrain(objective: str, output, data=None, preset: str = "tiny", max_steps: Optional[int] = None,
             seed: int = 0, resume: bool = False, device: str = "cpu", save_every: Optional[int] = None,
             mini_profile: str = "default", progress: bool = True, sets: Sequence[str] = (),
             precision: str = "fp32") -> Dict[str, Any]:
    """Pretrain ``objective`` on the audio under ``data``; return the summary written to
    ``<output>/pretrain.json`` (see the module docstring). ``sets``: ``KEY=VALUE`` overrides of
    the preset (:func:`apply_sets`). ``precision``: ``fp32`` (default) or ``bf16`` (the loss's
    forward under ``torch.autocast`` in bfloat16, on CUDA or the CPU; weights, optimiser and
    gradients stay fp32, the front end and ``prepare`` run in fp32)."""
    started = time.perf_counter()
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    from superb.benchmark import distributed

    ctx = distributed.context(str(device))  # several processes when started by torchrun
    model, obj_cfg, loop_cfg = build_objective(objective, preset, seed, sets)
    if max_steps is not None:
        loop_cfg = dataclasses.replace(loop_cfg, max_steps=int(max_steps))
    if save_every is not None:
        loop_cfg = dataclasses.replace(loop_cfg, save_every=int(save_every))
    loop_cfg.validate("superb pretrain")
    if data is None:
        data = default_data(mini_profile)
    files = find_audio(data)
    segments = [segment_for(f, min_samples=model.min_samples) for f in files]
    lengths = [s.num_samples for s in segments]
    out = Path(output)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.pt"
    log = out / "log.jsonl"
    if last.exists() and not resume:
        raise ValueError(f"--output {out} already holds a pretraining run ({last}); pass --resume to continue "
                         "it or choose another --output")
    if resume and not last.exists():
        raise ValueError(f"--resume: {last} does not exist (nothing to resume in --output {out})")
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    device = torch.device(distributed.process_device(str(device), ctx))
    model.to(device)
    forward: nn.Module = _LossForward(model)
    if ctx.active:  # the same initial weights everywhere (seeded); gradients averaged by DDP
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(forward, device_ids=[device.index] if device.type == "cuda" else None,
                                          find_unused_parameters=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=loop_cfg.lr)
    generator = torch.Generator().manual_seed(seed + 1)
    meta = {"objective": objective, "preset": preset, "seed": int(seed),
            "objective_config": dataclasses.asdict(obj_cfg), "loop_config": dataclasses.asdict(loop_cfg),
            "data": str(data), "num_files": len(files), "data_fingerprint": _data_fingerprint(files, lengths),
            "precision": precision, "processes": ctx.world}
    step, epoch, position, wall_offset = 0, 0, 0, 0.0
    if resume:
        ckpt = _load_last(last)
        _check_resume(ckpt, meta, last)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        rng = ckpt["ranks"][ctx.rank] if ctx.active else ckpt["rng"]
        generator.set_state(rng["loop"])
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        step, epoch, position = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["position"])
        wall_offset = float(ckpt["wall_s"])
        if ctx.main:
            rewind_log(log, step)
    elif log.exists() and ctx.main:
        log.unlink()

    from superb.downstream.sampler import DurationBatchSampler

    crop_samples = loop_cfg.max_frames * model.hop
    batch_lengths = [min(n, crop_samples) for n in lengths]
    budget = max(int(loop_cfg.batch_seconds * SAMPLE_RATE), max(batch_lengths))
    sampler = DurationBatchSampler(batch_lengths, budget, shuffle=True, seed=seed, ids=[str(f) for f in files])
    feats_of = _Features(model, segments, device, loop_cfg.feature_cache_mb)
    if not resume:
        model.prepare(feats_of.get, len(files), generator)
        if ctx.rank > 0:  # other crops, masks and dropout than rank 0 (which draws as one process would)
            generator.manual_seed(seed + 1 + 7919 * ctx.rank)
            torch.manual_seed(seed + 7919 * ctx.rank)
    batches = sampler.epoch_batches(epoch)
    params = [p for p in model.parameters() if p.requires_grad]
    clock = time.perf_counter()

    def wall() -> float:
        return wall_offset + time.perf_counter() - clock

    def save() -> None:
        rng = {"loop": generator.get_state(), "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        ranks = ctx.gather(rng) if ctx.active else None  # every process's RNG: an exact resume
        if ctx.main:
            atomic_torch_save({"format": CHECKPOINT_FORMAT, **meta, "step": step, "epoch": epoch,
                               "position": position, "wall_s": wall(), "model": model.state_dict(),
                               "optimizer": optimizer.state_dict(), "rng": rng,
                               **({"ranks": ranks} if ranks else {})}, last)
        ctx.barrier()

    first_loss = last_loss = None
    model.train()
    while step < loop_cfg.max_steps:
        if position >= len(batches):
            epoch, position = epoch + 1, 0
            batches = sampler.epoch_batches(epoch)
        batch = batches[position]
        position += 1
        part = distributed.shard(batch, batch_lengths, ctx.rank, ctx.world) if ctx.active else batch
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            if part:
                feats, flens = _pad(_crop([feats_of.get(i) for i in part], loop_cfg.max_frames, generator))
                loss = forward(feats.to(device), flens.to(device), generator)
            else:  # fewer utterances than processes: a zero gradient from this one
                loss = forward(None, None, generator)
        loss = loss.float()
        value = float(loss.item())
        if ctx.active:  # the batch's loss: the parts' losses weighted by their utterances
            total, bad = ctx.sum([value * len(part), 0.0 if math.isfinite(value) else 1.0], device)
            value = total / len(batch) if not bad else float("nan")
        if not math.isfinite(value):
            raise ValueError(f"superb pretrain: the loss became {value} at step {step + 1} "
                             f"(files {[str(files[i]) for i in batch]}); lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        # DDP averages the processes' gradients: scaled so that the result is the utterance-weighted mean
        (loss * (ctx.world * len(part) / len(batch)) if ctx.active else loss).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, loop_cfg.grad_clip)
        lr = learning_rate(loop_cfg, step + 1)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        step += 1
        model.after_step(step)
        last_loss = value
        first_loss = last_loss if first_loss is None else first_loss
        line = {"step": step, "loss": last_loss, "lr": lr, "grad_norm": float(grad_norm),
                "wall_s": round(wall(), 3)}
        if ctx.main:
            append_line(log, json.dumps(line))
        if progress and ctx.main:
            print(f"step {step}/{loop_cfg.max_steps} loss {last_loss:.4f} ({line['wall_s']:.1f} s)", flush=True)
        if step % loop_cfg.save_every == 0:
            save()
    save()
    model.eval()
    final = out / f"{objective}.ckpt"
    if ctx.main:
        atomic_torch_save(model.export(step, loop_cfg), final)
    summary = {**meta, "steps": step, "final_checkpoint": str(final), "last_checkpoint": str(last),
               "first_loss_this_session": first_loss, "last_loss": last_loss, "wall_s": round(wall(), 3),
               "session_s": round(time.perf_counter() - started, 3),
               "upstream": getattr(model, "upstream_name", objective)}
    if ctx.main:
        atomic_write_json(out / "pretrain.json", summary)
    ctx.barrier()
    if progress and ctx.main:
        print(f"wrote {final} ({objective}, {step} steps); use it with: superb run --upstream "
              f"{summary['upstream']} --upstream-ckpt {final} --task TASK")
    return summary
