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
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

from ..audio import DEFAULT_MIN_SAMPLES
from ..corpora.librispeech import prepare_librispeech, read_split
from ..decoders import KenLMDecoder, check_lm_files
from ..heads.ctc import VOCAB, RNNCTCHead, decode_ids, encode_transcript
from ..metrics.error_rates import cer, wer
from .base import Example, Task, write_lines
from .declaration import Board, Column, INF, LOWER, Metric, PERCENT, Submission

DECODERS = ("greedy", "kenlm")
#: ``task.kenlm`` keys and their defaults (s3prl v0.4.18 ``downstream/asr/config.yaml`` decoder_args)
KENLM_DEFAULTS: Dict[str, Any] = {"lm_path": None, "lexicon": None, "beam_size": 5, "beam_size_token": None,
                                  "beam_threshold": 25.0, "lm_weight": 2.0, "word_score": -1.0, "sil_score": 0.0}


@dataclass(frozen=True)
class Hypotheses:
    """One utterance decoded twice: greedy (no LM) and with the KenLM beam search."""

    greedy: str
    lm: str


def librispeech_manifest(root: Path, split: str, min_samples: int = DEFAULT_MIN_SAMPLES) -> List[Example]:
    """One LibriSpeech split, every transcript checked against the ASR character vocabulary."""
    return read_split(root, split, min_samples, check_text=encode_transcript)


class SpeechRecognition(Task):
    name = "asr"
    title = "Automatic speech recognition"
    category = "content"
    dataset = "LibriSpeech train-clean-100 / dev-clean / test-clean"
    #: wer_lm / cer_lm: reported only when decoding with the LM (``task.decoder: kenlm``)
    metrics = {"wer": Metric(LOWER, PERCENT), "cer": Metric(LOWER, PERCENT),
               "wer_lm": Metric(LOWER, "percent (KenLM beam search)"),
               "cer_lm": Metric(LOWER, "percent (KenLM beam search)")}
    primary_metric = "wer"
    loss_mean_over = "utterances"  # CTC, reduction="mean": per utterance over its target length, then the batch mean
    leaderboard = Board("Speech recognition (no LM)", (Column("WER", ("wer",), 23.18, 3.62, valid=(0, INF)),),
                        position=6)
    submission = (Submission("asr_public", "predict.ark", "utt_text",
                             ("predict.ark", "test-clean-noLM-hyp.ark", "hyp.ark")),
                  Submission("asr_lm_public", "predict.ark", "utt_text", ("predict_lm.ark", "test-clean-LM-hyp.ark")))
    mini_split = "librispeech"
    data_help = "the LibriSpeech folder (holding train-clean-100/, dev-clean/, test-clean/)"
    decode_settings = ("decoder", "kenlm")

    def __init__(self, cfg: Dict[str, Any], context=None):
        super().__init__(cfg, context)
        self.decoder_name = str(self.cfg.get("decoder") or "greedy")
        if self.decoder_name not in DECODERS:
            raise ValueError(f"task.decoder must be one of {', '.join(DECODERS)}, got {self.cfg.get('decoder')!r}")
        self.lm_decoder: Optional[KenLMDecoder] = None
        self.data_notes = {}
        if self.decoder_name == "kenlm":
            opts = self.kenlm_options()
            check_lm_files(opts["lm_path"], opts["lexicon"])  # before training: a missing file fails now

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
        min_samples = self.min_samples
        return prepare_librispeech(root, {name: splits[name] for name in ("train", "dev", "test")}, min_samples,
                                   check_text=encode_transcript)

    def build_head(self, input_dim, downsample_rate):
        c = self.cfg
        return RNNCTCHead(input_dim, len(VOCAB), int(c["projector_dim"]), int(c["rnn_dim"]), int(c["rnn_layers"]),
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
            return {"wer": 100.0 * wer(refs, greedy), "cer": 100.0 * cer(refs, greedy),
                    "wer_lm": 100.0 * wer(refs, with_lm), "cer_lm": 100.0 * cer(refs, with_lm)}
        hyps = list(predictions)
        return {"wer": 100.0 * wer(refs, hyps), "cer": 100.0 * cer(refs, hyps)}

    def write_predictions(self, out_dir, split, examples, predictions):
        pairs = sorted(zip(examples, predictions), key=lambda x: x[0].id)
        if pairs and isinstance(pairs[0][1], Hypotheses):
            return [write_lines(Path(out_dir) / split / "predict.ark", [f"{e.id} {p.greedy}" for e, p in pairs]),
                    write_lines(Path(out_dir) / split / "predict_lm.ark", [f"{e.id} {p.lm}" for e, p in pairs])]
        lines = [f"{e.id} {p}" for e, p in pairs]
        return [write_lines(Path(out_dir) / split / "predict.ark", lines)]
