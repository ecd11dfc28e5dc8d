"""PR — phoneme recognition on LibriSpeech with a g2p lexicon (SUPERB content task).

Layout (``--data`` points at the LibriSpeech folder, or at a folder holding ``LibriSpeech/``)::

    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   # "<utt-id> TRANSCRIPT"
    lexicon.txt                                                            # see task.lexicon

Splits come from ``task.splits`` (SUPERB: train-clean-100 / dev-clean / test-clean); the
transcripts are parsed exactly as for ASR (:func:`superb.downstream.corpora.librispeech.read_split`,
every transcript checked against the ASR character vocabulary).

Lexicon (``task.lexicon``): one file or a list of files in the LibriSpeech g2p lexicon format,
``WORD PH1 PH2 ...`` (word, then its phones, separated by spaces or a tab; the format of
``librispeech-lexicon.txt`` and of s3prl's ``librispeech-lexicon-200k-g2p.txt`` /
``librispeech-lexicon-allothers-g2p.txt``, which SUPERB uses together). ``null`` means
``<data>/lexicon.txt``; a relative path is looked up in ``--data`` first, then in the working
directory. When a word has several pronunciations (in one file or across files) the first one
read wins, as in s3prl's ``libriphone`` dataset. Every transcript word is mapped through the
lexicon; a word missing from it is an error naming the word, the utterance and the lexicon.
The phone vocabulary is the sorted set of phones in the lexicon (plus the CTC blank), so phones
are scored as whole tokens (``AH0``, ``tʃ``...), stress markers included when the lexicon has them.

Head (s3prl ``downstream/ctc/libriphone.yaml``, ``select: FrameLevel`` without hidden layers):
linear projector 256 -> linear over the phone vocabulary, CTC (blank 0, ``zero_infinity``),
greedy decoding. Metric: PER (%) = word error rate over space-separated phone strings, computed
with jiwer (corpus level: total edits / total reference phones, like s3prl's ``per``).
Predictions: ``predict.ark`` with ``<utt-id> <phone> <phone> ...`` lines (the leaderboard's
``pr_public/predict.ark``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..corpora.librispeech import read_split
from ..fileio import read_lines
from ..heads.ctc import encode_transcript
from ..metrics.error_rates import per
from .base import Example, Task, write_lines
from .declaration import Board, Column, INF, LOWER, Metric, PERCENT, Submission

BLANK = "<blank>"


def read_lexicon(paths: Sequence[Path]) -> Dict[str, Tuple[str, ...]]:
    """``WORD -> phones`` from one or more lexicon files; the first pronunciation read wins."""
    lexicon: Dict[str, Tuple[str, ...]] = {}
    if not paths:
        raise ValueError("PR needs at least one lexicon file (task.lexicon)")
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"lexicon file not found: {path}")
        for n, line in enumerate(read_lines(path), 1):
            if not line.strip():
                continue
            word, *phones = line.split()
            if not phones:
                raise ValueError(f"{path}:{n}: lexicon entry {word!r} has no phones")
            lexicon.setdefault(word.upper(), tuple(phones))
    if not lexicon:
        raise ValueError(f"lexicon {', '.join(str(p) for p in paths)} holds no entries")
    return lexicon


def phonemize(text: str, lexicon: Dict[str, Tuple[str, ...]], where: str, lexicon_name: str) -> List[str]:
    phones: List[str] = []
    for word in text.split():
        try:
            phones.extend(lexicon[word.upper()])
        except KeyError:
            raise ValueError(f"{where}: word {word!r} is missing from the lexicon ({lexicon_name})") from None
    if not phones:
        raise ValueError(f"{where}: transcript {text!r} maps to no phones")
    return phones


def ctc_greedy(ids: Sequence[int]) -> List[int]:
    """Merge repeats, then drop blanks (id 0)."""
    out, prev = [], None
    for i in ids:
        if i != prev and i != 0:
            out.append(i)
        prev = i
    return out


class LinearCTCHead(nn.Module):
    """s3prl's PR head: linear projector -> linear (FrameLevel with no hidden layers)."""

    def __init__(self, input_dim: int, projector_dim: int, vocab_size: int):
        super().__init__()
        self.projector = nn.Linear(input_dim, projector_dim)
        self.output = nn.Linear(projector_dim, vocab_size)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.output(self.projector(feats)).float().log_softmax(-1)


