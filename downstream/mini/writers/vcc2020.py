"""Split ``vcc2020``: parallel sentences of source and target speakers in the VCC2020 layout (VC).

Layout written under the split directory ``<dir>`` (the VC task's ``--data`` points at it or at
``<dir>/vcc2020``)::

    <dir>/vcc2020/{SEF1,SEF2,SEM1,SEM2}/E1<nnnn>.wav   source speakers, training sentences
    <dir>/vcc2020/{SEF1,SEF2,SEM1,SEM2}/E3<nnnn>.wav   source speakers, evaluation sentences
    <dir>/vcc2020/TEF1/E1<nnnn>.wav                    target speaker, training sentences
    <dir>/vcc2020/TEF1/E3<nnnn>.wav                    target speaker, the evaluation sentences (references)
    <dir>/vcc2020/prompts/Eng_transcriptions.txt       "<number> <Sentence.>" per line
    <dir>/labels.jsonl / COMPLETE

* VCC2020 task 1's speaker names: SEF = source English female, SEM = source English male,
  TEF1 = the one target (female). Each is a generated pool speaker of that gender (the first
  ones from index ``FIRST_SPEAKER`` on).
* Every speaker reads the same sentences (parallel data): ``train_sentences`` training sentences
  ``E10001...`` and ``eval_sentences`` evaluation sentences ``E30001...``, grammar sentences of
  4-10 words with the speaker's voice and jittered prosody, trimmed, scaled to a random peak of
  0.4-0.7, with 0.1-0.25 s of lead-in and tail over a -75 dBFS floor.

labels.jsonl fields: ``path``, ``speaker``, ``sentence`` (E-number), ``text``, ``words``,
``phonemes``, ``duration``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import noise as N
from ..common import BuildContext, LabelWriter, place_level, write_wav
from ...audio import SAMPLE_RATE
from ..grammar import sentence

FIRST_SPEAKER = 5200
ROOT = "vcc2020"
SPEAKERS = (("SEF1", "female"), ("SEF2", "female"), ("SEM1", "male"), ("SEM2", "male"), ("TEF1", "female"))


@dataclass(frozen=True)
class Config:
    train_sentences: int
    eval_sentences: int


PROFILES = {
    "tiny": Config(train_sentences=6, eval_sentences=2),
    "default": Config(train_sentences=70, eval_sentences=6),
}


def _pick_speakers(ctx: BuildContext):
    out, i, used = {}, FIRST_SPEAKER, set()
    for name, gender in SPEAKERS:
        while ctx.pool[i].gender != gender or i in used:
            i += 1
        out[name] = ctx.pool[i]
        used.add(i)
        i = FIRST_SPEAKER
    return out


def build(out_dir: Path, ctx: BuildContext) -> None:
    cfg = PROFILES[ctx.profile]
    labels = LabelWriter()
    speakers = _pick_speakers(ctx)
    sentences = []
    for k in range(cfg.train_sentences):
        sentences.append((f"E1{k + 1:04d}", sentence(ctx.rng("vcc2020-text", "train", k), 4, 10)))
    for k in range(cfg.eval_sentences):
        sentences.append((f"E3{k + 1:04d}", sentence(ctx.rng("vcc2020-text", "eval", k), 4, 10)))
    prompts = out_dir / ROOT / "prompts" / "Eng_transcriptions.txt"
    prompts.parent.mkdir(parents=True, exist_ok=True)
    prompts.write_text("".join(f"{num[1:]} {' '.join(w).capitalize()}.\n" for num, w in sentences), encoding="utf-8")
    with ctx.progress_bar(len(sentences) * len(speakers), "mini vcc2020") as bar:
        for name, sp in speakers.items():
            for num, words in sentences:
                keys = ("vcc2020", name, num)
                rng = ctx.rng(*keys)
                text = " ".join(words).capitalize() + "."
                syn = ctx.engine.synth(" ".join(words) + ".", sp.voice, words=words, seed=ctx.espeak_seed(*keys),
                                       **sp.prosody(rng)).trim()
                speech = N.fade(place_level(rng, syn.audio, 0.4, 0.7))
                lead, tail = (int(rng.uniform(0.1, 0.25) * SAMPLE_RATE) for _ in range(2))
                audio = N.set_level(N.white(rng, lead + len(speech) + tail), -75.0)
                audio[lead:lead + len(speech)] += speech
                rel = f"{ROOT}/{name}/{num}.wav"
                write_wav(out_dir / rel, audio, ctx)
                labels.add({"path": rel, "speaker": name, "sentence": num, "text": text, "voice": sp.voice.name,
                            "words": [w.shifted(lead / SAMPLE_RATE).to_dict() for w in syn.words],
                            "phonemes": " ".join(ctx.word_phonemes(w) for w in words),
                            "duration": round(len(audio) / SAMPLE_RATE, 4)})
                bar.update()
    labels.write(out_dir)
