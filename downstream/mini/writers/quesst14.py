"""Split ``quesst``: query-by-example search data in the QUESST 2014 layout (QbE).

Layout written under the split directory ``<dir>`` (``ensure_split`` returns ``<dir>``)::

    <dir>/quesst14Database/Audio/quesst14_<nnnnn>.wav            documents (1-based numbers)
    <dir>/quesst14Database/dev_queries/quesst14_dev_<nnnn>.wav    dev queries
    <dir>/quesst14Database/eval_queries/quesst14_eval_<nnnn>.wav  eval queries
    <dir>/quesst14Database/scoring/language_key_utterances.lst    quesst14Database/Audio/<f>.wav nnenglish
    <dir>/quesst14Database/scoring/language_key_{dev,eval}.lst    same for the queries
    <dir>/quesst14Database/scoring/groundtruth_quesst14_{dev,eval}/
        quesst14.ecf.xml          every document (<excerpt audio_filename="Audio/..." dur=.../>)
        quesst14_<split>.tlist.xml every query of the split (<term termid="quesst14_dev_0001">)
        quesst14_<split>.rttm     LEXEME <document> 1 <tbeg> <dur> <query id> lex <NA> <NA>
    <dir>/labels.jsonl             one record per .wav (extra)
    <dir>/COMPLETE                 build marker (written last)

``ensure_split`` returns ``<dir>``; the QbE task's ``--data`` is ``<dir>/quesst14Database`` (it
also accepts ``<dir>``).

* Search terms: two disjoint lists of multi-syllable grammar words (``DEV_TERMS`` for dev,
  ``EVAL_TERMS`` for eval). Each term is recorded ``queries_per_term`` times, each time by a
  different *query speaker* (pool indices disjoint from the document speakers), said alone with
  jittered prosody, 0.05-0.15 s of lead-in and tail over a -75 to -55 dBFS noise floor. Every
  recording is its own query id (as in QUESST, where several queries can share a term).
* Documents: one grammar sentence each (:mod:`..grammar`), by the document speakers. In
  ``targeted`` of every 3 documents the sentence is drawn until it contains a chosen term
  (terms taken in turn), the others are free sentences (which may contain terms by chance).
  Levels, lead-in and noise as for the LibriSpeech split.
* Ground truth: one RTTM ``LEXEME`` line per occurrence of a term's word in a document, with
  the word timing from eSpeak's word events, for every query of that term. All audio is listed
  with language ``nnenglish`` (the only language the mini corpus has).

labels.jsonl fields: ``path``, ``speaker``, ``text``, ``words``, ``phonemes``, ``role``
(``document`` / ``dev_query`` / ``eval_query``), ``id`` (file stem), ``term`` (queries),
``voice``, ``duration``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import noise as N
from ..common import BuildContext, LabelWriter, place_level, write_wav
from ...audio import SAMPLE_RATE
from ..grammar import VOCABULARY, sentence

ROOT = "quesst14Database"
LANGUAGE = "nnenglish"
DEV_TERMS = ("garden", "village", "teacher", "morning", "yesterday", "together", "carefully",
             "station", "kitchen", "picture", "mountain", "evening", "neighbour", "stranger",
             "window", "castle", "market", "basket", "flower", "soldier")
EVAL_TERMS = ("river", "forest", "doctor", "farmer", "sailor", "island", "summer", "winter",
              "bottle", "candle", "children", "quickly", "suddenly", "happily", "yellow",
              "letter", "lonely", "school", "church", "bridge")
#: pool indices: documents first, then queries (far from the other splits' ranges)
FIRST_SPEAKER = 2000


@dataclass(frozen=True)
class Config:
    doc_speakers: int
    query_speakers: int
    documents: int
    terms: int            # terms per split (the first ``terms`` of each list)
    queries_per_term: int
    targeted: int = 2     # documents out of every 3 drawn to contain a term


PROFILES = {
    "tiny": Config(doc_speakers=3, query_speakers=2, documents=12, terms=3, queries_per_term=1),
    "default": Config(doc_speakers=30, query_speakers=16, documents=240, terms=20, queries_per_term=2),
}


def _check_terms() -> None:
    vocab = set(VOCABULARY)
    bad = [t for t in DEV_TERMS + EVAL_TERMS if t not in vocab]
    if bad or set(DEV_TERMS) & set(EVAL_TERMS):
        raise ValueError(f"QUESST mini terms must be distinct grammar words; bad: {bad}")


def _sentence_with(rng: np.random.Generator, term: str | None) -> list[str]:
    for _ in range(5000):
        words = sentence(rng, 3, 12)
        if term is None or term in words:
            return words
    raise RuntimeError(f"the grammar produced no sentence containing {term!r} in 5000 draws")


def _speech(ctx: BuildContext, rng: np.random.Generator, speaker, words: list[str], keys, lead_range):
    question = words[0] in ("did", "where", "why", "when", "how")
    text = " ".join(words) + ("?" if question else ".")
    syn = ctx.engine.synth(text, speaker.voice, words=words, seed=ctx.espeak_seed(*keys),
                           **speaker.prosody(rng)).trim()
    speech = N.fade(place_level(rng, syn.audio, 0.4, 0.8))
    lead = int(rng.uniform(*lead_range) * SAMPLE_RATE)
    tail = int(rng.uniform(*lead_range) * SAMPLE_RATE)
    n = lead + len(speech) + tail
    audio = N.set_level(N.make_noise(str(rng.choice(["white", "pink", "brown"])), rng, n),
                        float(rng.uniform(-75, -55)))
    audio[lead:lead + len(speech)] += speech
    return audio, [w.shifted(lead / SAMPLE_RATE) for w in syn.words]


def _write_xml(path: Path, root: ET.Element) -> None:
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)


def build(out_dir: Path, ctx: BuildContext) -> None:
    _check_terms()
    cfg = PROFILES[ctx.profile]
    labels = LabelWriter()
    base = out_dir / ROOT
    scoring = base / "scoring"
    scoring.mkdir(parents=True)
    doc_speakers = ctx.pool.take(FIRST_SPEAKER, cfg.doc_speakers)
    query_speakers = ctx.pool.take(FIRST_SPEAKER + cfg.doc_speakers, cfg.query_speakers)
    terms = {"dev": DEV_TERMS[:cfg.terms], "eval": EVAL_TERMS[:cfg.terms]}
    all_terms = [t for pair in zip(terms["dev"], terms["eval"]) for t in pair]
    n_queries = 2 * cfg.terms * cfg.queries_per_term
    docs: list[tuple[str, float, list]] = []  # (name, duration, word timings)
    with ctx.progress_bar(cfg.documents + n_queries, "mini quesst") as bar:
        k = 0
        for i in range(cfg.documents):
            keys = ("quesst-doc", i)
            rng = ctx.rng(*keys)
            term = None
            if i % 3 < cfg.targeted:
                term = all_terms[k % len(all_terms)]
                k += 1
            words = _sentence_with(rng, term)
            sp = doc_speakers[i % len(doc_speakers)]
            audio, timings = _speech(ctx, rng, sp, words, keys, (0.1, 0.35))
            name = f"quesst14_{i + 1:05d}"
            rel = f"{ROOT}/Audio/{name}.wav"
            write_wav(out_dir / rel, audio, ctx)
            docs.append((name, len(audio) / SAMPLE_RATE, timings))
            labels.add({"path": rel, "id": name, "role": "document", "speaker": sp.key,
                        "text": " ".join(w.upper() for w in words),
                        "words": [w.to_dict() for w in timings],
                        "phonemes": " ".join(ctx.word_phonemes(w) for w in words),
                        "voice": sp.voice.name, "duration": round(len(audio) / SAMPLE_RATE, 4)})
            bar.update()
        doc_lines = [f"{ROOT}/Audio/{name}.wav {LANGUAGE}" for name, _, _ in docs]
        (scoring / "language_key_utterances.lst").write_text("\n".join(doc_lines) + "\n")
        q = 0
        for split in ("dev", "eval"):
            queries: list[tuple[str, str]] = []
            for t, term in enumerate(terms[split]):
                for r in range(cfg.queries_per_term):
                    keys = ("quesst-query", split, term, r)
                    rng = ctx.rng(*keys)
                    sp = query_speakers[q % len(query_speakers)]
                    q += 1
                    audio, timings = _speech(ctx, rng, sp, [term], keys, (0.05, 0.15))
                    name = f"quesst14_{split}_{len(queries) + 1:04d}"
                    rel = f"{ROOT}/{split}_queries/{name}.wav"
                    write_wav(out_dir / rel, audio, ctx)
                    queries.append((name, term))
                    labels.add({"path": rel, "id": name, "role": f"{split}_query", "term": term,
                                "speaker": sp.key, "text": term.upper(),
                                "words": [w.to_dict() for w in timings],
                                "phonemes": ctx.word_phonemes(term), "voice": sp.voice.name,
                                "duration": round(len(audio) / SAMPLE_RATE, 4)})
                    bar.update()
            (scoring / f"language_key_{split}.lst").write_text(
                "".join(f"{ROOT}/{split}_queries/{name}.wav {LANGUAGE}\n" for name, _ in queries))
            gt = scoring / f"groundtruth_quesst14_{split}"
            gt.mkdir()
            ecf = ET.Element("ecf", {"source_signal_duration": f"{sum(d for _, d, _ in docs):.3f}",
                                     "language": "multiple", "version": "superb-mini"})
            for name, dur, _ in docs:
                ET.SubElement(ecf, "excerpt", {"audio_filename": f"Audio/{name}.wav", "channel": "1",
                                               "tbeg": "0.000", "dur": f"{dur:.3f}", "source_type": "mini"})
            _write_xml(gt / "quesst14.ecf.xml", ecf)
            tlist = ET.Element("termlist", {"ecf_filename": "quesst14.ecf.xml", "version": "superb-mini",
                                            "language": "multiple", "encoding": "UTF-8"})
            for name, _ in queries:
                term_el = ET.SubElement(tlist, "term", {"termid": name})
                ET.SubElement(term_el, "termtext").text = name
            _write_xml(gt / f"quesst14_{split}.tlist.xml", tlist)
            rttm = []
            for name, term in queries:
                for doc, _, timings in docs:
                    for w in timings:
                        if w.word == term:
                            rttm.append(f"LEXEME {doc} 1 {w.start:.3f} {w.end - w.start:.3f} {name} lex <NA> <NA>")
            (gt / f"quesst14_{split}.rttm").write_text("\n".join(rttm) + "\n")
    labels.write(out_dir)
