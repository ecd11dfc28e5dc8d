"""CTC beam-search decoding for character ASR with a KenLM n-gram language model.

SUPERB reports ASR twice: without a language model (the leaderboard's ASR column, greedy CTC)
and with LibriSpeech's official 4-gram KenLM (the "ASR+LM" column, not part of the SUPERB score).
s3prl (``s3prl/downstream/asr/w2l_decoder.py`` and the ``decoder_args`` of
``downstream/asr/config.yaml``, v0.4.18) decodes with flashlight's lexicon-constrained beam search:
beam 5, beam threshold 25, LM weight 2, word score -1, unknown-word score -inf, silence score 0,
every token considered at each step. :class:`KenLMDecoder` runs the same search through the
``flashlight-text`` package (its ``LexiconDecoder``, ``Trie`` and bundled ``KenLM``; install with
``pip install flashlight-text`` or the ``superb[lm]`` extra). Nothing is downloaded: the LM and the
lexicon are files the user names.

Lexicon files use fairseq's letter format (``librispeech_lexicon.lst``): one word per line, then
its spelling as space-separated tokens, ``WORD<TAB>W O R D |``. A word may have several lines
(several spellings). The trailing word boundary ``|`` of a spelling is dropped: this toolkit's CTC
targets separate words with ``|`` but do not end the utterance with one (s3prl's do), so the
boundary is decoded as flashlight's silence token instead. Without a lexicon the words of the
ARPA file's unigram section are spelled letter by letter (an ARPA file is needed then, plain or
gzip-compressed); words with characters outside the token set are skipped and counted.
"""
from __future__ import annotations

import gzip
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from .fileio import atomic_write_text

UNK_WORD = "<unk>"
#: n-gram markup that is never a spoken word
_ARPA_SPECIAL = {"<s>", "</s>", "<unk>", "<UNK>"}


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="strict")
    return open(path, "r", encoding="utf-8", errors="strict")


def _is_arpa(path: Path) -> bool:
    try:
        with _open_text(path) as f:
            for line in f:
                if line.strip():
                    return line.strip() == "\\data\\"
    except (UnicodeDecodeError, OSError, EOFError):
        return False
    return False


def arpa_unigrams(path: Path) -> List[str]:
    """The words of an ARPA file's ``\\1-grams:`` section (n-gram markup excluded), in file order."""
    words, inside = [], False
    with _open_text(Path(path)) as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
                continue
            if not inside:
                continue
            if not line:
                continue
            if line.startswith("\\"):
                break
            parts = line.split()
            if len(parts) < 2:
                raise ValueError(f"{path}: malformed unigram line {line!r}")
            if parts[1] not in _ARPA_SPECIAL:
                words.append(parts[1])
    if not inside:
        raise ValueError(f"{path}: no \\1-grams: section (not an ARPA file)")
    return words


def read_lexicon(path: Path, tokens: Sequence[str], boundary: str = "|") -> Dict[str, List[List[str]]]:
    """``word -> [spelling, ...]`` from a fairseq-style letter lexicon; tokens are checked.

    A trailing ``boundary`` token is dropped from each spelling (see the module docstring)."""
    known = set(tokens)
    lexicon: Dict[str, List[List[str]]] = {}
    with _open_text(Path(path)) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            word, spelling = parts[0], parts[1:]
            while spelling and spelling[-1] == boundary:
                spelling = spelling[:-1]
            if not spelling:
                raise ValueError(f"{path}:{n}: word {word!r} has no spelling")
            bad = sorted({t for t in spelling if t not in known or t == boundary})
            if bad:
                raise ValueError(f"{path}:{n}: spelling of {word!r} uses token(s) {', '.join(map(repr, bad))} "
                                 f"outside the ASR token set ({' '.join(t for t in tokens if t != boundary)})")
            spellings = lexicon.setdefault(word, [])
            if spelling not in spellings:
                spellings.append(spelling)
    if not lexicon:
        raise ValueError(f"lexicon {path} holds no words")
    return lexicon


def spell_words(words: Iterable[str], tokens: Sequence[str], boundary: str = "|") -> Tuple[Dict[str, List[List[str]]], int]:
    """Letter spellings of ``words``; returns the lexicon and how many words were skipped
    (a character outside the token set, or the boundary token inside the word)."""
    known = set(tokens) - {boundary}
    lexicon: Dict[str, List[List[str]]] = {}
    skipped = 0
    for w in words:
        if w and all(ch in known for ch in w):
            lexicon.setdefault(w, [list(w)])
        else:
            skipped += 1
    return lexicon, skipped


def _flashlight():
    try:
        from flashlight.lib.text import decoder as fl_decoder
        from flashlight.lib.text.dictionary import create_word_dict
        try:
            from flashlight.lib.text.decoder.kenlm import KenLM
        except ImportError:  # older flashlight-text layouts
            KenLM = getattr(fl_decoder, "KenLM")
    except ImportError as exc:
        raise ImportError(
            "task.decoder: kenlm needs the flashlight-text package (beam search with a KenLM n-gram): "
            "pip install flashlight-text   (or pip install 'superb[lm]')"
        ) from exc
    return fl_decoder, create_word_dict, KenLM


