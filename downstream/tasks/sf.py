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
dropout 0.2, SpecAugment (:class:`.asr.SpecAugment`), CTC, greedy decoding. The BiLSTM is
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

import re
import unicodedata
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import jiwer
import torch
import torch.nn.functional as F
from torch import nn

from ..audio import audio_files, check_unique_ids, segment_for
from ..fileio import read_lines
from .asr import VOCAB as CHAR_VOCAB, RNNCTCHead
from .base import Example, Task, write_lines

SPLIT_DIRS = {"train": "train", "dev": "valid", "test": "test"}
LABEL_FILE = "all.iob.snips.txt"
PUNCTUATION_WORDS = set("?!.,;-–…")
_SLOT_RE = re.compile(r"B-(\S+) (.+?) E-\1")
_TAG_TOKEN_RE = re.compile(r"[BE]-\S+")
_ALLOWED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")


def _fold_accents(word: str) -> str:
    out = []
    for ch in word:
        if ch in _ALLOWED or ch.isascii():
            out.append(ch)
            continue
        base = unicodedata.normalize("NFKD", ch)
        out.append("".join(c for c in base if not unicodedata.combining(c)))
    return "".join(out)


def parse_iob_line(line: str, where: str) -> Tuple[str, List[str], List[str], str]:
    """``(utt_id, words, tags, intent)`` of one ``all.iob.snips.txt`` line, normalised."""
    text, tab, tag_part = line.partition("\t")
    if not tab:
        raise ValueError(f"{where}: expected '<id> BOS words EOS<TAB>O tags intent', found no tab")
    fields = text.split()
    tags = tag_part.split()
    if len(fields) < 3 or fields[1] != "BOS" or fields[-1] != "EOS":
        raise ValueError(f"{where}: the transcript must read '<id> BOS ... EOS', got {text.strip()!r}")
    utt_id, words = fields[0], fields[2:-1]
    if len(tags) != len(words) + 2:
        raise ValueError(f"{where}: {len(words)} words but {len(tags)} tag fields (expected words + 2: "
                         f"the BOS tag, one tag per word, the intent)")
    intent, tags = tags[-1], tags[1:-1]
    out_words, out_tags = [], []
    for word, tag in zip(words, tags):
        if word in PUNCTUATION_WORDS:
            continue
        for piece in word.replace("&", " AND ").split():
            piece = _fold_accents(piece).upper()
            bad = sorted(set(piece) - _ALLOWED)
            if bad:
                raise ValueError(f"{where}: word {word!r} has characters outside A-Z and apostrophe: {bad}")
            out_words.append(piece)
            out_tags.append(tag)
    if not out_words:
        raise ValueError(f"{where}: no words left after normalisation")
    return utt_id, out_words, out_tags, intent


def tagged_sequence(words: Sequence[str], tags: Sequence[str]) -> str:
    """``PLAY B-artist JOHN LEGEND E-artist`` from words and per-word slot types."""
    out: List[str] = []
    for i, (w, t) in enumerate(zip(words, tags)):
        if t != "O" and (i == 0 or tags[i - 1] != t):
            out.append(f"B-{t}")
        out.append(w)
        if t != "O" and (i == len(words) - 1 or tags[i + 1] != t):
            out.append(f"E-{t}")
    return " ".join(out)


def snips_manifest(root: Path, speakers: Dict[str, Sequence[str]], min_samples: int = 400
                   ) -> Tuple[Dict[str, List[Example]], List[str]]:
    """Examples per split (labels: tagged sequences) and the sorted slot types of the corpus."""
    root = Path(root)
    label_path = root / LABEL_FILE
    if not label_path.is_file():
        raise FileNotFoundError(f"SNIPS label file not found: {label_path}")
    labels: Dict[str, str] = {}
    slot_types = set()
    for n, line in enumerate(read_lines(label_path), 1):
        if not line.strip():
            continue
        utt_id, words, tags, _ = parse_iob_line(line, f"{label_path}:{n}")
        if utt_id in labels:
            raise ValueError(f"{label_path}:{n}: utterance id {utt_id!r} appears twice")
        labels[utt_id] = tagged_sequence(words, tags)
        slot_types.update(t for t in tags if t != "O")
    splits: Dict[str, List[Example]] = {}
    for split, folder in SPLIT_DIRS.items():
        wanted = list(speakers[split])
        split_dir = root / folder
        if not split_dir.is_dir():
            raise FileNotFoundError(f"SNIPS split folder not found: {split_dir}")
        examples, seen = [], set()
        for wav in audio_files(split_dir, recursive=True):
            uid = wav.stem
            if uid not in labels:
                raise ValueError(f"{wav}: no line for {uid!r} in {label_path}")
            speaker = uid.split("-")[0]
            if speaker not in wanted:
                continue  # other speakers' audio is not part of this split in the protocol
            seen.add(speaker)
            examples.append(Example(uid, segment_for(wav, min_samples), labels[uid]))
        missing = [s for s in wanted if s not in seen]
        if missing:
            raise ValueError(f"{split_dir}: no audio for the {split} speakers {missing} "
                             f"(expected files named <Speaker>-snips-{folder}-<n>.wav)")
        check_unique_ids([e.id for e in examples], str(split_dir))
        splits[split] = examples
    return splits, sorted(slot_types)


