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

from ..audio import SAMPLE_RATE, audio_files, check_unique_ids, segment_for
from ..fileio import read_lines
from .base import Example, Task, write_lines
from .sid import RandomCrops, check_rel_path, resolve_wav, utterance_name, voxceleb_roots

Trial = Tuple[int, str, str]  # (1 target / 0 non-target, enroll relative path, test relative path)

TDNN_CONTEXTS = (5, 3, 3, 1, 1)
TDNN_DILATIONS = (1, 2, 3, 1, 1)
#: frames the unpadded TDNN stack removes: sum of (context - 1) * dilation
TDNN_SHRINK = sum((c - 1) * d for c, d in zip(TDNN_CONTEXTS, TDNN_DILATIONS))


# -- metrics -------------------------------------------------------------------------------------
def _error_curve(labels, scores) -> Tuple[np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every distinct threshold ("accept if score >= t"), starting
    from "accept nothing" (miss 1, false alarm 0) and ending at "accept everything" (0, 1)."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape or len(y) == 0:
        raise ValueError(f"need equally long, non-empty 1-d labels and scores (got {y.shape} and {s.shape})")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"trial labels must be 0 or 1, got {sorted(set(y.tolist()) - {0, 1})[:5]}")
    if not np.isfinite(s).all():
        raise ValueError("trial scores must be finite")
    y = y.astype(np.int64)
    n_target = int(y.sum())
    n_nontarget = len(y) - n_target
    if n_target == 0 or n_nontarget == 0:
        raise ValueError(f"EER/minDCF need target and non-target trials (got {n_target} and {n_nontarget})")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each group of equal scores
    hits = np.cumsum(y)[last]
    false_alarms = np.cumsum(1 - y)[last]
    miss = np.r_[1.0, 1.0 - hits / n_target]
    fa = np.r_[0.0, false_alarms / n_nontarget]
    return miss, fa


def equal_error_rate(labels, scores) -> float:
    """EER in percent: where miss and false-alarm rates are equal on the ROC curve (linear
    interpolation between neighbouring operating points)."""
    miss, fa = _error_curve(labels, scores)
    d = miss - fa  # starts at 1, ends at -1, non-increasing
    i = int(np.argmax(d <= 0))
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(100.0 * (fa[i - 1] + t * (fa[i] - fa[i - 1])))


def min_dcf(labels, scores, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised minimum detection cost: ``min_t (c_miss P_miss p_target + c_fa P_fa (1 - p_target))
    / min(c_miss p_target, c_fa (1 - p_target))``."""
    if not 0.0 < p_target < 1.0 or c_miss <= 0 or c_fa <= 0:
        raise ValueError(f"minDCF needs 0 < p_target < 1 and positive costs (got {p_target}, {c_miss}, {c_fa})")
    miss, fa = _error_curve(labels, scores)
    cost = c_miss * miss * p_target + c_fa * fa * (1.0 - p_target)
    return float(cost.min() / min(c_miss * p_target, c_fa * (1.0 - p_target)))


# -- data ----------------------------------------------------------------------------------------
def read_trials(path: Path) -> List[Trial]:
    """Trials of a ``veri_test*.txt`` file: ``<1|0> <enroll .wav> <test .wav>`` per line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VoxCeleb1 trial list not found: {path}")
    trials: List[Trial] = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] not in ("0", "1"):
            raise ValueError(f"{path}:{n}: expected '<1|0> <enroll .wav> <test .wav>', got {line.strip()!r}")
        trials.append((int(parts[0]), check_rel_path(parts[1], f"{path}:{n}"), check_rel_path(parts[2], f"{path}:{n}")))
    if not trials:
        raise ValueError(f"{path}: the trial list is empty")
    if len({t[0] for t in trials}) < 2:
        raise ValueError(f"{path}: the trial list needs both target (1) and non-target (0) trials")
    return trials


def _trial_examples(data_dir: Path, trials: Sequence[Trial], where: Path, min_samples: int) -> List[Example]:
    roots = voxceleb_roots(data_dir, ("test/wav", "wav"))
    rels = sorted({t[1] for t in trials} | {t[2] for t in trials})
    examples = [Example(r, segment_for(resolve_wav(roots, r, str(where)), min_samples), r.split("/")[0]) for r in rels]
    return examples


