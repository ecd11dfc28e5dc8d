"""OOD-ASR -- out-of-domain speech recognition on Common Voice and SBCSAE (SUPERB-SG).

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

Transcripts follow s3prl v0.4.18 ``downstream/ctc/corpus/common_voice_preprocess.py``
(:func:`normalize_transcript`): Unicode NFKC, **upper case**, ASCII punctuation except the
apostrophe plus a fixed list of CJK/Arabic/typographic marks (``。 、 《 》 ¿ ¡ ، ؟ « » — …``) replaced
by spaces, ``’`` -> ``'``, runs of spaces collapsed; no-space languages (``task.no_space_languages``)
drop all spaces. Rows are then *filtered* as there: Spanish keeps only the ``accent`` column value
``mexicano`` (``task.accents``), zh-CN / zh-TW / ja / ar / ru drop sentences holding an ASCII
letter or an apostrophe (``task.no_latin_languages``), zh-CN and es drop sentences holding one of
s3prl's exception characters (Japanese kana, Cyrillic, ...). Filtered rows are counted in the run's
data notes (``filtered``); a sentence that normalises to nothing is an error.

SBCSAE (``task.language: sbcsae``): the spontaneous-speech split of SUPERB-SG's OOD-ASR, read by
:mod:`superb.downstream.corpora.sbcsae` (s3prl's segmented layout or the raw ``trn/`` + ``mp3/``
download); its transcripts are already upper-case ``A-Z ' space``.

Vocabulary: built per language from the normalised **training** transcripts (CTC blank, ``|``
for the word boundary, then every character seen, sorted), stored in the head's state
(``best.pt``) so ``superb evaluate`` rebuilds exactly the trained vocabulary. Characters of
dev/test transcripts never seen in training cannot be produced (they count as errors).

Head (s3prl ``ctc/cv_config/cv_{es,zh,ar}.yaml`` and ``ctc/sbcsae.yaml``, model ``RNNs``;
:class:`OODCTCHead`): linear projector 1024 -> frames *dropped* to a total rate of 320 samples
(every ``round(320 / upstream rate)``-th frame kept, valid length ``n // step``: 10 ms upstreams
become 20 ms, 20 ms ones are unchanged) -> 2 x [bidirectional LSTM 1024 -> dropout 0.2 ->
Linear(2048, 2048) + tanh] (no layer norm) -> linear over characters; SpecAugment on the
weighted features, CTC, greedy decoding. Metrics: WER and CER in %; the primary is CER for
no-space languages (Mandarin), WER otherwise. ``wer_constant`` / ``cer_constant``: the error rates
of answering every utterance with the most frequent training transcript (a trivial baseline).
:func:`superb_sg_ood_asr_average` averages the four SUPERB-SG results (es / ar / SBCSAE WER,
zh-CN CER).
Predictions: ``predict.ark`` with ``<utt-id> <hypothesis>`` lines.
"""
from __future__ import annotations

import collections
import math
import re
import string
import unicodedata
from pathlib import Path
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import metrics as M
from ..audio import check_unique_ids, segment_for
from ..corpora.common_voice import clip_path, common_voice_tables, read_table
from ..corpora.sbcsae import prepare_sbcsae
from ..heads.ctc import RNNCTCHead
from .base import Example, Task, write_lines
from .declaration import LOWER, Metric, PERCENT

BLANK, SPACE = "<blank>", "|"


# s3prl v0.4.18 downstream/ctc/corpus/common_voice_preprocess.py: string.punctuation without the
# apostrophe, plus these marks, become spaces (the list there also holds a space and the combining
# acute U+0301, tilde U+0303 and caron U+030C); "’" -> "'" and bopomofo "ㄧ" -> "一".
_EXTRA_MARKS = ("\u300c\u300d\u3001\u22ef\u3002\u300a\u300b\u4e36\u2013\u2014\u2015\u2018\u201c\u201d\u300e\u300f"
                "\u301c\u30fc\u30fb\u262d\u00ab\u00bb\u060c\u061b\u061f\u2010\u2212\u00a1\u00bf\u02d0\u0301\u00b7"
                "\u00d7\u0303\u030c\u2500\u3008\u3009")
