"""ST -- speech translation, CoVoST 2 English -> German (SUPERB-SG semantic task).

Layout (``--data`` points at the folder holding the CoVoST 2 table and the Common Voice clips)::

    covost_v2.en_de.tsv                  CoVoST 2's release table: path, translation, split
                                         (split: train / train_covost / dev / test; other values unused)
      or covost_v2.en_de.{train,dev,test}.tsv   the output of CoVoST's get_covost_splits.py
                                         (path, sentence, translation, client_id)
    en/validated.tsv                     Common Voice's table (path, sentence, ...): the English
                                         sentences of the release table's rows (task.cv_tsv)
    en/clips/<path>                      Common Voice clips (or clips/<path>; task.clips_dir)

Tables are read as CoVoST writes them (tab-separated, header row, no quoting, backslash
escapes); columns are found by name. Common Voice ships 48 kHz MP3s and superb does not resample
behind the user's back: convert the clips once to 16 kHz mono (MP3 through soundfile/libsndfile,
or WAV/FLAC with ``task.audio_ext: .wav``, which replaces each file's extension). A missing clip
is an error naming it; table rows whose ``split`` is none of the CoVoST 2 values are counted in
``results.json`` (``data.notes``). SUPERB used the Common Voice 4 English clips.

Cleaning, as s3prl's ``prepare_data/prepare_data.sh`` (``prepare_clean_paired_corpus.py --min 1
--ratio 5``), on every split (train, dev and test): a row is dropped when its English sentence
or its translation contains ``REMOVE``, when either has no words, or when one has more than 5
times the other's words (``str.split`` counts, raw text; ``task.clean``). Release-table rows
missing from ``validated.tsv`` are dropped (``get_covost_splits.py`` joins the two tables). The
per-split, per-reason counts are in ``data.notes.dropped_rows``. Without any source sentences
(neither a ``sentence`` column nor a ``validated.tsv``) only the target side is filtered, with a
warning and a note.

Target normalisation (s3prl's ``prepare_normalize_tsv.py --normalize --lang <tgt>``): sacremoses'
``MosesPunctNormalizer(lang=tgt_lang, pre_replace_unicode_punct=True,
post_remove_control_chars=True)`` (``„…“``, ``« »``, ``–``, ``…``, full-width punctuation become
ASCII), then the spaces before ``.``, ``?``, ``,`` and ``'`` are removed and ``do n't`` rejoined.
Normalised translations train the SentencePiece model, are the training targets, and are the
BLEU references (``task.normalize_punctuation: false`` turns it off; not s3prl). Needs the
``sacremoses`` package (imported when ``prepare`` runs).

Targets: a SentencePiece model trained on the training translations (``task.spm``; s3prl's
CoVoST preparation uses ``model_type: char``), built in ``prepare`` and saved inside the head's
state (``best.pt``), so evaluating a run decodes with the model it was trained with.

Head (s3prl v0.4.18 ``speech_translation/config.yaml``: fairseq ``s2t_transformer`` with 3
encoder and 3 decoder layers; facts only, no fairseq code): features truncated to
``max_source_frames`` (6,000) -> two 1-D convolutions (kernel 5, stride 2, 1,024 channels, GLU:
4x shorter) -> scaled by sqrt(d_model) + sinusoidal positions -> 3 pre-LN transformer encoder
layers (d_model 512, 8 heads, FFN 2,048, ReLU, dropout 0.1) -> 3 pre-LN decoder layers over
sqrt(d)-scaled token embeddings + sinusoidal positions -> linear over the SentencePiece
vocabulary. Loss: cross-entropy with label smoothing 0.1 (PyTorch's definition), teacher forcing.
Decoding: beam search (beam 20, at most ``max_len_a * source_frames + max_len_b`` = 400 tokens,
scores normalised by length, stop when ``beam`` hypotheses ended), then SentencePiece detokenises.
Training (``recipes/st.yaml``): Adam 1e-3 with s3prl's ``sqrt_decay_schedule_with_warmup`` (10k
warm-up steps) and batches of at most 10,000 upstream frames (fairseq's ``max_tokens``, which
s3prl counts in upstream frames).

Metric: detokenised case-sensitive corpus BLEU (sacrebleu 13a), primary; ``bleu_constant`` is
the BLEU of answering every utterance with the most frequent training translation (a trivial
baseline). ``predictions/<split>/predict.tsv``: ``id``, ``hyp``, ``ref`` columns (the
leaderboard's ``st_public/predict.tsv``).
"""
from __future__ import annotations

