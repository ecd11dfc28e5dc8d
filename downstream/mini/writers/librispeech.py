"""Split ``librispeech``: read sentences in the LibriSpeech layout (ASR / phoneme recognition).

Layout written under the split directory ``<dir>`` (``ensure_split`` returns ``<dir>``)::

    <dir>/LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<utt:04d>.flac
    <dir>/LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>.trans.txt
    <dir>/lexicon.txt        WORD<TAB>PH1 PH2 ...   (LibriSpeech g2p lexicon format)
    <dir>/labels.jsonl       one record per .flac (extra)
    <dir>/COMPLETE           build marker (written last)

* ``<subset>`` is ``train``, ``dev`` or ``test``; speakers are disjoint between them (pool
  indices ``0..train-1``, then dev, then test).  ``<spk>`` (3-4 digits) and ``<chapter>``
  (4-6 digits) are unique random numbers, as in the real corpus.  Train speakers read
  ``chapters`` chapters, dev/test speakers one.
* Audio: 16 kHz mono 16-bit FLAC.  Each utterance is one grammar sentence (:mod:`..grammar`,
  3-12 words, ~420-word vocabulary) said with the speaker's voice and jittered
  rate/pitch/range, scaled to a random peak in 0.4-0.8, with 0.1-0.35 s of lead-in and tail over
  a -75 to -55 dBFS white/pink/brown noise floor.
* ``trans.txt``: ``<spk>-<chapter>-<utt:04d> TRANSCRIPT`` per line, sorted, transcript upper case
  (A-Z, apostrophe, space).
* ``lexicon.txt``: every word of the grammar's vocabulary, upper case, a tab, then its eSpeak
  IPA phonemes (US English, stress marks removed, one token per eSpeak phoneme, space separated).
  Sorted by word.
* labels.jsonl fields: ``path``, ``id``, ``subset``, ``speaker`` / ``chapter`` (the numeric ids
  as strings), ``text`` (the transcript), ``words`` (start/end seconds of each word in the
  file), ``phonemes`` (the lexicon phonemes of the words, concatenated), ``ipa`` (eSpeak's
  sentence-level IPA with stress marks, words separated by spaces; it can differ from the
  lexicon in connected speech), ``voice``, ``duration``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import noise as N
from ..common import BuildContext, LabelWriter, place_level, write_flac
from ...audio import SAMPLE_RATE
from ..grammar import VOCABULARY, sentence, transcript

ROOT = "LibriSpeech"
LEXICON = "lexicon.txt"
SUBSETS = ("train", "dev", "test")


@dataclass(frozen=True)
class Config:
    speakers: dict  # subset -> number of speakers
    utterances: dict  # subset -> utterances per speaker
    chapters: dict  # subset -> chapters per speaker


PROFILES = {
    "tiny": Config(speakers={"train": 3, "dev": 1, "test": 1},
                   utterances={"train": 3, "dev": 2, "test": 2},
                   chapters={"train": 1, "dev": 1, "test": 1}),
    "default": Config(speakers={"train": 40, "dev": 6, "test": 6},
                      utterances={"train": 25, "dev": 15, "test": 15},
                      chapters={"train": 2, "dev": 1, "test": 1}),
}


def _ids(ctx: BuildContext, n: int, low: int, high: int, key: str) -> list[int]:
    rng = ctx.rng("librispeech-ids", key)
    return [int(x) for x in rng.choice(np.arange(low, high), size=n, replace=False)]


def write_lexicon(out_dir: Path, ctx: BuildContext, words=VOCABULARY) -> Path:
    path = out_dir / LEXICON
    lines = [f"{w.upper()}\t{ctx.word_phonemes(w)}\n" for w in sorted(words)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def build(out_dir: Path, ctx: BuildContext) -> None:
    cfg = PROFILES[ctx.profile]
    labels = LabelWriter()
    n_spk = sum(cfg.speakers[s] for s in SUBSETS)
    n_chap = sum(cfg.speakers[s] * cfg.chapters[s] for s in SUBSETS)
    spk_ids = _ids(ctx, n_spk, 100, 10_000, "speakers")
    chap_ids = _ids(ctx, n_chap, 1000, 1_000_000, "chapters")
    plan = []  # (subset, speaker, spk_id, chapter_id, utt)
    first = 0
    for subset in SUBSETS:
        for sp in ctx.pool.take(first, cfg.speakers[subset]):
            spk_id = spk_ids[sp.index]
            n_utt, n_ch = cfg.utterances[subset], cfg.chapters[subset]
            chapters = [chap_ids.pop(0) for _ in range(n_ch)]
            for u in range(n_utt):
                ch = chapters[u * n_ch // n_utt]
                plan.append((subset, sp, spk_id, ch, u))
        first += cfg.speakers[subset]
    # number utterances from 0 within each chapter
    counters: dict[tuple, int] = {}
    transcripts: dict[Path, list[str]] = {}
    with ctx.progress_bar(len(plan) + 1, "mini librispeech") as bar:
        for subset, sp, spk_id, ch, u in plan:
            idx = counters.setdefault((spk_id, ch), 0)
            counters[(spk_id, ch)] = idx + 1
            keys = ("librispeech", subset, sp.index, u)
            rng = ctx.rng(*keys)
            words = sentence(rng, 3, 12)
            question = words[0] in ("did", "where", "why", "when", "how")
            text = " ".join(words) + ("?" if question else ".")
            syn = ctx.engine.synth(text, sp.voice, words=words, seed=ctx.espeak_seed(*keys),
                                   with_ipa=True, **sp.prosody(rng)).trim()
            speech = N.fade(place_level(rng, syn.audio, 0.4, 0.8))
            lead = int(rng.uniform(0.1, 0.35) * SAMPLE_RATE)
            tail = int(rng.uniform(0.1, 0.35) * SAMPLE_RATE)
            n = lead + len(speech) + tail
            audio = N.set_level(N.make_noise(str(rng.choice(["white", "pink", "brown"])), rng, n),
                                float(rng.uniform(-75, -55)))
            audio[lead:lead + len(speech)] += speech
            utt_id = f"{spk_id}-{ch}-{idx:04d}"
            rel = f"{ROOT}/{subset}/{spk_id}/{ch}/{utt_id}.flac"
            write_flac(out_dir / rel, audio, ctx)
            trans = transcript(words)
            transcripts.setdefault(out_dir / ROOT / subset / str(spk_id) / str(ch)
                                   / f"{spk_id}-{ch}.trans.txt", []).append(f"{utt_id} {trans}\n")
            labels.add({
                "path": rel, "id": utt_id, "subset": subset, "speaker": str(spk_id),
                "chapter": str(ch), "text": trans,
                "words": [w.shifted(lead / SAMPLE_RATE).to_dict() for w in syn.words],
                "phonemes": " ".join(ctx.word_phonemes(w) for w in words),
                "ipa": " ".join(p.replace(" ", "") for p in syn.ipa or []),
                "voice": sp.voice.name,
                "duration": round(n / SAMPLE_RATE, 4),
            })
            bar.update()
        for path, lines in transcripts.items():
            path.write_text("".join(sorted(lines)))
        write_lexicon(out_dir, ctx)
        bar.update()
    labels.write(out_dir)