_TO_SPACE = set(string.punctuation.replace("'", "")) | set(_EXTRA_MARKS)
_TRANSLATE = str.maketrans({**{c: " " for c in _TO_SPACE}, "\u2019": "'", "\u3127": "\u4e00"})
#: sentences holding one of these are dropped (same file: spanish_exception / zhcn_exception)
EXCEPTION_CHARS = {
    "es": frozenset("\u3057\u3089\u30b4\u30df\u30e0\u30e9\u6d88\u7bb1\u826f"),
    "zh-CN": frozenset("\u039c\u0418\u0422\u30aa\u30ab\u30c9\u30e4\u4d15"),
}
NO_SPACE_DEFAULT = ("zh-TW", "zh-CN", "ja")
NO_LATIN_DEFAULT = ("zh-TW", "zh-CN", "ja", "ar", "ru")


def normalize_transcript(text: str, no_space: bool, no_latin: bool = False, language: str = "") -> str:
    """s3prl's Common Voice normalisation; ``""`` means the sentence is filtered out (Latin letters
    in a non-Latin language, an exception character) or empty."""
    text = unicodedata.normalize("NFKC", text).upper().translate(_TRANSLATE)
    text = re.sub(" +", " ", text)
    if no_space:
        text = text.replace(" ", "")
    if no_latin and any((ch.isascii() and ch.isalpha()) or ch == "'" for ch in text):  # bytes.isalpha there
        return ""
    if EXCEPTION_CHARS.get(language, frozenset()) & set(text):
        return ""
    return " ".join(text.split())


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


class OODCTCHead(CTCVocabHead):
    """s3prl's ``RNNs`` CTC model as configured for OOD-ASR (``ctc/cv_config/*.yaml``, ``sbcsae.yaml``).

    Differences from the ASR head (``asr/config.yaml``: ``total_rate: -1``, ``proj: False``):
    ``total_rate: 320, sample_style: drop`` -- after the projector, keep every ``step``-th frame,
    ``step = round(320 / upstream_rate)`` (s3prl ``RNNs.__init__``; applied only when > 1), valid
    length ``n // step`` (s3prl ``downsample``; clamped to >= 1 frame here, s3prl would fail on
    0); ``proj: [True, True]`` -- ``tanh(Linear(2H, 2H))`` after each LSTM layer's dropout
    (s3prl ``RNNLayer.forward``: LSTM -> [layer norm: off] -> dropout -> [per-layer sampling: 1]
    -> projection + tanh).
    """

    def __init__(self, vocab, input_dim, vocab_size, projector_dim, rnn_dim, rnn_layers, dropout, specaug=None,
                 upstream_rate: int = 320, total_rate: int = 320, proj: bool = True):
        super().__init__(vocab, input_dim, vocab_size, projector_dim, rnn_dim, rnn_layers, dropout, specaug)
        step = 1 if int(total_rate) <= 0 else round(int(total_rate) / int(upstream_rate))
        self.frame_step = max(1, int(step))
        self.layer_proj = nn.ModuleList(nn.Linear(2 * rnn_dim, 2 * rnn_dim) for _ in range(rnn_layers)) if proj \
            else None

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        if self.frame_step == 1:
            return lengths
        return torch.clamp(lengths // self.frame_step, min=1)

    def forward(self, feats, lengths):
        if self.specaug is not None:
            feats = self.specaug(feats, lengths)
        x = self.project(feats)
        out_lengths = self.output_lengths(lengths)
        if self.frame_step > 1:
            x = x[:, ::self.frame_step].contiguous()
        for i, rnn in enumerate(self.rnns):
            x = self.dropout(self.run_rnn(rnn, x, out_lengths))
            if self.layer_proj is not None:
                x = torch.tanh(self.layer_proj[i](x))
        return self.output(x).float().log_softmax(-1)


#: SUPERB-SG OOD-ASR: the metric of each of its four parts (shared/superb-reference.md §2 from the
#: SUPERB-SG paper, arXiv 2203.06849: "WER (CER for zh), averaged"; s3prl's configs score the same:
#: ``metric: [cer]`` in cv_zh.yaml, ``[wer]`` in cv_es.yaml, cv_ar.yaml and sbcsae.yaml).
SUPERB_SG_PARTS = {"es": "wer", "zh-CN": "cer", "ar": "wer", "sbcsae": "wer"}
_PART_ALIASES = {"es": "es", "zh-cn": "zh-CN", "zh": "zh-CN", "ar": "ar", "sbcsae": "sbcsae", "spon": "sbcsae"}


def superb_sg_ood_asr_average(results: Dict[str, object]) -> float:
    """The SUPERB-SG OOD-ASR score: the mean of es WER, zh-CN CER, ar WER and SBCSAE WER (%).

    ``results`` maps each part (``es``, ``zh-CN``, ``ar``, ``sbcsae``; ``zh`` and ``spon`` accepted)
    to its error rate in % or to a metrics dict holding ``wer`` / ``cer`` (a run's test metrics);
    from a dict the part's own metric is taken. All four are required."""
    values: Dict[str, float] = {}
    for key, value in results.items():
        part = _PART_ALIASES.get(str(key).lower())
        if part is None:
            raise ValueError(f"unknown OOD-ASR part {key!r}; the parts are {', '.join(SUPERB_SG_PARTS)}")
        if part in values:
            raise ValueError(f"OOD-ASR part {part!r} given twice")
        metric = SUPERB_SG_PARTS[part]
        if isinstance(value, dict):
            if metric not in value:
                raise ValueError(f"OOD-ASR part {part!r} is scored by {metric.upper()}, its results hold "
                                 f"{sorted(value)}")
            value = value[metric]
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"OOD-ASR part {part!r}: {metric.upper()} {value!r} is not a finite error rate >= 0")
        values[part] = v
    missing = [p for p in SUPERB_SG_PARTS if p not in values]
    if missing:
        raise ValueError(f"the OOD-ASR average needs all four parts; missing: {', '.join(missing)}")
    return sum(values[p] for p in SUPERB_SG_PARTS) / len(SUPERB_SG_PARTS)