import collections
import io
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import metrics as M
from ..corpora.common_voice import find_clips_dir
from ..corpora.covost2 import covost2_examples, read_covost2_tables, source_sentences
from .base import Example, Task, write_lines
from .declaration import Board, Column, HIGHER, Metric, Submission

UNK, BOS, EOS, PAD = 0, 1, 2, 3


# --------------------------------------------------------------------------------------------
# s3prl's CoVoST cleaning (prepare_data/prepare_clean_paired_corpus.py with --min 1 --ratio 5,
# then prepare_normalize_tsv.py --normalize on the translation); facts only, no s3prl code
# --------------------------------------------------------------------------------------------
DROP_REASONS = ("contains_remove", "no_words", "word_ratio", "no_source_sentence")


def filter_rows(rows: List[Dict[str, str]], sources: Optional[Dict[str, str]], clean: Dict[str, object]):
    """s3prl's paired-corpus filter: drop a row whose source or target contains ``REMOVE``
    (case-sensitive substring), has fewer than ``min_words`` whitespace-separated words, or
    whose word counts differ by more than ``max_ratio`` times (either direction); checked in
    that order on the raw text. Rows absent from ``validated.tsv`` are dropped too (CoVoST's
    ``get_covost_splits.py`` inner-joins the two tables). Returns the kept rows and the
    per-reason counts."""
    marker = str(clean.get("remove_marker", "REMOVE"))
    min_words = int(clean.get("min_words", 1))
    max_ratio = float(clean.get("max_ratio", 5.0))
    why = dict.fromkeys(DROP_REASONS, 0)
    kept = []
    for r in rows:
        tgt = r["translation"]
        if sources is not None and r["path"] not in sources:
            why["no_source_sentence"] += 1
            continue
        texts = [tgt] if sources is None else [sources[r["path"]], tgt]
        lens = [len(t.split()) for t in texts]
        if marker and any(marker in t for t in texts):
            why["contains_remove"] += 1
        elif min(lens) < min_words:
            why["no_words"] += 1
        elif max_ratio > 0 and len(lens) == 2 and min(lens) > 0 and max(lens) / min(lens) > max_ratio:
            why["word_ratio"] += 1
        else:
            kept.append(r)
    return kept, why


def punct_normalizer(lang: str):
    """sacremoses' Moses punctuation normaliser, as s3prl's ``prepare_normalize_tsv.py`` builds it."""
    try:
        import sacremoses
    except ImportError as exc:
        raise M.MissingDependencyError(
            f"the speech translation targets (Moses punctuation normalisation, as s3prl) need the Python package "
            f"'sacremoses', which is not installed ({exc}). Install it with: pip install sacremoses "
            f"(or set task.normalize_punctuation: false, which departs from s3prl)") from exc
    return sacremoses.MosesPunctNormalizer(lang=lang, pre_replace_unicode_punct=True, post_remove_control_chars=True)


def normalize_target(text: str, normalizer=None) -> str:
    """A translation as s3prl's CoVoST preparation leaves it: Moses punctuation normalisation,
    then the spaces before ``.``, ``?``, ``,`` and ``'`` removed and ``do n't`` rejoined; then
    whitespace collapsed (tabs included)."""
    text = str(text)
    if normalizer is not None:
        text = normalizer.normalize(text)
        for ch in ".?,'":
            text = text.replace(" " + ch, ch)
        text = text.replace("do n't", "don't")
    return _clean(text)


# --------------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------------
def train_sentencepiece(texts: Sequence[str], model_type: str, vocab_size: int, character_coverage: float) -> bytes:
    """A SentencePiece model (serialised proto) trained in memory; ids: unk 0, bos 1, eos 2, pad 3."""
    spm = M.require("sentencepiece", "the speech translation vocabulary")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(list(texts)), model_writer=buf, model_type=model_type,
                                   vocab_size=int(vocab_size), hard_vocab_limit=False,
                                   character_coverage=float(character_coverage), unk_id=UNK, bos_id=BOS, eos_id=EOS,
                                   pad_id=PAD, num_threads=1, minloglevel=2, split_digits=False,
                                   normalization_rule_name="identity")
    return buf.getvalue()