class PhonemeRecognition(Task):
    name = "pr"
    title = "Phoneme recognition"
    category = "content"
    dataset = "LibriSpeech train-clean-100 / dev-clean / test-clean + g2p lexicon"
    metrics = {"per": Metric(LOWER, PERCENT)}
    primary_metric = "per"
    loss_mean_over = "utterances"  # CTC, reduction="mean"
    leaderboard = Board("Phoneme recognition", (Column("PER", ("per",), 82.01, 3.53, valid=(0, INF)),), position=1)
    submission = (Submission("pr_public", "predict.ark", "utt_text", ("predict.ark", "test-hyp.ark", "hyp.ark")),)
    mini_split = "librispeech"
    data_help = "the LibriSpeech folder (holding train-clean-100/, dev-clean/, test-clean/); lexicon in task.lexicon"

    def __init__(self, cfg, context=None):
        super().__init__(cfg, context)
        self.vocab: Tuple[str, ...] = ()
        self.phone_to_id: Dict[str, int] = {}

    def _lexicon_paths(self, data_dir: Path) -> List[Path]:
        spec = self.cfg.get("lexicon")
        if spec is None:
            return [data_dir / "lexicon.txt"]
        items = [spec] if isinstance(spec, (str, Path)) else list(spec)
        out = []
        for item in items:
            p = Path(item).expanduser()
            if not p.is_absolute() and (data_dir / p).is_file():
                p = data_dir / p
            out.append(p)
        return out

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("PR needs --data pointing at the LibriSpeech folder")
        data_dir = Path(data_dir)
        root = data_dir / "LibriSpeech" if (data_dir / "LibriSpeech").is_dir() else data_dir
        paths = self._lexicon_paths(data_dir)
        lexicon = read_lexicon(paths)
        lex_name = ", ".join(str(p) for p in paths)
        self.vocab = (BLANK,) + tuple(sorted({p for phones in lexicon.values() for p in phones}))
        self.phone_to_id = {p: i for i, p in enumerate(self.vocab)}
        splits = self.cfg["splits"]
        min_samples = self.min_samples
        out: Dict[str, List[Example]] = {}
        for name in ("train", "dev", "test"):
            examples = read_split(root, splits[name], min_samples, check_text=encode_transcript)
            out[name] = [Example(e.id, e.audio, tuple(phonemize(e.label, lexicon, f"{e.audio.path} ({e.id})", lex_name)))
                         for e in examples]
        return out

    def build_head(self, input_dim, downsample_rate):
        if not self.vocab:
            raise RuntimeError("PR: prepare() must run before build_head() (the vocabulary comes from the lexicon)")
        return LinearCTCHead(input_dim, int(self.cfg["projector_dim"]), len(self.vocab))

    def loss(self, head, feats, lengths, examples):
        log_probs = head(feats, lengths)
        targets = [torch.tensor([self.phone_to_id[p] for p in e.label]) for e in examples]
        target_lens = torch.tensor([len(t) for t in targets])
        return F.ctc_loss(log_probs.transpose(0, 1), torch.cat(targets).to(log_probs.device), lengths,
                          target_lens.to(log_probs.device), blank=0, reduction="mean",
                          zero_infinity=bool(self.cfg.get("zero_infinity", True)))

    def predict(self, head, feats, lengths, examples):
        best = head(feats, lengths).argmax(-1).cpu()
        return [" ".join(self.vocab[i] for i in ctc_greedy(best[b, :n].tolist())) for b, n in enumerate(lengths.tolist())]

    def score(self, examples, predictions):
        refs = [" ".join(e.label) for e in examples]
        return {"per": 100.0 * per(refs, list(predictions))}

    def write_predictions(self, out_dir, split, examples, predictions):
        lines = [f"{e.id} {p}".rstrip() for e, p in sorted(zip(examples, predictions), key=lambda x: x[0].id)]
        return [write_lines(Path(out_dir) / split / "predict.ark", lines)]
