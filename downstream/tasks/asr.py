"""ASR — character CTC speech recognition on LibriSpeech (SUPERB content task).

Layout (``--data`` points at the LibriSpeech folder, or at a folder holding ``LibriSpeech/``)::

    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   # "<utt-id> TRANSCRIPT"

Splits come from ``data.splits`` (SUPERB: train-clean-100 / dev-clean / test-clean). Every audio
file needs a transcript line and every transcript line an audio file; characters outside the
vocabulary are an error naming the file.

Head (s3prl ``downstream/asr/config.yaml``): linear projector 1024 -> 2-layer bidirectional LSTM
(1024 per direction, dropout 0.2) -> linear over characters, CTC with greedy decoding. SpecAugment
is applied to the weighted features during training (time and frequency masks with s3prl's
widths; s3prl's time warping is not applied). Vocabulary: CTC blank, word boundary ``|``,
apostrophe, A-Z. Metrics: WER (%) via jiwer (primary, lower is better) and CER (%).
Predictions: ``predict.ark`` with ``<utt-id> <hypothesis>`` lines.

Decoding (``task.decoder``): ``greedy`` (default; SUPERB's "ASR, no LM" column) or ``kenlm``:
s3prl's lexicon beam search with a KenLM n-gram (the leaderboard's "ASR+LM" column, SUPERB used
LibriSpeech's official 4-gram), options under ``task.kenlm`` (see :mod:`superb.downstream.decoders`;
s3prl's values: beam 5, beam threshold 25, LM weight 2, word score -1). With ``kenlm`` the greedy
``wer``/``cer`` are still reported and still pick the best dev checkpoint (no-LM and LM numbers
come from the same checkpoint, as in s3prl), and ``wer_lm``/``cer_lm`` are added, with the LM
hypotheses in ``predict_lm.ark``; ``data.notes.decoder`` in results.json records the LM, lexicon
and search options. The LM file is never downloaded: a missing one is an error naming the path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import jiwer
import torch
import torch.nn.functional as F
from torch import nn

from ..audio import audio_files, segment_for
from ..decoders import KenLMDecoder, check_lm_files
from ..fileio import read_lines
from .base import METRIC_UNITS, Example, Task, write_lines

BLANK = "<blank>"
VOCAB = (BLANK, "|", "'") + tuple(chr(c) for c in range(ord("A"), ord("Z") + 1))
CHAR_TO_ID = {c: i for i, c in enumerate(VOCAB)}


def encode_transcript(text: str, where: str) -> List[int]:
    ids = []
    for ch in text:
        key = "|" if ch == " " else ch
        if key not in CHAR_TO_ID or key == BLANK:
            raise ValueError(f"{where}: character {ch!r} is outside the ASR vocabulary (A-Z, apostrophe, space)")
        ids.append(CHAR_TO_ID[key])
    return ids


def decode_ids(ids: Sequence[int]) -> str:
    """Greedy CTC collapse: merge repeats, drop blanks, ``|`` -> space."""
    out, prev = [], None
    for i in ids:
        if i != prev and i != 0:
            out.append(" " if VOCAB[i] == "|" else VOCAB[i])
        prev = i
    return " ".join("".join(out).split())


DECODERS = ("greedy", "kenlm")
#: ``task.kenlm`` keys and their defaults (s3prl v0.4.18 ``downstream/asr/config.yaml`` decoder_args)
KENLM_DEFAULTS: Dict[str, Any] = {"lm_path": None, "lexicon": None, "beam_size": 5, "beam_size_token": None,
                                  "beam_threshold": 25.0, "lm_weight": 2.0, "word_score": -1.0, "sil_score": 0.0}
#: metrics added when decoding with the LM
LM_METRICS = {"wer_lm": False, "cer_lm": False}


@dataclass(frozen=True)
class Hypotheses:
    """One utterance decoded twice: greedy (no LM) and with the KenLM beam search."""

    greedy: str
    lm: str


def librispeech_manifest(root: Path, split: str, min_samples: int = 400) -> List[Example]:
    """Parse ``<root>/<split>/<spk>/<chapter>/`` into examples labelled with their transcripts."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"LibriSpeech split folder not found: {split_dir}")
    examples: List[Example] = []
    for chapter_dir in sorted(p for p in split_dir.glob("*/*") if p.is_dir()):
        spk, chapter = chapter_dir.parent.name, chapter_dir.name
        trans_path = chapter_dir / f"{spk}-{chapter}.trans.txt"
        audio = {p.stem: p for p in audio_files(chapter_dir, ext=".flac")}
        if not trans_path.is_file():
            if audio:
                raise FileNotFoundError(f"missing transcript file {trans_path} for {len(audio)} audio files")
            continue
        texts: Dict[str, str] = {}
        for n, line in enumerate(read_lines(trans_path), 1):
            if not line.strip():
                continue
            utt, _, text = line.strip().partition(" ")
            if not text.strip():
                raise ValueError(f"{trans_path}:{n}: empty transcript for {utt}")
            texts[utt] = " ".join(text.split())
        missing_text = sorted(set(audio) - set(texts))
        if missing_text:
            raise ValueError(f"{trans_path}: no transcript for audio {', '.join(missing_text[:5])}"
                             + (f" and {len(missing_text) - 5} more" if len(missing_text) > 5 else ""))
        missing_audio = sorted(set(texts) - set(audio))
        if missing_audio:
            raise FileNotFoundError(f"{trans_path}: transcript lines without audio file: {', '.join(missing_audio[:5])}")
        for utt in sorted(texts):
            encode_transcript(texts[utt], f"{trans_path} ({utt})")
            examples.append(Example(utt, segment_for(audio[utt], min_samples), texts[utt]))
    if not examples:
        raise ValueError(f"LibriSpeech split {split_dir} holds no utterances")
    return examples