def check_lm_files(lm_path, lexicon=None) -> Tuple[Path, Optional[Path]]:
    """The LM (required) and lexicon (optional) paths, each an existing file; errors name the key."""
    if lm_path is None:
        raise ValueError("task.decoder: kenlm needs task.kenlm.lm_path (a KenLM ARPA or binary file; "
                         "SUPERB used LibriSpeech's official 4-gram.arpa)")
    lm_path = Path(lm_path)
    if not lm_path.is_file():
        raise FileNotFoundError(f"KenLM language model not found: {lm_path} (task.kenlm.lm_path; "
                                "superb never downloads it: SUPERB uses LibriSpeech's official 4-gram.arpa)")
    if lexicon is not None:
        lexicon = Path(lexicon)
        if not lexicon.is_file():
            raise FileNotFoundError(f"lexicon not found: {lexicon} (task.kenlm.lexicon; superb never downloads it)")
    return lm_path, lexicon


class KenLMDecoder:
    """Lexicon-constrained CTC beam search with a KenLM n-gram (flashlight's ``LexiconDecoder``).

    ``tokens[blank]`` is the CTC blank and ``boundary`` the word-boundary token (flashlight's
    silence). ``decode(log_probs)`` takes one utterance's ``[T, V]`` log-probabilities and returns
    the best word sequence joined by spaces. Options (s3prl's values as defaults): ``beam_size`` 5,
    ``beam_size_token`` (None: every token), ``beam_threshold`` 25, ``lm_weight`` 2,
    ``word_score`` -1, ``sil_score`` 0, ``unk_score`` -inf (never emit an unknown word).
    """

    def __init__(self, tokens: Sequence[str], lm_path, lexicon=None, blank: int = 0, boundary: str = "|",
                 beam_size: int = 5, beam_size_token: Optional[int] = None, beam_threshold: float = 25.0,
                 lm_weight: float = 2.0, word_score: float = -1.0, sil_score: float = 0.0,
                 unk_score: float = -math.inf):
        self.tokens = list(tokens)
        if boundary not in self.tokens:
            raise ValueError(f"word boundary token {boundary!r} is not among the tokens")
        self.blank, self.boundary = int(blank), self.tokens.index(boundary)
        lm_path, lexicon = check_lm_files(lm_path, lexicon)
        self.lm_path = lm_path
        if lexicon is not None:
            words = read_lexicon(lexicon, self.tokens, boundary)
            skipped = 0
        else:
            if not _is_arpa(lm_path):
                raise ValueError(f"{lm_path} is not an ARPA file: a binary KenLM model needs task.kenlm.lexicon "
                                 "(a word -> spelling file such as fairseq's librispeech_lexicon.lst)")
            words, skipped = spell_words(arpa_unigrams(lm_path), self.tokens, boundary)
            if not words:
                raise ValueError(f"{lm_path}: no unigram can be spelled with the ASR tokens")
        self.lexicon_path = lexicon
        self.num_words, self.skipped_words = len(words), skipped
        self.options = {"beam_size": int(beam_size),
                        "beam_size_token": int(beam_size_token) if beam_size_token else len(self.tokens),
                        "beam_threshold": float(beam_threshold), "lm_weight": float(lm_weight),
                        "word_score": float(word_score), "sil_score": float(sil_score),
                        "unk_score": float(unk_score)}
        if self.options["beam_size"] < 1 or self.options["beam_size_token"] < 1:
            raise ValueError(f"beam sizes must be >= 1, got {self.options}")

        fl, create_word_dict, KenLM = _flashlight()
        words.pop(UNK_WORD, None)  # never a spelled word: unk_score governs it
        self.word_dict = create_word_dict({**words, UNK_WORD: []})
        self.unk_word = self.word_dict.get_index(UNK_WORD)
        self.lm = KenLM(str(lm_path), self.word_dict)
        token_index = {t: i for i, t in enumerate(self.tokens)}
        self.trie = fl.Trie(len(self.tokens), self.boundary)
        start = self.lm.start(False)
        for word, spellings in words.items():
            idx = self.word_dict.get_index(word)
            _, score = self.lm.score(start, idx)
            for spelling in spellings:
                self.trie.insert([token_index[t] for t in spelling], idx, score)
        self.trie.smear(fl.SmearingMode.MAX)
        opts = fl.LexiconDecoderOptions(
            beam_size=self.options["beam_size"], beam_size_token=self.options["beam_size_token"],
            beam_threshold=self.options["beam_threshold"], lm_weight=self.options["lm_weight"],
            word_score=self.options["word_score"], unk_score=self.options["unk_score"],
            sil_score=self.options["sil_score"], log_add=False, criterion_type=fl.CriterionType.CTC)
        self.decoder = fl.LexiconDecoder(opts, self.trie, self.lm, self.boundary, self.blank, self.unk_word, [], False)

    def describe(self) -> Dict[str, object]:
        """What results.json records about this decoder."""
        opts = {k: v for k, v in self.options.items() if k != "unk_score"}
        return {"type": "kenlm", "implementation": "flashlight-text LexiconDecoder", "lm_path": str(self.lm_path),
                "lexicon": str(self.lexicon_path) if self.lexicon_path else "spelled from the ARPA unigrams",
                "lexicon_words": self.num_words, "lexicon_words_skipped": self.skipped_words,
                "unk_score": "-inf" if math.isinf(self.options["unk_score"]) else self.options["unk_score"], **opts}

    def decode(self, log_probs: torch.Tensor) -> str:
        """Best hypothesis for one utterance's ``[T, V]`` CTC log-probabilities."""
        if log_probs.dim() != 2 or log_probs.shape[1] != len(self.tokens):
            raise ValueError(f"expected [T, {len(self.tokens)}] log-probabilities, got {tuple(log_probs.shape)}")
        em = log_probs.detach().to("cpu", torch.float32).contiguous()
        if em.shape[0] == 0:
            return ""
        results = self.decoder.decode(em.data_ptr(), em.shape[0], em.shape[1])
        if not results:
            return ""
        return " ".join(self.word_dict.get_entry(w) for w in results[0].words if w >= 0)

    def decode_batch(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> List[str]:
        """``[B, T, V]`` log-probabilities with valid ``lengths`` -> one hypothesis per utterance."""
        return [self.decode(log_probs[b, :n]) for b, n in enumerate(lengths.tolist())]


def write_arpa(sentences: Iterable[str], path, order: int = 3, discount: float = 0.5) -> Path:
    """A small backoff word n-gram LM in ARPA format, written in Python (no KenLM ``lmplz``).

    For the embedded mini corpus and tests; real benchmarks use LibriSpeech's official 4-gram.
    Unigrams are add-one smoothed over the vocabulary (with ``</s>`` and ``<unk>``); higher orders
    use absolute discounting of seen n-grams, and every context's backoff weight hands the
    left-over mass to the shorter context, so each next-word distribution sums to one.
    The file is written atomically."""
    sentences = [str(x) for x in sentences]
    if not any(x.split() for x in sentences):
        raise ValueError("write_arpa: no words in the given sentences")
    if order < 1 or not 0.0 < discount < 1.0:
        raise ValueError(f"write_arpa: order must be >= 1 and 0 < discount < 1, got {order}, {discount}")
    counts = [Counter() for _ in range(order + 1)]
    vocab = set()
    for s in sentences:
        words = s.split()
        vocab.update(words)
        seq = ["<s>"] + words + ["</s>"]
        for k in range(1, order + 1):
            for i in range(len(seq) - k + 1):
                gram = tuple(seq[i:i + k])
                if gram != ("<s>",):
                    counts[k][gram] += 1
    unigrams = sorted(vocab) + ["</s>", "<unk>"]
    total = sum(counts[1].values())
    prob = [dict() for _ in range(order + 1)]
    for w in unigrams:  # add-one over the vocabulary (with </s> and <unk>)
        prob[1][(w,)] = (counts[1].get((w,), 0) + 1) / (total + len(unigrams))
    for k in range(2, order + 1):  # absolute discounting of seen n-grams
        history = Counter()
        for gram, c in counts[k].items():
            history[gram[:-1]] += c
        for gram, c in counts[k].items():
            prob[k][gram] = (c - discount) / history[gram[:-1]]
    backoff = {}

    def p(gram):  # the backoff model's probability of the last word of gram given the rest
        if gram in prob[len(gram)]:
            return prob[len(gram)][gram]
        return backoff.get(gram[:-1], 1.0) * p(gram[1:])

    for k in range(1, order):  # the weight that hands the left-over mass to the shorter context
        follow = defaultdict(list)
        for gram in prob[k + 1]:
            follow[gram[:-1]].append(gram)
        for h, grams in follow.items():
            backoff[h] = (1.0 - sum(prob[k + 1][g] for g in grams)) / (1.0 - sum(p(g[1:]) for g in grams))
    entries = {1: [(("<s>",), None)] + [((w,), prob[1][(w,)]) for w in unigrams]}
    for k in range(2, order + 1):
        entries[k] = sorted(prob[k].items())
    lines = ["\\data\\"] + [f"ngram {k}={len(entries[k])}" for k in range(1, order + 1)] + [""]
    for k in range(1, order + 1):
        lines.append(f"\\{k}-grams:")
        for gram, pr in entries[k]:
            line = f"{-99.0 if pr is None else math.log10(pr):.6f}\t{' '.join(gram)}"
            if k < order and gram in backoff:
                line += f"\t{math.log10(backoff[gram]):.6f}"
            lines.append(line)
        lines.append("")
    lines.append("\\end\\")
    path = Path(path)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
