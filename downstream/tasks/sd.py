"""SD — two-speaker diarization on Libri2Mix (SUPERB speaker task).

Layout (``--data`` points at the folder holding one kaldi-style directory per split, named by
``task.splits``; s3prl's ``downstream/diarization/data/{train,dev,test}`` made by LibriMix's
``prepare_diarization.py``)::

    <split>/wav.scp     <recording-id> <path to a 16 kHz mono wav>   (relative paths: to <split>/)
    <split>/segments    <utterance-id> <recording-id> <start s> <end s>
    <split>/utt2spk     <utterance-id> <speaker-id>
    <split>/reco2dur    <recording-id> <duration s>        (optional; else read from the audio)
    <split>/rttm        SPEAKER <recording-id> 1 <start s> <dur s> <NA> <NA> <speaker-id> <NA> <NA>
                        (the scoring reference: required for dev and test)

Every recording of ``wav.scp`` must have segments; every segment's recording and utterance must
be known; at most ``task.num_speakers`` (2) speakers per recording. Bad lines are errors naming
the file and line. Piped ``wav.scp`` entries (``cmd |``) are refused: convert them to files.

Frames and labels (s3prl ``downstream/diarization/dataset.py``, from EEND): the label frame
shift is the upstream's downsample rate (160, 320 or 640 samples); a recording has
``int(duration * 16000 / frame_shift)`` label frames; a segment ``[st, et]`` marks frames
``rint(st * 16000 / frame_shift)`` to ``rint(et * 16000 / frame_shift)`` (exclusive) active for its
speaker; a recording's speakers are its ``utt2spk`` speakers, sorted. Recordings are cut into
chunks of ``task.chunk_size`` (2000) frames, plus the remainder (``use_last_samples``), for
training, dev and test alike; test and dev predictions are put back together per recording.
Upstream frames are matched to label frames as s3prl does: extra frames are dropped, missing
ones repeat the last valid frame.

Head (s3prl ``downstream/diarization/model.py`` and ``config.yaml``): a 1-layer unidirectional
LSTM (512) -> linear to ``num_speakers`` logits; loss = permutation-invariant binary cross
entropy (the speaker order with the lowest BCE per chunk; BCE averaged over valid frames and
speakers of the batch).

Scoring (s3prl ``score.sh`` with dscore; NIST DER): sigmoid posteriors are thresholded at each
of ``task.thresholds`` (0.3 ... 0.7) and median-filtered along time with each of
``task.median_filters`` (1, 11 frames), turned into speaker segments, and scored against the
reference RTTM in continuous time with **no collar and overlapped speech scored**: DER = (missed
speech + false alarm + speaker confusion) / total reference speech, with the optimal one-to-one
mapping of hypothesis to reference speakers per recording (Hungarian on co-occurrence time),
summed over recordings. SUPERB reports the lowest DER over the post-processing grid; so does
``der`` here (on dev for checkpoint selection, on test for the result; ``miss``,
``false_alarm``, ``confusion`` are the components of that best setting).

Predictions (the leaderboard's ``sd_public/``): ``hyp.rttm`` (the best setting),
``frame_shift`` (the label frame shift in samples, the file s3prl's scorer reads),
``setting.txt`` (threshold and median filter of ``hyp.rttm``) and ``posteriors/<recording>.npy``
(float32 ``[frames, speakers]`` sigmoid outputs; s3prl writes the same array to ``.h5`` files).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import medfilt
from torch import nn

from ..audio import SAMPLE_RATE, segment_for
from ..corpora.librimix import Interval, read_kaldi_dir
from ..metrics.diarization import diarization_error_rate, union_intervals
from .base import Example, Task, write_lines
from .declaration import Board, Column, INF, LOWER, Metric, PERCENT, Submission


@dataclass(frozen=True)
class ChunkLabel:
    """What one training/eval chunk needs: its recording, position and the speaker activity."""

    recording: str
    chunk: int
    start_frame: int
    num_frames: int
    #: per speaker (sorted speaker ids) the segments of the recording, seconds
    speakers: Tuple[str, ...]
    segments: Tuple[Tuple[Interval, ...], ...]
    #: the recording's scoring reference from ``rttm`` as ``((speaker, intervals), ...)``; None in train
    reference: Optional[Tuple[Tuple[str, Tuple[Interval, ...]], ...]] = None


def write_rttm(path: Path, hyp: Dict[str, Dict[str, List[Interval]]]) -> Path:
    lines = []
    for rec in sorted(hyp):
        for spk in sorted(hyp[rec]):
            for st, et in hyp[rec][spk]:
                lines.append(f"SPEAKER {rec} 1 {st:.3f} {et - st:.3f} <NA> <NA> {spk} <NA> <NA>")
    return write_lines(path, lines)


# -- labels -------------------------------------------------------------------------------------------
def frame_labels(label: ChunkLabel, frame_shift: int, num_speakers: int) -> np.ndarray:
    """``[num_frames, num_speakers]`` 0/1 activity of a chunk (s3prl/EEND rounding)."""
    t = np.zeros((label.num_frames, num_speakers), dtype=np.float32)
    a, b = label.start_frame, label.start_frame + label.num_frames
    for k, segs in enumerate(label.segments):
        for st, et in segs:
            s = int(np.rint(st * SAMPLE_RATE / frame_shift))
            e = int(np.rint(et * SAMPLE_RATE / frame_shift))
            lo, hi = max(s, a), min(e, b)
            if hi > lo:
                t[lo - a:hi - a, k] = 1.0
    return t


def chunk_ranges(num_frames: int, chunk_size: int) -> List[Tuple[int, int]]:
    """Consecutive ``chunk_size``-frame chunks plus the remainder."""
    return [(s, min(num_frames, s + chunk_size)) for s in range(0, num_frames, chunk_size)]


def match_length(feats: torch.Tensor, lengths: torch.Tensor, targets: Sequence[int]) -> torch.Tensor:
    """Cut or pad (repeating the last valid frame) each item to its label length."""
    out = feats.new_zeros(feats.shape[0], max(targets), feats.shape[2])
    for b, (n, m) in enumerate(zip(lengths.tolist(), targets)):
        k = min(n, m)
        out[b, :k] = feats[b, :k]
        if m > k:
            out[b, k:m] = feats[b, k - 1]
    return out


class LSTMDiarizationHead(nn.Module):
    """Unidirectional LSTM -> linear. Padding sits after the valid frames and the LSTM only looks
    back, so the padded batch is run as is (no packing: packed-sequence backward is ~50x slower on
    CPU) and the outputs at valid frames are exactly those of each chunk alone."""

    def __init__(self, input_dim: int, hidden_size: int, num_layers: int, num_speakers: int):
        super().__init__()
        self.rnn = nn.LSTM(input_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.linear = nn.Linear(hidden_size, num_speakers)

    def forward(self, feats: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
        out, _ = self.rnn(feats.float())
        return self.linear(out).float()


def pit_bce(logits: torch.Tensor, labels: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """Permutation-invariant BCE: per item the speaker order with the lowest BCE, averaged over
    all valid frames and speakers of the batch."""
    n_spk = logits.shape[-1]
    total, count = logits.new_zeros(()), 0
    for b, n in enumerate(lengths):
        best = None
        for perm in itertools.permutations(range(n_spk)):
            loss = F.binary_cross_entropy_with_logits(logits[b, :n], labels[b, :n][:, list(perm)], reduction="sum")
            best = loss if best is None or loss < best else best
        total = total + best
        count += n * n_spk
    return total / max(count, 1)


# -- post-processing and DER -------------------------------------------------------------------------
def posteriors_to_segments(post: np.ndarray, threshold: float, median: int, frame_shift: int
                           ) -> List[List[Interval]]:
    """Per output speaker, the active segments (seconds) after thresholding and median filtering."""
    active = (post > threshold).astype(np.float64)
    if median > 1:
        active = np.stack([medfilt(active[:, k], median) for k in range(active.shape[1])], axis=1)
    out = []
    step = frame_shift / SAMPLE_RATE
    for k in range(active.shape[1]):
        a = np.concatenate([[0], (active[:, k] > 0.5).astype(np.int8), [0]])
        edges = np.diff(a)
        starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        out.append([(s * step, e * step) for s, e in zip(starts, ends)])
    return out


class SpeakerDiarization(Task):
    name = "sd"
    title = "Speaker diarization"
    category = "speaker"
    dataset = "Libri2Mix (2 speakers), kaldi-style directories"
    metrics = {"der": Metric(LOWER, PERCENT), "miss": Metric(LOWER, PERCENT), "false_alarm": Metric(LOWER, PERCENT),
               "confusion": Metric(LOWER, PERCENT)}
    primary_metric = "der"
    leaderboard = Board("Speaker diarization", (Column("DER", ("der",), 10.05, 5.62, valid=(0, INF)),), position=8)
    submission = (Submission("sd_public", "", "sd_dir"),)
    mini_split = "diarization"
    data_help = "the folder holding the kaldi-style split directories (train/, dev/, test/)"

    def __init__(self, cfg, context=None):
        super().__init__(cfg, context)
        self.num_speakers = int(self.cfg.get("num_speakers", 2))

    @property
    def frame_shift(self) -> int:
        """The label frame shift in samples: the upstream's downsample rate (``TaskContext``)."""
        rate = self.context.downsample_rate
        if not rate:
            raise RuntimeError("SD frames its labels with the upstream's downsample rate: build the task with "
                               "TaskContext(downsample_rate=...)")
        return int(rate)

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("SD needs --data pointing at the folder holding the kaldi-style split directories")
        fs = self.frame_shift
        root = Path(data_dir)
        chunk_size = int(self.cfg["chunk_size"])
        min_samples = self.min_samples
        out: Dict[str, List[Example]] = {}
        for split in ("train", "dev", "test"):
            recs, rttm = read_kaldi_dir(root / self.cfg["splits"][split], self.num_speakers, need_rttm=split != "train")
            examples: List[Example] = []
            cache: Dict[str, int] = {}
            for rec, (wav, dur, samples, speakers, per_spk) in recs.items():
                n_frames = min(int(dur * SAMPLE_RATE / fs), samples // fs)
                if n_frames * fs < min_samples:
                    raise ValueError(f"{wav}: recording {rec!r} is too short ({samples} samples) for "
                                     f"{fs}-sample frames")
                ranges = chunk_ranges(n_frames, chunk_size)
                if len(ranges) > 1 and (ranges[-1][1] - ranges[-1][0]) * fs < min_samples:
                    # a remainder too short for any upstream joins the chunk before it
                    ranges = ranges[:-2] + [(ranges[-2][0], ranges[-1][1])]
                ref = None
                if rttm is not None:
                    ref = tuple((spk, tuple(union_intervals(ivs))) for spk, ivs in sorted(rttm[rec].items()))
                for k, (a, b) in enumerate(ranges):
                    seg = segment_for(wav, min_samples, start=a * fs, num_samples=(b - a) * fs, info_cache=cache)
                    examples.append(Example(f"{rec}#{k}", seg, ChunkLabel(rec, k, a, b - a, speakers, per_spk, ref)))
            out[split] = examples
        return out

    def build_head(self, input_dim, downsample_rate):
        return LSTMDiarizationHead(input_dim, int(self.cfg["hidden_size"]), int(self.cfg["rnn_layers"]), self.num_speakers)

    def _forward(self, head, feats, lengths, examples):
        targets = [e.label.num_frames for e in examples]
        x = match_length(feats, lengths, targets)
        return head(x, targets), targets

    def loss(self, head, feats, lengths, examples):
        logits, targets = self._forward(head, feats, lengths, examples)
        labels = torch.zeros(logits.shape, device=logits.device)
        for b, e in enumerate(examples):
            labels[b, :targets[b]] = torch.from_numpy(frame_labels(e.label, self.frame_shift, self.num_speakers))
        return pit_bce(logits, labels, targets)

    def predict(self, head, feats, lengths, examples):
        logits, targets = self._forward(head, feats, lengths, examples)
        probs = torch.sigmoid(logits).cpu().numpy()
        return [probs[b, :n].astype(np.float32) for b, n in enumerate(targets)]

    # -- scoring ------------------------------------------------------------------------------------
    def recording_posteriors(self, examples, predictions) -> Dict[str, np.ndarray]:
        parts: Dict[str, List[Tuple[int, np.ndarray]]] = {}
        for e, p in zip(examples, predictions):
            parts.setdefault(e.label.recording, []).append((e.label.start_frame, p))
        return {rec: np.concatenate([p for _, p in sorted(ps, key=lambda x: x[0])]) for rec, ps in parts.items()}

    def _hypotheses(self, posts, threshold, median):
        hyp = {}
        for rec, post in posts.items():
            segs = posteriors_to_segments(post, threshold, median, self.frame_shift)
            hyp[rec] = {f"{rec}_spk{k}": s for k, s in enumerate(segs) if s}
        return hyp

    def best_setting(self, examples, predictions):
        refs = {}
        for e in examples:
            if e.label.reference is None:
                raise ValueError(f"SD: chunk {e.id} has no reference RTTM to score against")
            refs[e.label.recording] = {spk: list(ivs) for spk, ivs in e.label.reference}
        posts = self.recording_posteriors(examples, predictions)
        best = None
        for med in self.cfg["median_filters"]:
            for th in self.cfg["thresholds"]:
                res = diarization_error_rate(refs, self._hypotheses(posts, float(th), int(med)))
                if best is None or res["der"] < best[0]["der"]:
                    best = (res, float(th), int(med))
        return best, posts

    def score(self, examples, predictions):
        (res, th, med), _ = self.best_setting(examples, predictions)
        return res

    def write_predictions(self, out_dir, split, examples, predictions):
        (res, th, med), posts = self.best_setting(examples, predictions)
        d = Path(out_dir) / split
        files = [write_rttm(d / "hyp.rttm", self._hypotheses(posts, th, med)),
                 write_lines(d / "frame_shift", [str(self.frame_shift)]),
                 write_lines(d / "setting.txt", [f"threshold {th}", f"median_filter {med}", f"der {res['der']:.4f}"])]
        (d / "posteriors").mkdir(parents=True, exist_ok=True)
        for rec, post in sorted(posts.items()):
            path = d / "posteriors" / f"{rec}.npy"
            np.save(path, post.astype(np.float32))
            files.append(path)
        return files
