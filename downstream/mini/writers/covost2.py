"""Split ``covost``: English speech with German translations in the CoVoST 2 layout (ST).

Layout written under the split directory ``<dir>`` (what the ST task's ``--data`` points at)::

    <dir>/covost_v2.en_de.tsv          path <TAB> translation <TAB> split   (CoVoST 2's release file)
    <dir>/en/validated.tsv             Common Voice: client_id path sentence up_votes down_votes
                                       age gender accent locale segment
    <dir>/en/clips/common_voice_en_<n>.mp3   16 kHz mono MP3 (the real clips are 48 kHz: the ST
                                       task needs a 16 kHz copy, see its docstring)
    <dir>/labels.jsonl / COMPLETE

* Sentences come from the parallel template grammar :func:`.grammar_intl.english_german`
  (English sentence, German translation; German nouns capitalised, articles and adjective
  endings agreeing), so translating needs the words *and* their grammar.
* Speakers are generated pool speakers (from ``FIRST_SPEAKER`` on), disjoint between train, dev
  and test; ``split`` is ``train`` for most training rows and ``train_covost`` for every fifth
  (CoVoST 2 uses both values for training). ``client_id`` is a 64-hex hash of the speaker.
* Audio: the English sentence with the speaker's voice and jittered prosody, trimmed, scaled to
  a random peak of 0.4-0.8, 0.1-0.3 s of lead-in and tail over a -75 to -60 dBFS noise floor,
  encoded as MP3 by libsndfile.

labels.jsonl fields: ``path``, ``speaker``, ``text`` (English), ``translation``, ``split``,
``words``, ``phonemes``, ``duration``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import noise as N
from ..common import BuildContext, LabelWriter, place_level
from ...audio import SAMPLE_RATE
from ..grammar_intl import english_german

FIRST_SPEAKER = 5300
SUBSETS = ("train", "dev", "test")
CV_COLUMNS = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent", "locale", "segment")


@dataclass(frozen=True)
class Config:
    speakers: dict      # subset -> speakers
    utterances: dict    # subset -> utterances per speaker


PROFILES = {
    "tiny": Config(speakers={"train": 3, "dev": 1, "test": 1}, utterances={"train": 4, "dev": 3, "test": 3}),
    "default": Config(speakers={"train": 24, "dev": 4, "test": 4}, utterances={"train": 40, "dev": 15, "test": 15}),
}


def write_mp3(path: Path, audio: np.ndarray, ctx: BuildContext | None = None) -> None:
    """16 kHz mono MP3 (MPEG layer III through libsndfile); ``audio`` float in [-1, 1]."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if not np.isfinite(peak) or peak > 1.0:
        raise ValueError(f"{path}: audio peak {peak:.3f} outside [-1, 1] (would clip)")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio, dtype=np.float32), SAMPLE_RATE, format="MP3", subtype="MPEG_LAYER_III")
    if ctx is not None:
        ctx.count(len(audio))


def client_id(seed: int, speaker_index: int) -> str:
    return hashlib.sha256(f"mini-cv-client-{seed}-{speaker_index}".encode()).hexdigest()


def build(out_dir: Path, ctx: BuildContext) -> None:
    cfg = PROFILES[ctx.profile]
    labels = LabelWriter()
    covost, cv = [], []
    clip = 1000 + int(ctx.rng("covost-first-clip").integers(0, 10_000))
    first = FIRST_SPEAKER
    total = sum(cfg.speakers[s] * cfg.utterances[s] for s in SUBSETS)
    with ctx.progress_bar(total, "mini covost") as bar:
        for subset in SUBSETS:
            for sp in ctx.pool.take(first, cfg.speakers[subset]):
                for u in range(cfg.utterances[subset]):
                    keys = ("covost", subset, sp.index, u)
                    rng = ctx.rng(*keys)
                    english, german = english_german(rng)
                    words = english[:-1].lower().split()
                    syn = ctx.engine.synth(english, sp.voice, words=words, seed=ctx.espeak_seed(*keys),
                                           **sp.prosody(rng)).trim()
                    speech = N.fade(place_level(rng, syn.audio, 0.4, 0.8))
                    lead, tail = (int(rng.uniform(0.1, 0.3) * SAMPLE_RATE) for _ in range(2))
                    audio = N.set_level(N.make_noise(str(rng.choice(["white", "pink", "brown"])), rng,
                                                     lead + len(speech) + tail), float(rng.uniform(-75, -60)))
                    audio[lead:lead + len(speech)] += speech
                    name = f"common_voice_en_{clip}.mp3"
                    clip += 1 + int(rng.integers(0, 3))
                    write_mp3(out_dir / "en" / "clips" / name, audio, ctx)
                    split = subset if subset != "train" or u % 5 else "train_covost"
                    covost.append((name, german, split))
                    gender = "female" if sp.gender == "female" else "male"
                    cv.append((client_id(ctx.seed, sp.index), name, english, "2", "0", "", gender, "us", "en", ""))
                    labels.add({"path": f"en/clips/{name}", "speaker": sp.key, "text": english, "translation": german,
                                "split": split, "words": [w.shifted(lead / SAMPLE_RATE).to_dict() for w in syn.words],
                                "phonemes": " ".join(ctx.word_phonemes(w) for w in words),
                                "duration": round(len(audio) / SAMPLE_RATE, 4)})
                    bar.update()
            first += cfg.speakers[subset]
    (out_dir / "covost_v2.en_de.tsv").write_text(
        "path\ttranslation\tsplit\n" + "".join(f"{p}\t{t}\t{s}\n" for p, t, s in sorted(covost)), encoding="utf-8")
    (out_dir / "en" / "validated.tsv").write_text(
        "\t".join(CV_COLUMNS) + "\n" + "".join("\t".join(r) + "\n" for r in sorted(cv, key=lambda r: r[1])),
        encoding="utf-8")
    labels.write(out_dir)