def load_sentencepiece(proto: bytes):
    spm = M.require("sentencepiece", "the speech translation vocabulary")
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(proto)
    return sp


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------
def sinusoidal_positions(length: int, dim: int, device) -> torch.Tensor:
    """``[length, dim]``: sin of the first half, cos of the second (Vaswani et al. frequencies)."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, device=device, dtype=torch.float32) * -(math.log(10000.0) / max(half - 1, 1)))
    ang = torch.arange(length, device=device, dtype=torch.float32)[:, None] * freq[None, :]
    pe = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)
    return F.pad(pe, (0, dim - pe.shape[1]))


class Conv1dSubsampler(nn.Module):
    """Stride-2 1-D convolutions, each followed by a GLU over channels."""

    def __init__(self, input_dim: int, channels: int, out_dim: int, kernels: Sequence[int]):
        super().__init__()
        self.kernels = [int(k) for k in kernels]
        n = len(self.kernels)
        self.convs = nn.ModuleList([
            nn.Conv1d(input_dim if i == 0 else channels // 2, channels if i < n - 1 else out_dim * 2, k, stride=2,
                      padding=k // 2) for i, k in enumerate(self.kernels)])

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        x = x.transpose(1, 2)
        for conv, k in zip(self.convs, self.kernels):
            x = F.glu(conv(x), dim=1)
            lengths = torch.div(lengths + 2 * (k // 2) - k, 2, rounding_mode="floor") + 1
        return x.transpose(1, 2), lengths


class SpeechTranslationTransformer(nn.Module):
    def __init__(self, input_dim: int, spm_proto: bytes, d_model: int, heads: int, ffn_dim: int, encoder_layers: int,
                 decoder_layers: int, dropout: float, conv_kernels: Sequence[int], conv_channels: int,
                 max_source_frames: int, max_target_positions: int):
        super().__init__()
        self.spm_proto = spm_proto
        self.tokenizer = load_sentencepiece(spm_proto)
        vocab = self.tokenizer.get_piece_size()
        self.d_model, self.max_source_frames = d_model, int(max_source_frames)
        self.max_target_positions = int(max_target_positions)
        self.subsample = Conv1dSubsampler(input_dim, conv_channels, d_model, conv_kernels)
        self.dropout = nn.Dropout(dropout)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model, heads, ffn_dim, dropout, activation="relu", batch_first=True,
                                       norm_first=True), encoder_layers, norm=nn.LayerNorm(d_model),
            enable_nested_tensor=False)
        self.embed = nn.Embedding(vocab, d_model, padding_idx=PAD)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(d_model, heads, ffn_dim, dropout, activation="relu", batch_first=True,
                                       norm_first=True), decoder_layers, norm=nn.LayerNorm(d_model))
        self.output = nn.Linear(d_model, vocab, bias=False)
        self.scale = math.sqrt(d_model)

    # the tokenizer travels in the state dict (best.pt) so evaluation decodes with the trained one
    def get_extra_state(self):
        return {"spm_proto": self.spm_proto}

    def set_extra_state(self, state):
        proto = state["spm_proto"]
        if proto != self.spm_proto:
            vocab = load_sentencepiece(proto).get_piece_size()
            if vocab != self.embed.num_embeddings:
                raise ValueError(f"the checkpoint's SentencePiece model has {vocab} pieces, this head {self.embed.num_embeddings}")
            self.spm_proto, self.tokenizer = proto, load_sentencepiece(proto)

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor):
        feats, lengths = feats[:, :self.max_source_frames], lengths.clamp(max=self.max_source_frames)
        x, lens = self.subsample(feats, lengths)
        x = self.dropout(x * self.scale + sinusoidal_positions(x.shape[1], self.d_model, x.device))
        pad = torch.arange(x.shape[1], device=x.device)[None, :] >= lens[:, None]
        return self.encoder(x, src_key_padding_mask=pad), pad

    def decode(self, tokens: torch.Tensor, memory: torch.Tensor, memory_pad: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        x = self.dropout(self.embed(tokens) * self.scale + sinusoidal_positions(t, self.d_model, tokens.device))
        causal = torch.ones(t, t, dtype=torch.bool, device=tokens.device).triu(1)
        y = self.decoder(x, memory, tgt_mask=causal, tgt_key_padding_mask=tokens == PAD,
                         memory_key_padding_mask=memory_pad)
        return self.output(y)

    def forward(self, feats, lengths, tokens):
        memory, pad = self.encode(feats, lengths)
        return self.decode(tokens, memory, pad)

    @torch.no_grad()
    def beam_search(self, feats: torch.Tensor, lengths: torch.Tensor, beam: int, max_len: int) -> List[int]:
        """Best token ids (without bos/eos) for ONE utterance."""
        memory, pad = self.encode(feats, lengths)
        max_len = max(1, min(max_len, self.max_target_positions - 1))
        tokens = torch.full((1, 1), BOS, dtype=torch.long, device=feats.device)
        scores = torch.zeros(1, device=feats.device)
        finished: List[tuple] = []
        for step in range(max_len):
            k = tokens.shape[0]
            logp = self.decode(tokens, memory.expand(k, -1, -1), pad.expand(k, -1))[:, -1].float().log_softmax(-1)
            logp[:, PAD] = logp[:, BOS] = float("-inf")
            if step == max_len - 1:
                keep_eos = logp[:, EOS].clone()
                logp.fill_(float("-inf"))
                logp[:, EOS] = keep_eos
            cand = (scores[:, None] + logp).view(-1)
            top = torch.topk(cand, min(2 * beam, cand.numel()))
            vocab = logp.shape[1]
            new_tok, new_scores = [], []
            for score, idx in zip(top.values.tolist(), top.indices.tolist()):
                if score == float("-inf"):
                    break
                prev, tok = divmod(idx, vocab)
                seq = tokens[prev].tolist() + [tok]
                if tok == EOS:
                    finished.append((score / (len(seq) - 1), seq[1:-1]))
                else:
                    new_tok.append(seq)
                    new_scores.append(score)
                if len(new_tok) == beam:
                    break
            if len(finished) >= beam or not new_tok:
                break
            tokens = torch.tensor(new_tok, dtype=torch.long, device=feats.device)
            scores = torch.tensor(new_scores, device=feats.device)
        if not finished:
            return tokens[0, 1:].tolist()
        return max(finished, key=lambda f: f[0])[1]


# --------------------------------------------------------------------------------------------
# task
# --------------------------------------------------------------------------------------------
def _clean(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())


class SpeechTranslation(Task):
    name = "st"
    title = "Speech translation (En -> De)"
    category = "semantic"
    dataset = "CoVoST 2 En->De (Common Voice English clips)"
    metrics = {"bleu": Metric(HIGHER, "BLEU"), "bleu_constant": Metric(HIGHER, "BLEU", internal=True)}
    primary_metric = "bleu"
    leaderboard = Board("Speech translation", (Column("BLEU", ("bleu", "sacrebleu"), 2.32, 20.01),), position=11)
    submission = (Submission("st_public", "predict.tsv", "hyp_ref_tsv", ("predict.tsv", "output-st-test.tsv")),)
    mini_split = "covost"
    data_help = "the folder holding covost_v2.en_de.tsv (or its split files) and en/clips/"

    def prepare(self, data_dir) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("ST needs --data pointing at the CoVoST 2 folder")
        root = Path(data_dir)
        c = self.cfg
        src, tgt = str(c["src_lang"]), str(c["tgt_lang"])
        clips = find_clips_dir(root, c.get("clips_dir"), src)
        min_samples = self.min_samples
        tables, notes = read_covost2_tables(root, src, tgt, c.get("tsv"))
        sources = source_sentences(root, clips, c.get("cv_tsv"), tables)
        if sources is None:
            notes["source_filters"] = ("not applied: no source sentences (no 'sentence' column and no Common Voice "
                                       "validated.tsv, task.cv_tsv); only the target side was filtered")
            print(f"st: WARNING: {notes['source_filters']}")
        else:
            notes["source_sentences"] = sources[1]
        clean = dict(c.get("clean") or {})
        normalizer = punct_normalizer(tgt) if c.get("normalize_punctuation", True) else None
        splits: Dict[str, List[Example]] = {}
        dropped: Dict[str, Dict[str, int]] = {}
        for k, rows in tables.items():
            if not rows:
                raise ValueError(f"CoVoST 2 {k} split is empty in {notes['tables']}")
            kept, why = filter_rows(rows, None if sources is None else sources[0], clean)
            dropped[k] = dict(why, total=len(rows) - len(kept))
            if not kept:
                raise ValueError(f"CoVoST 2 {k} split: all {len(rows)} rows dropped by the s3prl filters {why}")
            splits[k] = covost2_examples(kept, clips, k, c.get("audio_ext"), min_samples,
                                         label=lambda r: normalize_target(r["translation"], normalizer))
        notes["dropped_rows"] = dropped
        notes["target_normalisation"] = (f"sacremoses MosesPunctNormalizer(lang={tgt!r}), then s3prl's rejoining of "
                                         "' .' ' ?' ' ,' \" '\" and \"do n't\"" if normalizer is not None else "off")
        print("st: rows dropped (REMOVE / no words / word-count ratio / no source sentence): "
              + ", ".join(f"{k} {d['total']} of {len(tables[k])}" for k, d in dropped.items()))
        self.data_notes = notes
        train_text = [e.label for e in splits["train"]]
        counts = collections.Counter(train_text)
        self._constant = min(counts, key=lambda t: (-counts[t], t))
        s = c["spm"]
        self._spm_proto = train_sentencepiece(train_text, str(s["model_type"]), int(s["vocab_size"]),
                                              float(s["character_coverage"]))
        return splits

    def build_head(self, input_dim, downsample_rate):
        m = self.cfg["model"]
        return SpeechTranslationTransformer(input_dim, self._spm_proto, int(m["d_model"]), int(m["heads"]),
                                            int(m["ffn_dim"]), int(m["encoder_layers"]), int(m["decoder_layers"]),
                                            float(m["dropout"]), list(m["conv_kernels"]), int(m["conv_channels"]),
                                            int(m["max_source_frames"]), int(m["max_target_positions"]))

    def _targets(self, head, examples, device):
        ids = [head.tokenizer.encode(e.label)[: head.max_target_positions - 1] for e in examples]
        t = max(len(i) for i in ids) + 1
        inp = torch.full((len(ids), t), PAD, dtype=torch.long)
        out = torch.full((len(ids), t), PAD, dtype=torch.long)
        for b, seq in enumerate(ids):
            inp[b, : len(seq) + 1] = torch.tensor([BOS] + seq)
            out[b, : len(seq) + 1] = torch.tensor(seq + [EOS])
        return inp.to(device), out.to(device)

    def loss(self, head, feats, lengths, examples):
        inp, out = self._targets(head, examples, feats.device)
        logits = head(feats, lengths, inp).float()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), out.reshape(-1), ignore_index=PAD,
                               label_smoothing=float(self.cfg["label_smoothing"]))

    def predict(self, head, feats, lengths, examples):
        out = []
        for b in range(len(examples)):
            n = int(lengths[b])
            max_len = int(float(self.cfg["max_len_a"]) * n + int(self.cfg["max_len_b"]))
            ids = head.beam_search(feats[b:b + 1, :n], lengths[b:b + 1], int(self.cfg["beam"]), max_len)
            out.append(_clean(head.tokenizer.decode(ids)))
        return out

    def score(self, examples, predictions):
        refs = [e.label for e in examples]
        return {"bleu": M.corpus_bleu(list(predictions), refs),
                "bleu_constant": M.corpus_bleu([self._constant] * len(refs), refs)}

    def write_predictions(self, out_dir, split, examples, predictions):
        rows = ["id\thyp\tref"] + [f"{e.id}\t{_clean(p)}\t{_clean(e.label)}"
                                   for e, p in sorted(zip(examples, predictions), key=lambda x: x[0].id)]
        return [write_lines(Path(out_dir) / split / "predict.tsv", rows)]
