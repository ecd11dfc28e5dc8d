"""ASV — automatic speaker verification on VoxCeleb1 (SUPERB speaker task).

Layout (``--data`` points at the VoxCeleb1 folder)::

    VoxCeleb1/
        dev/wav/<speaker id>/<youtube id>/<nnnnn>.wav    # vox1_dev_wav (s3prl's layout), or
        test/wav/<speaker id>/<youtube id>/<nnnnn>.wav   # vox1_test_wav
        wav/<speaker id>/<youtube id>/<nnnnn>.wav        # ... both archives unpacked together
        veri_test.txt                                    # "<1|0> <enroll .wav> <test .wav>"

Training data is VoxCeleb1 dev: every file under ``dev/wav/`` when that folder exists, otherwise
every file under ``wav/`` whose speaker appears in no test trial (for Vox1-O these are exactly
the 40 test speakers, so the rest is the 1,211-speaker dev set); the number of speakers held out
that way is reported. Speaker classes are the training speakers, sorted. Trials come from
``task.trials`` (relative to ``--data`` unless absolute; default ``veri_test.txt``: s3prl v0.4.18's
``voxceleb1_test_v2.txt`` is VoxCeleb's original Vox1-O list, 37,720 trials -- 18,860 target and
18,860 non-target -- not the cleaned ``veri_test2.txt`` with 37,611; that one and the extended
lists ``list_test_all2.txt`` / ``list_test_hard2.txt`` stay selectable); trial paths are looked up
under ``test/wav/`` then ``wav/`` (exactly one must hold the file).

Filter (SUPERB): training files of ``task.min_train_seconds`` (2 s) or less are dropped. s3prl
measures the length after sox silence trimming (``min_sec: 32000`` samples); superb measures the
file as stored (no trimming). The count of dropped files is logged on stderr and written into
``results.json`` (``data.notes``): nothing is skipped silently.

Dev set: SUPERB has none; s3prl reports the best *test* EER over saved checkpoints. By default
(``task.dev_trials: null``) the dev split here **is the test trial list**, which reproduces that
protocol (checkpoint selection on the test trials: optimistic, and dev == test in the results).
Set ``task.dev_trials`` to another trial file (e.g. trials between held-out speakers) for an
honest model selection.

Head (s3prl v0.4.18 ``downstream/sv_voxceleb1``, ``configs/amsoftmax.yaml`` and ``model.py``,
facts only): linear connector to 512 -> x-vector TDNN stack of 5 layers (context 5/3/3/1/1,
dilation 1/2/3/1/1, 512 channels, the last 1500, ReLU, no batch norm, no padding: 14 frames
shorter) -> statistics pooling (mean and unbiased standard deviation over valid frames, 3000)
-> linear 512 -> ReLU -> linear 512 -> ReLU -> AM-softmax (s = 30, m = 0.4: logits
``s * (cos - m)`` for the target speaker, ``s * cos`` otherwise, over L2-normalised embeddings
and class weights). The verification embedding is the output of the first linear layer after
pooling (+ ReLU), L2-normalised, as in s3prl's ``inference``; a trial's score is the cosine of its
two embeddings. Training reads random 8 s crops (``max_timestep: 128000``) drawn from (runner
seed, epoch, utterance id); verification reads whole files. Sequences shorter than the TDNN's
15-frame receptive field are zero-padded to it (one valid output frame).

Metrics: EER (%), lower is better (primary), and the normalised minimum detection cost
``min_dcf`` with ``task.dcf.p_target`` (0.01), ``c_miss`` (1) and ``c_fa`` (1), the NIST SRE 2008
/ VoxCeleb operating point (SUPERB reports EER only; min_dcf is a plain number, not a percentage).

Predictions (per split): ``predict.txt`` in the leaderboard's ``sv_public`` format (s3prl
``<enroll name>_<test name> <score>`` with names ``<id>-<youtube id>-<nnnnn>``) and
``scores.txt`` with ``<enroll path> <test path> <score>`` lines, in trial-list order.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from superb.upstream.base import valid_mask

from ..audio import SAMPLE_RATE
from ..corpora.voxceleb1 import Trial, utterance_name, voxceleb1_verification
from ..crops import RandomCrops
from ..metrics.verification import equal_error_rate, min_dcf
from .base import Example, Task, write_lines
from .declaration import Board, Column, LOWER, Metric, PERCENT, Submission

TDNN_CONTEXTS = (5, 3, 3, 1, 1)
TDNN_DILATIONS = (1, 2, 3, 1, 1)
#: frames the unpadded TDNN stack removes: sum of (context - 1) * dilation
TDNN_SHRINK = sum((c - 1) * d for c, d in zip(TDNN_CONTEXTS, TDNN_DILATIONS))


# -- head ----------------------------------------------------------------------------------------
class XVectorHead(nn.Module):
    """Connector -> x-vector TDNN -> statistics pooling -> segment layers, plus AM-softmax weights."""

    def __init__(self, input_dim: int, hidden_dim: int, agg_dim: int, num_speakers: int):
        super().__init__()
        self.connector = nn.Linear(input_dim, hidden_dim)
        dims = [hidden_dim] * 4 + [agg_dim]
        layers, prev = [], hidden_dim
        for out, ctx, dil in zip(dims, TDNN_CONTEXTS, TDNN_DILATIONS):
            layers += [nn.Conv1d(prev, out, ctx, dilation=dil), nn.ReLU()]
            prev = out
        self.tdnn = nn.Sequential(*layers)
        self.segment1 = nn.Linear(2 * agg_dim, hidden_dim)
        self.segment2 = nn.Linear(hidden_dim, hidden_dim)
        self.am_weight = nn.Parameter(torch.empty(num_speakers, hidden_dim))
        nn.init.xavier_normal_(self.am_weight)

    def pooled(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.connector(feats)  # [B, T, H]
        if x.shape[1] <= TDNN_SHRINK:
            x = F.pad(x, (0, 0, 0, TDNN_SHRINK + 1 - x.shape[1]))
        x = self.tdnn(x.transpose(1, 2)).transpose(1, 2).float()  # [B, T - 14, agg]
        valid = (lengths - TDNN_SHRINK).clamp(min=1).to(x.device)
        mask = valid_mask(valid.to(x.device), x.shape[1]).to(x.dtype).unsqueeze(-1)
        n = valid.to(x.dtype).unsqueeze(-1)
        mean = (x * mask).sum(1) / n
        var = (((x - mean.unsqueeze(1)) ** 2) * mask).sum(1) / (n - 1).clamp(min=1)
        return torch.cat([mean, var.clamp(min=1e-10).sqrt()], dim=-1)

    def embed(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The verification embedding (first segment layer + ReLU), L2-normalised."""
        return F.normalize(F.relu(self.segment1(self.pooled(feats, lengths))).float(), dim=-1)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Training output: both segment layers (the input of the AM-softmax)."""
        return F.relu(self.segment2(F.relu(self.segment1(self.pooled(feats, lengths)))))


def am_softmax_loss(embeddings: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                    s: float = 30.0, m: float = 0.4) -> torch.Tensor:
    """Additive-margin softmax (Wang et al. 2018): cross entropy over ``s * (cos - m * onehot)``."""
    cos = F.normalize(embeddings.float(), dim=-1) @ F.normalize(weight.float(), dim=-1).t()
    margin = F.one_hot(targets, cos.shape[1]).to(cos.dtype) * m
    return F.cross_entropy(s * (cos - margin), targets)


# -- task ----------------------------------------------------------------------------------------
class SpeakerVerification(Task):
    name = "asv"
    title = "Automatic speaker verification"
    category = "speaker"
    dataset = "VoxCeleb1 (dev for training, Vox1-O trials)"
    metrics = {"eer": Metric(LOWER, PERCENT), "min_dcf": Metric(LOWER, "detection cost (NIST SRE, not percent)")}
    primary_metric = "eer"
    loss_mean_over = "utterances"  # AM-softmax cross entropy, batch mean
    leaderboard = Board("Speaker verification", (Column("EER", ("eer",), 9.56, 5.11),), position=7)
    submission = (Submission("sv_public", "predict.txt", "pair_score", ("predict.txt", "test_predict.txt", "scores.txt")),)
    mini_split = "voxceleb1"
    data_help = "VoxCeleb1 folder holding dev/wav/ and test/wav/ (or wav/) and veri_test.txt"

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("ASV needs --data pointing at the VoxCeleb1 folder")
        splits, self.trials, notes = voxceleb1_verification(
            Path(data_dir), self.cfg.get("trials") or "veri_test.txt", self.cfg.get("dev_trials"),
            float(self.cfg.get("min_train_seconds", 2.0)), self.min_samples)
        self.speakers = sorted({e.label for e in splits["train"]})
        self._index = {s: i for i, s in enumerate(self.speakers)}
        self._split_of = {id(splits["dev"]): "dev", id(splits["test"]): "test"}
        self._split_ids = {k: {e.id for e in splits[k]} for k in ("dev", "test")}
        self._lists = splits  # keeps the lists alive, so their id() stays unique
        self.crops = RandomCrops(int(round(float(self.cfg.get("crop_seconds") or 0) * SAMPLE_RATE)))
        splits["train"] = self.crops.register(splits["train"])
        notes["train_crop_seconds"] = float(self.cfg.get("crop_seconds") or 0)
        notes["train_files_longer_than_crop"] = self.crops.num_cropped()
        self.data_notes = notes
        print(f"asv: dropped {notes['train_files_dropped_short']} training files of {notes['min_train_seconds']:g} s or "
              f"less, kept {notes['train_files_kept']} ({notes['train_speakers']} speakers); "
              f"{notes['trial_speakers_held_out_of_training']} trial speakers held out of training", file=sys.stderr)
        return splits

    def training_examples(self, examples, epoch, seed):
        return self.crops.apply(examples, epoch, seed)

    def build_head(self, input_dim: int, downsample_rate: int):
        return XVectorHead(input_dim, int(self.cfg["hidden_dim"]), int(self.cfg["agg_dim"]), len(self.speakers))

    def loss(self, head, feats, lengths, examples):
        out = head(feats, lengths)
        targets = torch.tensor([self._index[e.label] for e in examples], device=out.device)
        am = self.cfg["am_softmax"]
        return am_softmax_loss(out, head.am_weight, targets, float(am["s"]), float(am["m"]))

    def predict(self, head, feats, lengths, examples):
        return list(head.embed(feats, lengths).detach().cpu())

    def _trials_for(self, examples) -> List[Trial]:
        split = self._split_of.get(id(examples))
        if split is None:
            ids = {e.id for e in examples}
            matches = [k for k, v in self._split_ids.items() if v == ids]
            if not matches:
                raise ValueError("ASV: these examples are not the utterances of the dev or test trial list")
            split = matches[-1]
        return self.trials[split]

    def trial_scores(self, examples, predictions) -> Tuple[List[Trial], np.ndarray]:
        emb = {e.id: p for e, p in zip(examples, predictions)}
        trials = self._trials_for(examples)
        a = torch.stack([emb[t[1]] for t in trials]).float()
        b = torch.stack([emb[t[2]] for t in trials]).float()
        return trials, F.cosine_similarity(a, b, dim=-1).numpy().astype(np.float64)

    def score(self, examples, predictions):
        trials, scores = self.trial_scores(examples, predictions)
        labels = [t[0] for t in trials]
        dcf = self.cfg.get("dcf") or {}
        return {"eer": equal_error_rate(labels, scores),
                "min_dcf": min_dcf(labels, scores, float(dcf.get("p_target", 0.01)),
                                   float(dcf.get("c_miss", 1.0)), float(dcf.get("c_fa", 1.0)))}

    def write_predictions(self, out_dir: Path, split: str, examples: Sequence[Example], predictions):
        trials, scores = self.trial_scores(examples, predictions)
        pairs = [f"{utterance_name(t[1])}_{utterance_name(t[2])} {s:.6f}" for t, s in zip(trials, scores)]
        plain = [f"{t[1]} {t[2]} {s:.6f}" for t, s in zip(trials, scores)]
        d = Path(out_dir) / split
        return [write_lines(d / "predict.txt", pairs), write_lines(d / "scores.txt", plain)]


__all__ = ["SpeakerVerification", "XVectorHead", "am_softmax_loss"]
