"""SF — end-to-end slot filling on Audio SNIPS (SUPERB semantic task).

Layout (``--data`` points at the ``SNIPS`` folder, or at a folder holding ``SNIPS/``; the layout
s3prl's ``snips_prepare_data.sh`` produces, with the audio converted to 16 kHz wav)::

    SNIPS/all.iob.snips.txt                       # one line per utterance (all splits)
    SNIPS/{train,valid,test}/<Speaker>-snips-<split>-<n>.wav

``all.iob.snips.txt`` lines (s3prl ``snips.py`` / torchaudio ``Snips`` parse the same)::

    <Speaker>-snips-<split>-<n> BOS w1 w2 ... wn EOS<TAB>O t1 t2 ... tn <intent>

``ti`` is word ``wi``'s slot type, or ``O`` outside slots; consecutive words with the same type
form one slot (plain type names, no B-/I- prefixes, as in s3prl's ``iob`` column, e.g.
``O O O O O from_location O to_location to_location``). The first tag belongs to ``BOS``, the
last field is the intent (not used by SF). A line whose tag count does not match its words is an
error naming the file and line.

Text normalisation (facts from s3prl ``problem/asr/superb_sf.py``): ``&`` becomes ``AND`` (the
new words keep the tag), accented letters are mapped to plain ones, words that are only
punctuation (``? ! . , ; - – …``) are dropped with their tags, the text is upper-cased; any other
character outside A-Z and apostrophe is an error naming the line.

Splits: ``<split>/`` audio of the speakers listed in ``task.{train,valid,test}_speakers``
(SUPERB: 8 US-accent TTS voices for training, 4 + 4 others for valid/test); files of other
speakers in a split folder are outside the protocol and not used. A wav file without a
transcript line, or a listed speaker without any file, is an error.

Target sequence (s3prl ``CharacterTextSlotEncoder``): characters of the words separated by the
word boundary, with ``B-<type>`` before the first and ``E-<type>`` after the last word of each
slot, e.g. ``PLAY B-artist JOHN LEGEND E-artist ON B-service SPOTIFY E-service``. Vocabulary =
ASR characters + ``B-``/``E-`` tokens of every slot type found in ``all.iob.snips.txt`` (sorted;
the new s3prl builds it from the tags of all three splits too).

Head (s3prl ``downstream/ctc/snips.yaml``): as ASR — projector 1024 -> 2-layer BiLSTM 1024,
dropout 0.2, SpecAugment (:class:`superb.downstream.heads.ctc.SpecAugment`), CTC, greedy decoding. The BiLSTM is
computed as two unidirectional LSTMs, the backward one on each sequence's time-reversed valid
frames: the same function as a packed bidirectional LSTM (checked in the tests), without packed
sequences, whose backward pass is ~10-50x slower on CPU.

Metrics (definitions from s3prl ``downstream/ctc/metric.py``; SUPERB reports both, and its dev
checkpoint selection uses the first, so ``slot_type_f1`` is the primary metric):

* ``slot_type_f1`` (%) — per utterance, the sets of slot types in reference and hypothesis give
  precision and recall (F1 = 1 when both are empty, 0 when exactly one is), averaged over
  utterances.
* ``slot_value_cer`` (%) — for every reference slot, the hypothesis value of the same type with
  the lowest CER (the empty string when the type is absent; the first on ties) is aligned to it;
  total character edits / total reference characters over all those pairs (spaces count).
* ``wer`` / ``cer`` (%) of the transcript with slot tokens removed.

Slots are read from a sequence with the pattern ``B-<type> <value> E-<type>`` (shortest value,
matching type); slot tokens nested inside a hypothesis value are removed from it.
Predictions: ``predict.ark`` with ``<utt-id> <decoded sequence with slot tokens>`` lines.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..corpora.audio_snips import prepare_audio_snips
from ..heads.ctc import VOCAB as CHAR_VOCAB, RNNCTCHead
from ..metrics.error_rates import cer, wer
from ..metrics.slots import remove_slot_tokens, slot_type_f1, slot_value_cer
from .base import Example, Task, write_lines
from .declaration import Board, Column, HIGHER, INF, LOWER, Metric, PERCENT, Submission


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first ``lengths[b]`` frames of every item of ``[B, T, D]``; padding stays put."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    n = lengths.to(x.device)[:, None]
    idx = torch.where(t < n, n - 1 - t, t)
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class BiLSTM(nn.Module):
    """A bidirectional LSTM layer over padded batches (two unidirectional LSTMs)."""

    def __init__(self, input_dim: int, hidden: int):
        super().__init__()
        self.fwd = nn.LSTM(input_dim, hidden, batch_first=True)
        self.bwd = nn.LSTM(input_dim, hidden, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        f, _ = self.fwd(x)
        b, _ = self.bwd(reverse_padded(x, lengths))
        return torch.cat([f, reverse_padded(b, lengths)], dim=-1)


class SlotFillingHead(RNNCTCHead):
    """The ASR head's architecture, with each BiLSTM run as two unpacked one-way LSTMs
    (:class:`BiLSTM`; packed sequences are very slow on CPU) and float32 recurrences."""

    def make_rnn(self, input_dim: int, hidden: int) -> nn.Module:
        return BiLSTM(input_dim, hidden)

    def run_rnn(self, rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return rnn(x, lengths)

    def project(self, feats: torch.Tensor) -> torch.Tensor:
        return self.projector(feats).float()


class SlotFilling(Task):
    name = "sf"
    title = "Slot filling"
    category = "semantic"
    dataset = "Audio SNIPS"
    metrics = {"slot_type_f1": Metric(HIGHER, PERCENT), "slot_value_cer": Metric(LOWER, PERCENT),
               "wer": Metric(LOWER, PERCENT), "cer": Metric(LOWER, PERCENT)}
    primary_metric = "slot_type_f1"
    loss_mean_over = "utterances"  # CTC, reduction="mean"
    leaderboard = Board("Slot filling", (Column("F1", ("slot_type_f1",), 69.64, 89.81),
                                   Column("CER", ("slot_value_cer",), 52.94, 21.76, valid=(0, INF))), position=10)
    submission = (Submission("sf_public", "predict.ark", "utt_text", ("predict.ark", "test-hyp.ark", "hyp.ark")),)
    mini_split = "snips"
    data_help = "the SNIPS folder (holding all.iob.snips.txt and train/, valid/, test/ with 16 kHz wav)"

    def __init__(self, cfg, context=None):
        super().__init__(cfg, context)
        self.vocab: Tuple[str, ...] = ()
        self.token_to_id: Dict[str, int] = {}

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("SF needs --data pointing at the SNIPS folder")
        speakers = {"train": self.cfg["train_speakers"], "dev": self.cfg["valid_speakers"],
                    "test": self.cfg["test_speakers"]}
        splits, slot_types = prepare_audio_snips(Path(data_dir), speakers, self.min_samples)
        self.vocab = CHAR_VOCAB + tuple(f"{p}-{s}" for s in slot_types for p in ("B", "E"))
        self.token_to_id = {t: i for i, t in enumerate(self.vocab)}
        return splits

    def encode(self, seq: str, where: str) -> List[int]:
        ids: List[int] = []
        for k, word in enumerate(seq.split()):
            if k:
                ids.append(self.token_to_id["|"])
            if word in self.token_to_id and "-" in word:
                ids.append(self.token_to_id[word])
                continue
            for ch in word:
                if ch not in self.token_to_id or ch in ("|",):
                    raise ValueError(f"{where}: character {ch!r} is outside the SF vocabulary")
                ids.append(self.token_to_id[ch])
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        out: List[str] = []
        prev = None
        for i in ids:
            if i != prev and i != 0:
                tok = self.vocab[i]
                out.append(" " if tok == "|" else (f" {tok} " if "-" in tok else tok))
            prev = i
        return " ".join("".join(out).split())

    def build_head(self, input_dim, downsample_rate):
        if not self.vocab:
            raise RuntimeError("SF: prepare() must run before build_head() (slot tokens come from the corpus)")
        c = self.cfg
        return SlotFillingHead(input_dim, len(self.vocab), int(c["projector_dim"]), int(c["rnn_dim"]),
                               int(c["rnn_layers"]), float(c["dropout"]), c.get("specaug"))

    def loss(self, head, feats, lengths, examples):
        log_probs = head(feats, lengths)
        targets = [torch.tensor(self.encode(e.label, e.id)) for e in examples]
        target_lens = torch.tensor([len(t) for t in targets])
        return F.ctc_loss(log_probs.transpose(0, 1), torch.cat(targets).to(log_probs.device), lengths,
                          target_lens.to(log_probs.device), blank=0, reduction="mean", zero_infinity=True)

    def predict(self, head, feats, lengths, examples):
        best = head(feats, lengths).argmax(-1).cpu()
        return [self.decode(best[b, :n].tolist()) for b, n in enumerate(lengths.tolist())]

    def score(self, examples, predictions):
        refs = [e.label for e in examples]
        hyps = list(predictions)
        plain_refs = [remove_slot_tokens(r) for r in refs]
        plain_hyps = [remove_slot_tokens(h) for h in hyps]
        return {
            "slot_type_f1": 100.0 * slot_type_f1(refs, hyps),
            "slot_value_cer": 100.0 * slot_value_cer(refs, hyps),
            "wer": 100.0 * wer(plain_refs, plain_hyps),
            "cer": 100.0 * cer(plain_refs, plain_hyps),
        }

    def write_predictions(self, out_dir, split, examples, predictions):
        lines = [f"{e.id} {p}".rstrip() for e, p in sorted(zip(examples, predictions), key=lambda x: x[0].id)]
        return [write_lines(Path(out_dir) / split / "predict.ark", lines)]
