"""Split ``voicebank``: noisy/clean sentence pairs in the VoiceBank-DEMAND 16 kHz layout (SE).

Layout written under the split directory ``<dir>`` (what the SE task's ``--data`` points at)::

    <dir>/clean_trainset_28spk_wav_16k/<spk>_<nnn>.wav    clean speech
    <dir>/noisy_trainset_28spk_wav_16k/<spk>_<nnn>.wav    the same speech plus noise
    <dir>/clean_testset_wav_16k/<spk>_<nnn>.wav
    <dir>/noisy_testset_wav_16k/<spk>_<nnn>.wav
    <dir>/trainset_28spk_txt/<spk>_<nnn>.txt              the sentence (as the corpus ships it)
    <dir>/testset_txt/<spk>_<nnn>.txt
    <dir>/labels.jsonl                                    one record per noisy file (extra)
    <dir>/COMPLETE

* Speakers carry VoiceBank's names: the training set uses the real training-speaker ids in the
  corpus's order (``p226``, ``p287`` first: the SE task's default dev speakers), the test set
  ``p232`` and ``p257``; their voices are generated pool speakers (indices from
  ``FIRST_SPEAKER``), disjoint between the sets.
* Each utterance is one grammar sentence (3-12 words) with the speaker's voice and jittered
  prosody, trimmed to its words with 0.1-0.3 s of lead-in and tail, scaled to a random peak of
  0.3-0.6 over a -80 dBFS white floor (the clean file).
* Noise: white, pink, brown or babble (``babble_talkers`` generated talkers from a far region of
  the pool, one babble stream per set from which each file cuts a random stretch), mixed at
  VoiceBank-DEMAND's SNRs: 0 / 5 / 10 / 15 dB in training, 2.5 / 7.5 / 12.5 / 17.5 dB in test.
  A mixture whose peak would exceed 0.95 is scaled down together with its clean file.

labels.jsonl fields: ``path`` (noisy file), ``clean``, ``set``, ``speaker``, ``text``, ``words``,
``phonemes``, ``noise``, ``snr_db``, ``duration``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import noise as N
from ..common import BuildContext, LabelWriter, place_level, write_wav
from ...audio import SAMPLE_RATE
from ..grammar import sentence

FIRST_SPEAKER = 5000
BABBLE_FIRST = 11_000
#: VoiceBank-DEMAND's 28 training speakers in the SpeechBrain/s3prl preparation's order
TRAIN_NAMES = ("p226 p287 p227 p228 p230 p231 p233 p236 p239 p243 p244 p250 p254 p256 p258 p259 p267 "
               "p268 p269 p270 p273 p274 p276 p277 p278 p279 p282 p286").split()
TEST_NAMES = ("p232", "p257")
SNRS = {"train": (0.0, 5.0, 10.0, 15.0), "test": (2.5, 7.5, 12.5, 17.5)}
NOISES = ("white", "pink", "brown", "babble")
FOLDERS = {"train": "trainset_28spk", "test": "testset"}


@dataclass(frozen=True)
class Config:
    train_speakers: int      # including the two dev speakers (p226, p287)
    train_utterances: int    # per training speaker
    test_utterances: int     # per test speaker (2 test speakers)
    babble_talkers: int = 5
    babble_seconds: float = 30.0


PROFILES = {
    "tiny": Config(train_speakers=4, train_utterances=3, test_utterances=2, babble_talkers=2, babble_seconds=6.0),
    "default": Config(train_speakers=14, train_utterances=20, test_utterances=15),
}


def _babble(ctx: BuildContext, cfg: Config, key: str) -> np.ndarray:
    def utter(talker: int, k: int) -> np.ndarray:
        sp = ctx.pool[BABBLE_FIRST + talker + (100 if key == "test" else 0)]
        rng = ctx.rng("voicebank-babble", key, talker, k)
        words = sentence(rng)
        return ctx.engine.synth(" ".join(words) + ".", sp.voice, words=words,
                                seed=ctx.espeak_seed("voicebank-babble", key, talker, k), **sp.prosody(rng)).audio

    return N.babble(utter, cfg.babble_talkers, int(cfg.babble_seconds * SAMPLE_RATE), ctx.rng("voicebank-bmix", key))


def build(out_dir: Path, ctx: BuildContext) -> None:
    cfg = PROFILES[ctx.profile]
    if not 2 < cfg.train_speakers <= len(TRAIN_NAMES):
        raise ValueError(f"voicebank profile {ctx.profile}: train_speakers must be 3..{len(TRAIN_NAMES)}")
    labels = LabelWriter()
    plan = []
    for k, name in enumerate(TRAIN_NAMES[:cfg.train_speakers]):
        plan += [("train", name, FIRST_SPEAKER + k, u) for u in range(cfg.train_utterances)]
    for k, name in enumerate(TEST_NAMES):
        plan += [("test", name, FIRST_SPEAKER + 50 + k, u) for u in range(cfg.test_utterances)]
    with ctx.progress_bar(len(plan) + 2, "mini voicebank") as bar:
        babble = {s: _babble(ctx, cfg, s) for s in ("train", "test")}
        bar.update(2)
        for subset, name, index, u in plan:
            sp = ctx.pool[index]
            keys = ("voicebank", subset, name, u)
            rng = ctx.rng(*keys)
            words = sentence(rng, 3, 12)
            syn = ctx.engine.synth(" ".join(words) + ".", sp.voice, words=words, seed=ctx.espeak_seed(*keys),
                                   **sp.prosody(rng)).trim()
            speech = N.fade(place_level(rng, syn.audio, 0.3, 0.6))
            lead, tail = (int(rng.uniform(0.1, 0.3) * SAMPLE_RATE) for _ in range(2))
            n = lead + len(speech) + tail
            clean = N.set_level(N.white(rng, n), -80.0)
            clean[lead:lead + len(speech)] += speech
            kind = str(rng.choice(NOISES))
            snr = float(rng.choice(SNRS[subset]))
            if kind == "babble":
                start = int(rng.integers(0, len(babble[subset]) - n)) if len(babble[subset]) > n else 0
                noise = np.resize(babble[subset][start:], n)
            else:
                noise = N.make_noise(kind, rng, n)
            noisy = N.mix_at_snr(clean, noise, snr)
            peak = float(np.max(np.abs(noisy)))
            if peak > 0.95:
                clean, noisy = clean * (0.95 / peak), noisy * (0.95 / peak)
            uid = f"{name}_{u + 1:03d}"
            folder = FOLDERS[subset]
            write_wav(out_dir / f"clean_{folder}_wav_16k" / f"{uid}.wav", clean)
            write_wav(out_dir / f"noisy_{folder}_wav_16k" / f"{uid}.wav", noisy, ctx)
            text = " ".join(words).capitalize() + "."
            txt = out_dir / f"{folder}_txt" / f"{uid}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text(text + "\n", encoding="utf-8")
            labels.add({
                "path": f"noisy_{folder}_wav_16k/{uid}.wav", "clean": f"clean_{folder}_wav_16k/{uid}.wav",
                "set": subset, "speaker": name, "text": text,
                "words": [w.shifted(lead / SAMPLE_RATE).to_dict() for w in syn.words],
                "phonemes": " ".join(ctx.word_phonemes(w) for w in words), "noise": kind, "snr_db": snr,
                "duration": round(n / SAMPLE_RATE, 4),
            })
            bar.update()
    labels.write(out_dir)
