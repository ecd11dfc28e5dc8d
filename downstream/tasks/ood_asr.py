"""OOD-ASR -- out-of-domain (cross-lingual) speech recognition on Common Voice (SUPERB-SG).

Layout (``--data`` points at a Common Voice release folder holding ``<lang>/``, or at the
``<lang>/`` folder itself; ``task.language`` picks it: ``es``, ``zh-CN``, ``ar`` ...)::

    <lang>/train.tsv  <lang>/dev.tsv  <lang>/test.tsv     Common Voice tables (columns found by
                                                          name: ``path``, ``sentence``)
    <lang>/clips/<path>                                   the clips (MP3, decoded by soundfile)

``task.splits`` names the tables (SUPERB-SG used Common Voice 7.0 es / zh-CN / ar with its own
subsets; here: the release's train/dev/test tables unless told otherwise). Common Voice ships
48 kHz MP3s and superb does not resample behind the user's back: convert the clips once to 16 kHz
(MP3 or, with ``task.audio_ext: .wav``, WAV/FLAC copies with the same stems). A missing clip or
an empty sentence is an error naming the table row.

Transcripts are normalised per language: Unicode NFKC, lower case, every punctuation or symbol
character (Unicode categories P* and S*, e.g. ``¿ ? , 。 ？``) replaced by a space, whitespace
collapsed; for languages written without spaces (``task.no_space_languages``: zh-CN, zh-TW,
zh-HK, ja, ...) all spaces are removed and characters are the units.

Vocabulary: built per language from the normalised **training** transcripts (CTC blank, ``|``
for the word boundary, then every character seen, sorted), stored in the head's state
(``best.pt``) so ``superb evaluate`` rebuilds exactly the trained vocabulary. Characters of
dev/test transcripts never seen in training cannot be produced (they count as errors).

Head: SUPERB's ASR head (:class:`.asr.RNNCTCHead`: projector 1024 -> 2-layer BiLSTM 1024,
dropout 0.2, SpecAugment, CTC, greedy decoding), the same settings as ASR (recipe from s3prl
``downstream/asr/config.yaml``). Metrics: WER and CER in %; the primary is CER for no-space
languages (Mandarin), WER otherwise. ``wer_constant`` / ``cer_constant``: the error rates of
answering every utterance with the most frequent training transcript (a trivial baseline).
Predictions: ``predict.ark`` with ``<utt-id> <hypothesis>`` lines.
"""
from __future__ import annotations

import collections
import unicodedata
from pathlib import Path
from typing import Dict, List, Sequence

import jiwer
import torch
import torch.nn.functional as F

from ..audio import check_unique_ids, segment_for
from .asr import RNNCTCHead
from .base import Example, Task, write_lines
from .st import clip_path, read_tsv, require_columns

BLANK, SPACE = "<blank>", "|"


def normalize_transcript(text: str, no_space: bool) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return "".join(text.split()) if no_space else " ".join(text.split())


def build_vocabulary(transcripts: Sequence[str]) -> List[str]:
    chars = sorted({ch for t in transcripts for ch in t if ch != " "})
    return [BLANK, SPACE] + chars