class SpecAugment(nn.Module):
    """Random time and frequency masks on ``[B, T, D]`` features (training only)."""

    def __init__(self, num_time_masks=2, max_time_width=40, num_freq_masks=4, max_freq_width=50):
        super().__init__()
        self.num_time_masks, self.max_time_width = num_time_masks, max_time_width
        self.num_freq_masks, self.max_freq_width = num_freq_masks, max_freq_width

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return feats
        feats = feats.clone()
        dim = feats.shape[-1]
        for b, n in enumerate(lengths.tolist()):
            for _ in range(self.num_time_masks):
                w = int(torch.randint(0, self.max_time_width + 1, ()))
                if 0 < w < n:
                    t0 = int(torch.randint(0, n - w + 1, ()))
                    feats[b, t0:t0 + w] = 0
            for _ in range(self.num_freq_masks):
                w = int(torch.randint(0, min(self.max_freq_width, dim - 1) + 1, ()))
                if w > 0:
                    f0 = int(torch.randint(0, dim - w + 1, ()))
                    feats[b, :, f0:f0 + w] = 0
        return feats


class RNNCTCHead(nn.Module):
    """Projector -> stacked bidirectional LSTMs (packed, so padding never leaks) -> linear."""

    def __init__(self, input_dim, vocab_size, project_dim, rnn_dim, rnn_layers, dropout, specaug=None):
        super().__init__()
        self.specaug = SpecAugment(**specaug) if specaug else None
        self.projector = nn.Linear(input_dim, project_dim)
        self.rnns = nn.ModuleList()
        in_dim = project_dim
        for _ in range(rnn_layers):
            self.rnns.append(self.make_rnn(in_dim, rnn_dim))
            in_dim = 2 * rnn_dim
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(in_dim, vocab_size)

    def make_rnn(self, input_dim: int, hidden: int) -> nn.Module:
        return nn.LSTM(input_dim, hidden, batch_first=True, bidirectional=True)

    def run_rnn(self, rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = rnn(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    def project(self, feats: torch.Tensor) -> torch.Tensor:
        return self.projector(feats)

    def forward(self, feats, lengths):
        if self.specaug is not None:
            feats = self.specaug(feats, lengths)
        x = self.project(feats)
        for rnn in self.rnns:
            x = self.dropout(self.run_rnn(rnn, x, lengths))
        return self.output(x).float().log_softmax(-1)


class SpeechRecognition(Task):
    name = "asr"
    title = "Automatic speech recognition"
    category = "content"
    dataset = "LibriSpeech train-clean-100 / dev-clean / test-clean"
    metrics = {"wer": False, "cer": False}
    primary_metric = "wer"
    mini_split = "librispeech"
    data_help = "the LibriSpeech folder (holding train-clean-100/, dev-clean/, test-clean/)"
    decode_settings = ("decoder", "kenlm")

    def __init__(self, cfg: Dict[str, Any]):
        super().__init__(cfg)
        self.decoder_name = str(self.cfg.get("decoder") or "greedy")
        if self.decoder_name not in DECODERS:
            raise ValueError(f"task.decoder must be one of {', '.join(DECODERS)}, got {self.cfg.get('decoder')!r}")
        self.lm_decoder: Optional[KenLMDecoder] = None
        self.data_notes = {}
        if self.decoder_name == "kenlm":
            opts = self.kenlm_options()
            check_lm_files(opts["lm_path"], opts["lexicon"])  # before training: a missing file fails now
            self.metrics = {**type(self).metrics, **LM_METRICS}

    def kenlm_options(self) -> Dict[str, Any]:
        given = self.cfg.get("kenlm") or {}
        if not isinstance(given, dict):
            raise ValueError(f"task.kenlm must be a mapping, got {given!r}")
        unknown = sorted(set(given) - set(KENLM_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown task.kenlm key(s) {', '.join(unknown)}; known: {', '.join(KENLM_DEFAULTS)}")
        opts = {**KENLM_DEFAULTS, **given}
        for key in ("beam_size", "beam_size_token"):
            v = opts[key]
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < 1):
                raise ValueError(f"task.kenlm.{key} must be a whole number >= 1" + (" or null" if key == "beam_size_token"
                                 else "") + f", got {v!r}")
        for key in ("beam_threshold", "lm_weight", "word_score", "sil_score"):
            v = opts[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) == float("inf"):
                raise ValueError(f"task.kenlm.{key} must be a finite number, got {v!r}")
        return opts

    def build_lm_decoder(self) -> KenLMDecoder:
        opts = self.kenlm_options()
        return KenLMDecoder(VOCAB, opts["lm_path"], opts["lexicon"], blank=0, boundary="|",
                            beam_size=opts["beam_size"], beam_size_token=opts["beam_size_token"],
                            beam_threshold=opts["beam_threshold"], lm_weight=opts["lm_weight"],
                            word_score=opts["word_score"], sil_score=opts["sil_score"])

    @classmethod
    def metric_units(cls, names=None) -> Dict[str, str]:
        names = sorted(names if names is not None else cls.metrics)
        lm = {n: f"{METRIC_UNITS[n[:-3]]} (KenLM beam search)" for n in names if n in LM_METRICS}
        return {**super().metric_units([n for n in names if n not in LM_METRICS]), **lm}

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("ASR needs --data pointing at the LibriSpeech folder")
        if self.decoder_name == "kenlm" and self.lm_decoder is None:
            self.lm_decoder = self.build_lm_decoder()  # before training: a bad LM or lexicon fails now
            self.data_notes = {"decoder": self.lm_decoder.describe()}
        root = Path(data_dir)
        if (root / "LibriSpeech").is_dir():
            root = root / "LibriSpeech"
        splits = self.cfg["splits"]
        min_samples = int(self.cfg.get("min_samples", 400))
        return {name: librispeech_manifest(root, splits[name], min_samples) for name in ("train", "dev", "test")}

    def build_head(self, input_dim, downsample_rate):
        c = self.cfg
        return RNNCTCHead(input_dim, len(VOCAB), int(c["project_dim"]), int(c["rnn_dim"]), int(c["rnn_layers"]),
                          float(c["dropout"]), c.get("specaug"))

    def loss(self, head, feats, lengths, examples):
        log_probs = head(feats, lengths)  # [B, T, V]
        targets = [torch.tensor(encode_transcript(e.label, e.id)) for e in examples]
        target_lens = torch.tensor([len(t) for t in targets])
        return F.ctc_loss(log_probs.transpose(0, 1), torch.cat(targets).to(log_probs.device), lengths,
                          target_lens.to(log_probs.device), blank=0, reduction="mean", zero_infinity=True)

    def predict(self, head, feats, lengths, examples):
        log_probs = head(feats, lengths)
        best = log_probs.argmax(-1).cpu()
        greedy = [decode_ids(best[b, :n].tolist()) for b, n in enumerate(lengths.tolist())]
        if self.decoder_name == "greedy":
            return greedy
        if self.lm_decoder is None:
            self.lm_decoder = self.build_lm_decoder()
        with_lm = self.lm_decoder.decode_batch(log_probs.float().cpu(), lengths.cpu())
        return [Hypotheses(g, h) for g, h in zip(greedy, with_lm)]

    def score(self, examples, predictions):
        refs = [e.label for e in examples]
        if predictions and isinstance(predictions[0], Hypotheses):
            greedy, with_lm = [p.greedy for p in predictions], [p.lm for p in predictions]
            return {"wer": 100.0 * jiwer.wer(refs, greedy), "cer": 100.0 * jiwer.cer(refs, greedy),
                    "wer_lm": 100.0 * jiwer.wer(refs, with_lm), "cer_lm": 100.0 * jiwer.cer(refs, with_lm)}
        hyps = list(predictions)
        return {"wer": 100.0 * jiwer.wer(refs, hyps), "cer": 100.0 * jiwer.cer(refs, hyps)}

    def write_predictions(self, out_dir, split, examples, predictions):
        pairs = sorted(zip(examples, predictions), key=lambda x: x[0].id)
        if pairs and isinstance(pairs[0][1], Hypotheses):
            return [write_lines(Path(out_dir) / split / "predict.ark", [f"{e.id} {p.greedy}" for e, p in pairs]),
                    write_lines(Path(out_dir) / split / "predict_lm.ark", [f"{e.id} {p.lm}" for e, p in pairs])]
        lines = [f"{e.id} {p}" for e, p in pairs]
        return [write_lines(Path(out_dir) / split / "predict.ark", lines)]