def voxceleb1_verification(data_dir: Path, trials_file="veri_test.txt", dev_trials_file=None,
                           min_train_seconds: float = 2.0, min_samples: int = 400):
    """Training examples (VoxCeleb1 dev, short files dropped), trial utterances and trial lists.

    Returns ``(splits, trials, notes)``: ``splits`` maps train/dev/test to examples (dev/test:
    one example per utterance in the trials, id = relative path), ``trials`` maps dev/test to
    their trial lists, ``notes`` counts what was filtered.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"VoxCeleb1 folder not found: {data_dir}")

    def _path(name) -> Path:
        return Path(name) if Path(name).is_absolute() else data_dir / name

    test_path = _path(trials_file)
    test_trials = read_trials(test_path)
    dev_path = _path(dev_trials_file) if dev_trials_file else test_path
    dev_trials = read_trials(dev_path) if dev_trials_file else test_trials
    trial_speakers = {r.split("/")[0] for t in test_trials + dev_trials for r in t[1:]}

    if (data_dir / "dev" / "wav").is_dir():
        train_root, held_out = data_dir / "dev" / "wav", set()
    elif (data_dir / "wav").is_dir():
        train_root = data_dir / "wav"
        held_out = {p.name for p in train_root.iterdir() if p.is_dir()} & trial_speakers
    else:
        raise FileNotFoundError(f"{data_dir}: no VoxCeleb1 training audio (expected dev/wav/ or wav/)")
    min_keep = int(round(float(min_train_seconds) * SAMPLE_RATE))
    train: List[Example] = []
    dropped = 0
    speaker_dirs = sorted(p for p in train_root.iterdir() if p.is_dir() and p.name not in held_out)
    for spk_dir in speaker_dirs:
        for wav in audio_files(spk_dir, "*/*"):
            rel = f"{spk_dir.name}/{wav.parent.name}/{wav.name}"
            seg = segment_for(wav, min_samples)
            if seg.num_samples <= min_keep:
                dropped += 1
                continue
            train.append(Example(utterance_name(rel), seg, spk_dir.name))
    if not train:
        raise ValueError(f"{train_root}: no training files longer than {min_train_seconds:g} s "
                         f"({dropped} shorter ones dropped, {len(held_out)} trial speakers held out)")
    check_unique_ids((e.id for e in train), str(train_root))
    overlap = sorted({e.label for e in train} & trial_speakers)
    splits = {"train": train,
              "dev": _trial_examples(data_dir, dev_trials, dev_path, min_samples),
              "test": _trial_examples(data_dir, test_trials, test_path, min_samples)}
    notes = {
        "train_root": str(train_root),
        "train_files_kept": len(train),
        "train_files_dropped_short": dropped,
        "min_train_seconds": float(min_train_seconds),
        "train_speakers": len({e.label for e in train}),
        "trial_speakers_held_out_of_training": len(held_out),
        "trial_speakers_also_in_training": len(overlap),
        "dev_trials": str(dev_path) + ("" if dev_trials_file else " (= the test trials: SUPERB has no dev set)"),
        "test_trials": str(test_path),
        "trials": {"dev": _count(dev_trials), "test": _count(test_trials)},
    }
    return splits, {"dev": dev_trials, "test": test_trials}, notes


def _count(trials: Sequence[Trial]) -> Dict[str, int]:
    target = sum(t[0] for t in trials)
    return {"target": target, "nontarget": len(trials) - target}


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
        mask = (torch.arange(x.shape[1], device=x.device)[None, :] < valid[:, None]).to(x.dtype).unsqueeze(-1)
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
    metrics = {"eer": False, "min_dcf": False}
    primary_metric = "eer"
    mini_split = "voxceleb1"
    data_help = "VoxCeleb1 folder holding dev/wav/ and test/wav/ (or wav/) and veri_test.txt"

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("ASV needs --data pointing at the VoxCeleb1 folder")
        splits, self.trials, notes = voxceleb1_verification(
            Path(data_dir), self.cfg.get("trials") or "veri_test.txt", self.cfg.get("dev_trials"),
            float(self.cfg.get("min_train_seconds", 2.0)), int(self.cfg.get("min_samples", 400)))
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


__all__ = ["SpeakerVerification", "XVectorHead", "am_softmax_loss", "equal_error_rate", "min_dcf",
           "read_trials", "voxceleb1_verification"]
