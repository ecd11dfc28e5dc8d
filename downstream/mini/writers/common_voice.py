"""Split ``commonvoice``: Spanish and Mandarin speech in the Common Voice layout (OOD-ASR).

Layout written under the split directory ``<dir>`` (what the OOD-ASR task's ``--data`` points
at; ``task.language`` picks the language folder)::

    <dir>/<lang>/{train,dev,test,validated}.tsv   client_id path sentence up_votes down_votes age
                                                  gender accent locale segment
    <dir>/<lang>/clips/common_voice_<lang>_<n>.mp3  16 kHz mono MP3
    <dir>/labels.jsonl / COMPLETE

with ``<lang>`` ``es`` (Spanish) and ``zh-CN`` (Mandarin). ``validated.tsv`` lists every clip.

* Sentences: the templates of :mod:`..grammar_intl` (:func:`~..grammar_intl.spanish` with
  gender agreement, accents, ``¿...?``; :func:`~..grammar_intl.mandarin` in simplified
  characters), written as Common Voice prompts are (capitalised, with punctuation).
* Voices: eSpeak NG's Spanish (``es``) and Mandarin (``cmn``) voices with the generated speaker
  variants of the pool (from ``FIRST_SPEAKER`` on, disjoint between languages and subsets). They
  run from a private data folder holding the English data plus ``es_dict``/``cmn_dict`` and their
  language files (``<English private folder>-intl``, created on first use).
* Audio: trimmed speech scaled to a random peak of 0.4-0.8, 0.1-0.3 s of lead-in and tail over a
  -75 to -60 dBFS noise floor, MP3 through libsndfile.

labels.jsonl fields: ``path``, ``language``, ``speaker``, ``text``, ``subset``, ``words``,
``phonemes`` (empty: the lexicon is English), ``duration``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .. import noise as N
from ..common import BuildContext, LabelWriter, place_level
from ...audio import SAMPLE_RATE
from ...fileio import atomic_write_bytes
from ..espeak import espeak_data_path, get_engine, prepare_data_dir
from ..grammar_intl import mandarin, spanish
from .covost2 import CV_COLUMNS, client_id, write_mp3

FIRST_SPEAKER = 5400
SUBSETS = ("train", "dev", "test")
#: Common Voice language code -> (eSpeak voice language, sentence generator, data files to add)
LANGUAGES = {
    "es": ("es", spanish, ("es_dict", "lang/roa/es")),
    "zh-CN": ("cmn", mandarin, ("cmn_dict", "lang/sit/cmn")),
}


@dataclass(frozen=True)
class Config:
    speakers: dict      # subset -> speakers (per language)
    utterances: dict    # subset -> utterances per speaker


PROFILES = {
    "tiny": Config(speakers={"train": 2, "dev": 1, "test": 1}, utterances={"train": 4, "dev": 2, "test": 2}),
    "default": Config(speakers={"train": 16, "dev": 3, "test": 3}, utterances={"train": 25, "dev": 12, "test": 12}),
}


def intl_engine(ctx: BuildContext):
    """An engine whose private data folder also holds the Spanish and Mandarin data."""
    base = Path(ctx.engine.data_dir)
    target = base.with_name(base.name + "-intl")
    prepare_data_dir(target)
    src = espeak_data_path()
    for _, _, files in LANGUAGES.values():
        for rel in files:
            dest = target / rel
            if not dest.is_file():
                dest.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(dest, (src / rel).read_bytes())
    return get_engine(target)


def build(out_dir: Path, ctx: BuildContext) -> None:
    cfg = PROFILES[ctx.profile]
    engine = intl_engine(ctx)
    labels = LabelWriter()
    first = FIRST_SPEAKER
    total = len(LANGUAGES) * sum(cfg.speakers[s] * cfg.utterances[s] for s in SUBSETS)
    with ctx.progress_bar(total, "mini commonvoice") as bar:
        for lang, (voice_lang, generate, _) in LANGUAGES.items():
            rows = {s: [] for s in SUBSETS}
            clip = 10_000 + int(ctx.rng("cv-first-clip", lang).integers(0, 100_000))
            for subset in SUBSETS:
                for sp in ctx.pool.take(first, cfg.speakers[subset]):
                    voice = dataclasses.replace(sp.voice, language=voice_lang)
                    for u in range(cfg.utterances[subset]):
                        keys = ("commonvoice", lang, subset, sp.index, u)
                        rng = ctx.rng(*keys)
                        text = generate(rng)
                        words = [ch for ch in text if ch not in "。？"] if lang == "zh-CN" else \
                            [w.strip("¿?.,") for w in text.split()]
                        syn = engine.synth(text, voice, words=words, seed=ctx.espeak_seed(*keys),
                                           **sp.prosody(rng)).trim()
                        speech = N.fade(place_level(rng, syn.audio, 0.4, 0.8))
                        lead, tail = (int(rng.uniform(0.1, 0.3) * SAMPLE_RATE) for _ in range(2))
                        audio = N.set_level(N.make_noise(str(rng.choice(["white", "pink", "brown"])), rng,
                                                         lead + len(speech) + tail), float(rng.uniform(-75, -60)))
                        audio[lead:lead + len(speech)] += speech
                        name = f"common_voice_{lang}_{clip}.mp3"
                        clip += 1 + int(rng.integers(0, 3))
                        write_mp3(out_dir / lang / "clips" / name, audio, ctx)
                        gender = "female" if sp.gender == "female" else "male"
                        rows[subset].append((client_id(ctx.seed, sp.index), name, text, "2", "0", "", gender, "",
                                             lang, ""))
                        labels.add({"path": f"{lang}/clips/{name}", "language": lang, "speaker": sp.key, "text": text,
                                    "subset": subset, "phonemes": "",
                                    "words": [w.shifted(lead / SAMPLE_RATE).to_dict() for w in syn.words],
                                    "duration": round(len(audio) / SAMPLE_RATE, 4)})
                        bar.update()
                first += cfg.speakers[subset]
            header = "\t".join(CV_COLUMNS) + "\n"
            for subset, r in list(rows.items()) + [("validated", [x for s in SUBSETS for x in rows[s]])]:
                (out_dir / lang / f"{subset}.tsv").write_text(
                    header + "".join("\t".join(x) + "\n" for x in sorted(r, key=lambda x: x[1])), encoding="utf-8")
    labels.write(out_dir)
