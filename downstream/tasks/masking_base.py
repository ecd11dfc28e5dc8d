"""The shared base of SE (speech enhancement) and SS (source separation) -- not a task itself.

:class:`MaskTask` is the Task base class both subclass; the head, STFT and loss pieces it uses live in
:mod:`superb.downstream.heads.masking`, the frame alignment and listening-example writers in
:mod:`superb.downstream.signals`.

Head (s3prl v0.4.18 ``enhancement_stft`` / ``separation_stft`` ``SepRNN``; facts only):
weighted upstream features -> 3-layer bidirectional LSTM (896 units per direction, dropout 0.5
between layers and on its output) -> one linear layer per output source over the ``n_fft/2 + 1``
STFT bins with a ReLU -> masks on the mixture's STFT magnitude. STFT: ``n_fft`` 512, Hann window
of 512, ``center=True``, **hop = the upstream's downsample rate** (``task.hop_length: null``), so
one mask frame per upstream frame.

Feature/STFT frame alignment. The mixture's STFT has ``1 + num_samples // hop`` frames per
utterance, the upstream a slightly different count (its own edge convention), and with an
explicit ``task.hop_length`` the two rates differ. STFT frame ``j`` (centred on sample
``j * hop``) takes the upstream frame at position ``j * hop / downsample_rate``:
``task.frame_match: repeat`` takes the nearest frame (frames are repeated when the STFT is
finer, dropped when it is coarser), ``interpolate`` interpolates linearly between the two
neighbours; positions past an utterance's last valid frame take that last frame. At equal rates
this is s3prl's rule (pad by repetition / truncate at the end).

Loss: MSE between the masked mixture magnitude ``M_s * |Y|`` and a target per source; the
default target is the non-negative phase-sensitive one (s3prl ``mask_type: NPSM``):
``max(0, |S_s| cos(angle S_s - angle Y))``; ``AM`` uses ``|S_s|``, ``PSM`` drops the clamp.
With two sources the loss is utterance-level permutation invariant (uPIT: the assignment of
outputs to sources with the lowest error per utterance). Squared errors are summed over bins and
sources and divided by the number of valid frames of the batch.

Reconstruction: masked complex mixture STFT (mixture phase), inverse STFT with the same
parameters, cut to the input length. Metrics per utterance
(:mod:`superb.downstream.metrics.enhancement`): SI-SDR of the estimate and of the unprocessed input against the reference (their difference is
SI-SDRi), wide-band PESQ and STOI (estimate and input); with two sources the output-to-source
assignment maximising the mean SI-SDR is used for every metric. PESQ failures on an utterance
(e.g. a silent estimate) are counted (``pesq_failed``) and left out of the PESQ mean.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from .. import metrics as M
from ..audio import AudioError, AudioSegment, load_audio
from ..heads.masking import MASK_TYPES, MaskNet, StftConfig, mask_targets, upit_mse
from ..signals import FRAME_MATCH, align_frames, read_reference, write_listening_example
from .base import Example, Task, write_lines


def load_references(example: Example) -> List[np.ndarray]:
    """The reference sources of an example (paths in ``example.label``), cut like its audio."""
    seg: AudioSegment = example.audio
    out = []
    for path in example.label:
        wav = read_reference(path, "reference")
        if len(wav) < seg.start + seg.num_samples:
            raise AudioError(f"reference {path} holds {len(wav)} samples, fewer than its mixture "
                             f"{seg.path} ({seg.start + seg.num_samples})")
        out.append(wav[seg.start:seg.start + seg.num_samples])
    return out


class MaskTask(Task):
    """Base of SE and SS: examples carry the mixture as audio and reference paths as label."""

    num_sources = 1
    #: names of the example files written for each listened example: input, estimates, references
    example_names = ("input", "estimate", "reference")

    def __init__(self, cfg, context=None):
        super().__init__(cfg, context)
        mt = str(self.cfg.get("mask_type", "NPSM")).upper()
        if mt not in MASK_TYPES:
            raise ValueError(f"task.mask_type={mt!r}; valid: {', '.join(MASK_TYPES)}")
        self.mask_type = mt
        self.frame_match = str(self.cfg.get("frame_match", "repeat"))
        if self.frame_match not in FRAME_MATCH:
            raise ValueError(f"task.frame_match={self.frame_match!r}; valid: {', '.join(FRAME_MATCH)}")
        self.stft_cfg: Optional[StftConfig] = None
        self._split_ids: Dict[str, set] = {}
        self._keep: set = set()
        self._input_cache: Dict[str, Dict[str, float]] = {}
        # fail before training when a metric package is missing
        M.require("pesq", "PESQ (speech enhancement / separation)")
        M.require("pystoi", "STOI (speech enhancement / separation)")

    # -- data -----------------------------------------------------------------------------------
    def _finish_prepare(self, splits: Dict[str, List[Example]]) -> Dict[str, List[Example]]:
        n_keep = int(self.cfg.get("num_examples", 3))
        self._split_ids = {k: {e.id for e in v} for k, v in splits.items()}
        self._keep = {e.id for k in ("dev", "test") for e in sorted(splits.get(k, []), key=lambda e: e.id)[:n_keep]}
        return splits

    def _quality_on(self, examples: Sequence[Example]) -> bool:
        """PESQ/STOI are computed on test always, on dev when ``task.quality_on_dev``."""
        if self.cfg.get("quality_on_dev", True):
            return True
        dev = self._split_ids.get("dev", set())
        return not all(e.id in dev for e in examples)

    # -- model ----------------------------------------------------------------------------------
    def build_head(self, input_dim, downsample_rate):
        c = self.cfg
        hop = int(c["hop_length"]) if c.get("hop_length") else int(downsample_rate)
        self.stft_cfg = StftConfig(c["n_fft"], c["win_length"], hop)
        self.rate = int(downsample_rate)
        return MaskNet(input_dim, self.stft_cfg.num_bins, self.num_sources, int(c["hidden_size"]),
                       int(c["rnn_layers"]), float(c["dropout"]), bool(c.get("bidirectional", True)))

    def _forward(self, head, feats, lengths, examples):
        """Mixture STFTs (list of complex ``[F, T_b]``), masks ``[B, S, T, F]`` and frame counts."""
        device = feats.device
        mixes = [torch.from_numpy(load_audio(e.audio)).to(device) for e in examples]
        specs = [self.stft_cfg.stft(w) for w in mixes]
        frames = torch.tensor([s.shape[1] for s in specs], device=device)
        aligned = align_frames(feats.float(), lengths, self.rate, self.stft_cfg.hop, int(frames.max()), self.frame_match)
        masks = head(aligned, frames).float()
        return mixes, specs, masks, frames

    def loss(self, head, feats, lengths, examples):
        with torch.autocast(feats.device.type, enabled=False):
            mixes, specs, masks, frames = self._forward(head, feats, lengths, examples)
            b, s, t, f = masks.shape
            mix_mag = torch.zeros(b, 1, t, f, device=masks.device)
            targets = torch.zeros(b, s, t, f, device=masks.device)
            for i, (e, spec) in enumerate(zip(examples, specs)):
                refs = [self.stft_cfg.stft(torch.from_numpy(r).to(masks.device)) for r in load_references(e)]
                n = spec.shape[1]
                mix_mag[i, 0, :n] = spec.abs().T
                for k, tgt in enumerate(mask_targets(spec, refs, self.mask_type)):
                    targets[i, k, :n] = tgt.T
            return upit_mse(masks * mix_mag, targets, frames) / frames.sum().clamp(min=1)

    def predict(self, head, feats, lengths, examples):
        with torch.autocast(feats.device.type, enabled=False):
            mixes, specs, masks, frames = self._forward(head, feats, lengths, examples)
            quality = self._quality_on(examples)
            out = []
            for i, e in enumerate(examples):
                n = specs[i].shape[1]
                ests = [self.stft_cfg.istft(masks[i, k, :n].T * specs[i], len(mixes[i])).cpu().numpy()
                        for k in range(self.num_sources)]
                out.append(self._utterance_metrics(e, mixes[i].cpu().numpy(), ests, quality))
        return out

    def _utterance_metrics(self, e: Example, mix: np.ndarray, ests: List[np.ndarray], quality: bool) -> Dict[str, Any]:
        refs = load_references(e)
        perm, sdr = M.best_permutation(ests, refs) if len(refs) > 1 else ((0,), [M.si_sdr(ests[0], refs[0])])
        ests = [ests[perm[s]] for s in range(len(refs))]
        cache = self._input_cache.setdefault(f"{e.audio.path}:{e.audio.start}", {})
        if "si_sdr_input" not in cache:
            cache["si_sdr_input"] = float(np.mean([M.si_sdr(mix, r) for r in refs]))
        rec: Dict[str, Any] = {"id": e.id, "si_sdr": float(np.mean(sdr)), "si_sdr_input": cache["si_sdr_input"]}
        rec["si_sdri"] = rec["si_sdr"] - rec["si_sdr_input"]
        if quality:
            if "pesq_input" not in cache:
                cache["pesq_input"] = M.mean_or_nan([M.pesq_wb(r, mix) for r in refs])
                cache["stoi_input"] = float(np.mean([M.stoi(r, mix) for r in refs]))
            rec["pesq"] = M.mean_or_nan([M.pesq_wb(r, y) for r, y in zip(refs, ests)])
            rec["stoi"] = float(np.mean([M.stoi(r, y) for r, y in zip(refs, ests)]))
            rec["pesq_input"], rec["stoi_input"] = cache["pesq_input"], cache["stoi_input"]
        if e.id in self._keep:
            rec["audio"] = {"mix": mix, "estimates": ests, "references": refs}
        return rec

    # -- scoring --------------------------------------------------------------------------------
    def score(self, examples, predictions):
        if len(predictions) != len(examples) or any(p is None for p in predictions):
            raise ValueError("every example needs a prediction")
        out = {k: float(np.mean([p[k] for p in predictions])) for k in ("si_sdri", "si_sdr", "si_sdr_input")}
        if all("pesq" in p for p in predictions):
            out["pesq"] = M.mean_or_nan([p["pesq"] for p in predictions])
            out["pesq_input"] = M.mean_or_nan([p["pesq_input"] for p in predictions])
            out["pesq_failed"] = float(sum(math.isnan(p["pesq"]) for p in predictions))
            out["stoi"] = float(np.mean([p["stoi"] for p in predictions]))
            out["stoi_input"] = float(np.mean([p["stoi_input"] for p in predictions]))
        return out

    #: metric lines of ``metrics.txt`` (the leaderboard submission's self-reported file)
    submission_metrics = ("si_sdri",)

    def write_predictions(self, out_dir, split, examples, predictions):
        d = Path(out_dir) / split
        metrics = self.score(examples, predictions)
        files = [write_lines(d / "metrics.txt", [f"{k} {metrics[k]:.6f}" for k in self.submission_metrics
                                                 if k in metrics])]
        cols = ["si_sdr_input", "si_sdr", "si_sdri", "pesq_input", "pesq", "stoi_input", "stoi"]
        have = [c for c in cols if all(c in p for p in predictions)]
        rows = ["id\t" + "\t".join(have)]
        for p in sorted(predictions, key=lambda p: p["id"]):
            rows.append(p["id"] + "\t" + "\t".join(f"{p[c]:.4f}" for c in have))
        files.append(write_lines(d / "utterances.tsv", rows))
        for p in sorted(predictions, key=lambda p: p["id"]):
            if "audio" in p:
                files += write_listening_example(d / "examples", p["id"], p["audio"], self.example_names)
        return files