# -- metrics ------------------------------------------------------------------------------------
def edit_distance(a: Sequence, b: Sequence) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def remove_slot_tokens(seq: str) -> str:
    return " ".join(w for w in seq.split() if not _TAG_TOKEN_RE.fullmatch(w))


def parse_slots(seq: str, clean_values: bool = False) -> Dict[str, List[str]]:
    """``{type: [values]}`` of ``B-<type> value E-<type>`` spans (in order)."""
    seq = " ".join(seq.split())
    out: Dict[str, List[str]] = {}
    for slot, value in _SLOT_RE.findall(seq):
        out.setdefault(slot, []).append(remove_slot_tokens(value) if clean_values else value)
    return out


def slot_type_f1(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    scores = []
    for ref, hyp in zip(references, hypotheses):
        r, h = set(parse_slots(ref)), set(parse_slots(hyp, clean_values=True))
        if not r and not h:
            scores.append(1.0)
        elif not r or not h:
            scores.append(0.0)
        else:
            precision, recall = len(r & h) / len(h), len(r & h) / len(r)
            scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(scores) / len(scores)


def slot_value_pairs(references: Sequence[str], hypotheses: Sequence[str]) -> List[Tuple[str, str]]:
    """(reference value, best hypothesis value of the same type) for every reference slot."""
    pairs = []
    for ref, hyp in zip(references, hypotheses):
        r, h = parse_slots(ref), parse_slots(hyp, clean_values=True)
        for slot, values in r.items():
            for value in values:
                best, best_cer = "", None
                for cand in h.get(slot, []):
                    c = edit_distance(cand, value) / len(value)
                    if best_cer is None or c < best_cer:
                        best, best_cer = cand, c
                pairs.append((value, best))
    return pairs


def slot_value_cer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    pairs = slot_value_pairs(references, hypotheses)
    if not pairs:
        return 0.0
    return sum(edit_distance(h, r) for r, h in pairs) / sum(len(r) for r, _ in pairs)


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
    metrics = {"slot_type_f1": True, "slot_value_cer": False, "wer": False, "cer": False}
    primary_metric = "slot_type_f1"
    mini_split = "snips"
    data_help = "the SNIPS folder (holding all.iob.snips.txt and train/, valid/, test/ with 16 kHz wav)"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.vocab: Tuple[str, ...] = ()
        self.token_to_id: Dict[str, int] = {}

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("SF needs --data pointing at the SNIPS folder")
        root = Path(data_dir)
        if not (root / LABEL_FILE).is_file() and (root / "SNIPS").is_dir():
            root = root / "SNIPS"
        speakers = {"train": self.cfg["train_speakers"], "dev": self.cfg["valid_speakers"],
                    "test": self.cfg["test_speakers"]}
        splits, slot_types = snips_manifest(root, speakers, int(self.cfg.get("min_samples", 400)))
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
        return SlotFillingHead(input_dim, len(self.vocab), int(c["project_dim"]), int(c["rnn_dim"]),
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
            "wer": 100.0 * jiwer.wer(plain_refs, plain_hyps),
            "cer": 100.0 * jiwer.cer(plain_refs, plain_hyps),
        }

    def write_predictions(self, out_dir, split, examples, predictions):
        lines = [f"{e.id} {p}".rstrip() for e, p in sorted(zip(examples, predictions), key=lambda x: x[0].id)]
        return [write_lines(Path(out_dir) / split / "predict.ark", lines)]
