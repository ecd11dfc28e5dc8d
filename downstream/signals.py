"""Waveform helpers the synthesis tasks share (SE, SS, VC).

* :func:`align_frames` -- upstream features resampled to STFT / mel frames of another hop
  (``repeat``: nearest frame; ``interpolate``: linear between neighbours; positions past an
  utterance's last valid frame take that frame);
* :func:`read_reference` -- a whole 16 kHz mono reference file as float32;
* :func:`write_listening_example` / :func:`spectrogram_png` -- listening examples: WAV files of
  input, estimates and references with one shared gain, and a PNG of their spectrograms.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import soundfile as sf
import torch

from .audio import SAMPLE_RATE, AudioError

FRAME_MATCH = ("repeat", "interpolate")


def align_frames(feats: torch.Tensor, lengths: torch.Tensor, rate: int, hop: int, num_frames: int,
                 mode: str = "repeat") -> torch.Tensor:
    """Resample ``[B, T, D]`` upstream features (``rate`` samples per frame, ``lengths`` valid
    frames) to ``num_frames`` frames of ``hop`` samples (see the module docstring)."""
    if mode not in FRAME_MATCH:
        raise ValueError(f"task.frame_match={mode!r}; valid: {', '.join(FRAME_MATCH)}")
    b, _, d = feats.shape
    pos = torch.arange(num_frames, device=feats.device, dtype=torch.float64) * (float(hop) / float(rate))
    last = (lengths.to(feats.device) - 1).clamp(min=0).to(torch.float64)
    pos = torch.minimum(pos[None, :], last[:, None])  # [B, num_frames]
    if mode == "repeat":
        idx = torch.floor(pos + 0.5).long()
        return feats.gather(1, idx.unsqueeze(-1).expand(b, num_frames, d))
    i0 = torch.floor(pos).long()
    i1 = torch.minimum(i0 + 1, last.long()[:, None])
    w = (pos - i0.to(torch.float64)).to(feats.dtype).unsqueeze(-1)
    f0 = feats.gather(1, i0.unsqueeze(-1).expand(b, num_frames, d))
    f1 = feats.gather(1, i1.unsqueeze(-1).expand(b, num_frames, d))
    return f0 * (1 - w) + f1 * w


def read_reference(path: str, where: str) -> np.ndarray:
    """The samples of a whole 16 kHz mono file (``where`` names its role in errors)."""
    try:
        wav, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"cannot decode {where} {path}: {exc}") from exc
    if sr != SAMPLE_RATE or wav.shape[1] != 1:
        raise AudioError(f"{where} {path}: {sr} Hz, {wav.shape[1]} channels; expected 16 kHz mono")
    return wav[:, 0]


def _safe_name(uid: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in uid)


def write_listening_example(folder: Path, uid: str, audio: Dict[str, Any], names: Sequence[str]) -> List[Path]:
    """``<uid>_<name>.wav`` files (input, estimate(s), reference(s)) and ``<uid>.png`` with their
    log-magnitude spectrograms, one panel per signal."""
    folder.mkdir(parents=True, exist_ok=True)
    base = _safe_name(uid)
    signals = [(names[0], audio["mix"])]
    many = len(audio["estimates"]) > 1
    for k, y in enumerate(audio["estimates"]):
        signals.append((f"{names[1]}{k + 1 if many else ''}", y))
    for k, y in enumerate(audio["references"]):
        signals.append((f"{names[2]}{k + 1 if many else ''}", y))
    files = []
    peak = max(float(np.max(np.abs(y))) for _, y in signals) or 1.0
    scale = min(1.0, 0.99 / peak)  # one gain for all files of the example: levels stay comparable
    for name, y in signals:
        path = folder / f"{base}_{name}.wav"
        sf.write(str(path), np.clip(y * scale, -1, 1).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        files.append(path)
    files.append(spectrogram_png(folder / f"{base}.png", signals, title=uid))
    return files


def spectrogram_png(path: Path, signals, title: str = "", sr: int = SAMPLE_RATE) -> Path:
    """A PNG with one log-magnitude spectrogram panel per ``(name, signal)`` (shared colour scale)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    specs = []
    for name, y in signals:
        y = np.asarray(y, dtype=np.float32)
        spec = torch.stft(torch.from_numpy(y), 512, 128, 512, torch.hann_window(512), center=True,
                          return_complex=True).abs().numpy()
        specs.append((name, 20 * np.log10(spec + 1e-6)))
    top = max(float(s.max()) for _, s in specs)
    fig = Figure(figsize=(7, 1.6 * len(specs)), dpi=72, layout="constrained")
    axes = fig.subplots(len(specs), 1, squeeze=False)[:, 0]
    for ax, (name, s) in zip(axes, specs):
        im = ax.imshow(s, origin="lower", aspect="auto", vmin=top - 80, vmax=top, cmap="magma",
                       extent=(0, s.shape[1] * 128 / sr, 0, sr / 2000))
        ax.set_ylabel(f"{name}\nkHz")
    axes[-1].set_xlabel("seconds")
    if title:
        axes[0].set_title(title)
    fig.colorbar(im, ax=list(axes), label="dB")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