class CTCVocabHead(RNNCTCHead):
    """The ASR head plus its character vocabulary, saved in (and restored from) the state dict."""

    def __init__(self, vocab: List[str], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.vocab = list(vocab)

    def get_extra_state(self):
        return {"vocab": list(self.vocab)}

    def set_extra_state(self, state):
        vocab = list(state["vocab"])
        if len(vocab) != len(self.vocab):
            raise ValueError(f"the checkpoint's vocabulary has {len(vocab)} symbols, this head {len(self.vocab)}: "
                             "the training transcripts changed since the run was trained")
        self.vocab = vocab


class OutOfDomainASR(Task):
    name = "ood_asr"
    title = "Out-of-domain ASR (Common Voice)"
    category = "content"
    dataset = "Common Voice (SUPERB-SG: 7.0 es / zh-CN / ar)"
    metrics = {"wer": False, "cer": False, "wer_constant": False, "cer_constant": False}
    primary_metric = "wer"
    mini_split = "commonvoice"
    data_help = "a Common Voice folder holding <lang>/{train,dev,test}.tsv and <lang>/clips/ (task.language)"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.language = str(self.cfg["language"])
        self.no_space = self.language in {str(x) for x in self.cfg["no_space_languages"]}
        self.primary_metric = "cer" if self.no_space else "wer"

    def prepare(self, data_dir) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("OOD-ASR needs --data pointing at a Common Voice folder")
        root = Path(data_dir)
        lang_dir = root / self.language if (root / self.language).is_dir() else root
        tables = {k: lang_dir / f"{v}.tsv" for k, v in self.cfg["splits"].items()}
        if not all(p.is_file() for p in tables.values()):
            missing = [str(p) for p in tables.values() if not p.is_file()]
            raise FileNotFoundError(f"Common Voice tables for language {self.language!r} not found: {', '.join(missing)}"
                                    f" (set task.language or point --data at the release folder)")
        clips = lang_dir / "clips"
        if not clips.is_dir():
            raise FileNotFoundError(f"Common Voice clips folder not found: {clips}")
        min_samples = int(self.cfg.get("min_samples", 400))
        splits: Dict[str, List[Example]] = {}
        for k in ("train", "dev", "test"):
            path = tables[k]
            rows = read_tsv(path)
            if not rows:
                raise ValueError(f"{path}: no rows")
            require_columns(path, rows, ("path", "sentence"))
            exs = []
            for n, r in enumerate(rows, 2):
                text = normalize_transcript(r["sentence"], self.no_space)
                if not text:
                    raise ValueError(f"{path}:{n}: empty sentence after normalisation for clip {r['path']!r}")
                audio = clip_path(clips, r["path"], self.cfg.get("audio_ext"))
                if not audio.is_file():
                    raise FileNotFoundError(f"{path}:{n}: clip {audio} is missing")
                exs.append(Example(Path(r["path"]).stem, segment_for(audio, min_samples), text))
            check_unique_ids([e.id for e in exs], str(path))
            splits[k] = exs
        train_text = [e.label for e in splits["train"]]
        self.vocab = build_vocabulary(train_text)
        counts = collections.Counter(train_text)
        self._constant = min(counts, key=lambda t: (-counts[t], t))
        self.data_notes = {"language": self.language, "vocabulary_size": len(self.vocab),
                           "units": "characters (no spaces)" if self.no_space else "words"}
        return splits

    def build_head(self, input_dim, downsample_rate):
        c = self.cfg
        return CTCVocabHead(self.vocab, input_dim, len(self.vocab), int(c["project_dim"]), int(c["rnn_dim"]),
                            int(c["rnn_layers"]), float(c["dropout"]), c.get("specaug"))

    def _encode(self, head, text: str, where: str) -> List[int]:
        index = {ch: i for i, ch in enumerate(head.vocab)}
        ids = []
        for ch in text:
            key = SPACE if ch == " " else ch
            if key not in index:
                raise ValueError(f"{where}: character {ch!r} is not in the training vocabulary")
            ids.append(index[key])
        return ids

    def loss(self, head, feats, lengths, examples):
        log_probs = head(feats, lengths)
        targets = [torch.tensor(self._encode(head, e.label, e.id)) for e in examples]
        target_lens = torch.tensor([len(t) for t in targets])
        return F.ctc_loss(log_probs.transpose(0, 1), torch.cat(targets).to(log_probs.device), lengths,
                          target_lens.to(log_probs.device), blank=0, reduction="mean", zero_infinity=True)

    def predict(self, head, feats, lengths, examples):
        best = head(feats, lengths).argmax(-1).cpu()
        out = []
        for b, n in enumerate(lengths.tolist()):
            chars, prev = [], None
            for i in best[b, :n].tolist():
                if i != prev and i != 0:
                    chars.append(" " if head.vocab[i] == SPACE else head.vocab[i])
                prev = i
            text = "".join(chars)
            out.append("".join(text.split()) if self.no_space else " ".join(text.split()))
        return out

    def _rates(self, refs: List[str], hyps: List[str]) -> Dict[str, float]:
        if self.no_space:  # characters are the units; WER over space-separated characters equals CER
            cer = 100.0 * jiwer.cer(refs, hyps)
            return {"wer": cer, "cer": cer}
        return {"wer": 100.0 * jiwer.wer(refs, hyps), "cer": 100.0 * jiwer.cer(refs, hyps)}

    def score(self, examples, predictions):
        refs = [e.label for e in examples]
        out = self._rates(refs, list(predictions))
        const = self._rates(refs, [self._constant] * len(refs))
        out.update({"wer_constant": const["wer"], "cer_constant": const["cer"]})
        return out

    def write_predictions(self, out_dir, split, examples, predictions):
        lines = [f"{e.id} {p}" for e, p in sorted(zip(examples, predictions), key=lambda x: x[0].id)]
        return [write_lines(Path(out_dir) / split / "predict.ark", lines)]