class OutOfDomainASR(Task):
    name = "ood_asr"
    title = "Out-of-domain ASR (Common Voice, SBCSAE)"
    category = "content"
    dataset = "Common Voice 7.0 es / zh-CN / ar, SBCSAE (SUPERB-SG)"
    metrics = {"wer": Metric(LOWER, PERCENT), "cer": Metric(LOWER, PERCENT),
               "wer_constant": Metric(LOWER, PERCENT, internal=True),
               "cer_constant": Metric(LOWER, PERCENT, internal=True)}
    primary_metric = "wer"
    loss_mean_over = "utterances"  # CTC, reduction="mean"
    mini_split = "commonvoice"
    data_help = "a Common Voice folder holding <lang>/{train,dev,test}.tsv and <lang>/clips/ (task.language)"

    def __init__(self, cfg, context=None):
        super().__init__(cfg, context)
        self.language = str(self.cfg["language"])
        self.sbcsae = self.language.lower() == "sbcsae"
        self.no_space = self.language in {str(x) for x in self.cfg["no_space_languages"]}
        self.no_latin = self.language in {str(x) for x in (self.cfg.get("no_latin_languages") or ())}
        accents = (self.cfg.get("accents") or {}).get(self.language)
        self.accents = None if accents is None else {str(a) for a in ([accents] if isinstance(accents, str) else accents)}
        self.primary_metric = "cer" if self.no_space else "wer"

    def prepare(self, data_dir) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("OOD-ASR needs --data pointing at a Common Voice folder (or the SBCSAE folder)")
        min_samples = self.min_samples
        self.filtered: Dict[str, Dict[str, int]] = {}
        splits = self._prepare_sbcsae(Path(data_dir), min_samples) if self.sbcsae else \
            self._prepare_common_voice(Path(data_dir), min_samples)
        train_text = [e.label for e in splits["train"]]
        self.vocab = build_vocabulary(train_text)
        counts = collections.Counter(train_text)
        self._constant = min(counts, key=lambda t: (-counts[t], t))
        self.data_notes = {"language": self.language, "vocabulary_size": len(self.vocab),
                           "units": "characters (no spaces)" if self.no_space else "words"}
        if any(self.filtered.values()):
            self.data_notes["filtered"] = self.filtered
        return splits

    def _prepare_common_voice(self, root: Path, min_samples: int) -> Dict[str, List[Example]]:
        tables, clips = common_voice_tables(root, self.language, self.cfg["splits"])
        splits: Dict[str, List[Example]] = {}
        for k in ("train", "dev", "test"):
            path = tables[k]
            rows = read_table(path, ("path", "sentence") + (("accent",) if self.accents is not None else ()))
            exs, dropped = [], collections.Counter()
            for n, r in enumerate(rows, 2):
                if self.accents is not None and r["accent"] not in self.accents:
                    dropped["accent"] += 1
                    continue
                text = normalize_transcript(r["sentence"], self.no_space, self.no_latin, self.language)
                if not text:
                    if normalize_transcript(r["sentence"], self.no_space):
                        dropped["script"] += 1  # Latin letters / exception characters (s3prl's filters)
                        continue
                    raise ValueError(f"{path}:{n}: empty sentence after normalisation for clip {r['path']!r}")
                audio = clip_path(clips, r["path"], self.cfg.get("audio_ext"))
                if not audio.is_file():
                    raise FileNotFoundError(f"{path}:{n}: clip {audio} is missing")
                exs.append(Example(Path(r["path"]).stem, segment_for(audio, min_samples), text))
            if not exs:
                raise ValueError(f"{path}: every row was filtered out ({dict(dropped)}); task.accents keeps "
                                 f"{sorted(self.accents) if self.accents is not None else 'every accent'}")
            check_unique_ids([e.id for e in exs], str(path))
            splits[k] = exs
            self.filtered[k] = dict(dropped)
        return splits

    def _prepare_sbcsae(self, root: Path, min_samples: int) -> Dict[str, List[Example]]:
        return prepare_sbcsae(root, self.cfg.get("splits"), self.cfg.get("sbcsae_wav_dir"), self.cfg.get("audio_ext"),
                              min_samples)

    def build_head(self, input_dim, downsample_rate):
        c = self.cfg
        return OODCTCHead(self.vocab, input_dim, len(self.vocab), int(c["projector_dim"]), int(c["rnn_dim"]),
                          int(c["rnn_layers"]), float(c["dropout"]), c.get("specaug"), upstream_rate=int(downsample_rate),
                          total_rate=int(c.get("total_rate", 320)), proj=bool(c.get("proj", True)))

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
        lengths = head.output_lengths(lengths)
        targets = [torch.tensor(self._encode(head, e.label, e.id)) for e in examples]
        target_lens = torch.tensor([len(t) for t in targets])
        return F.ctc_loss(log_probs.transpose(0, 1), torch.cat(targets).to(log_probs.device), lengths,
                          target_lens.to(log_probs.device), blank=0, reduction="mean", zero_infinity=True)

    def predict(self, head, feats, lengths, examples):
        best = head(feats, lengths).argmax(-1).cpu()
        lengths = head.output_lengths(lengths)
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
            cer = 100.0 * M.cer(refs, hyps)
            return {"wer": cer, "cer": cer}
        return {"wer": 100.0 * M.wer(refs, hyps), "cer": 100.0 * M.cer(refs, hyps)}

    def score(self, examples, predictions):
        refs = [e.label for e in examples]
        out = self._rates(refs, list(predictions))
        const = self._rates(refs, [self._constant] * len(refs))
        out.update({"wer_constant": const["wer"], "cer_constant": const["cer"]})
        return out

    def write_predictions(self, out_dir, split, examples, predictions):
        lines = [f"{e.id} {p}" for e, p in sorted(zip(examples, predictions), key=lambda x: x[0].id)]
        return [write_lines(Path(out_dir) / split / "predict.ark", lines)]
