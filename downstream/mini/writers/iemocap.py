"""Split ``iemocap``: acted emotional dialogs of generated speakers in the IEMOCAP layout (ER).

Layout written under the split directory ``<dir>`` (``ensure_split`` returns ``<dir>``)::

    <dir>/Session{1..5}/sentences/wav/<dialog>/<utterance>.wav     16 kHz mono 16-bit PCM
    <dir>/Session{1..5}/dialog/EmoEvaluation/<dialog>.txt          consensus labels
    <dir>/labels.jsonl                                             one record per .wav (extra)
    <dir>/COMPLETE                                                 build marker (written last)

* Five sessions.  IEMOCAP has one female and one male actor per session; the mini corpus has
  ``pairs`` (female, male) pairs per session (``default``: 3, ``tiny``: 1; pool indices from
  2000 on, scanned for genders) and each dialog is between the two speakers of one pair, so the
  file names keep IEMOCAP's ``F``/``M`` convention.  More speakers per session give the
  leave-one-session-out folds enough speakers to generalise from.
* Dialogs ``Ses0<s><F|M>_impro0<k>`` and ``Ses0<s><F|M>_script0<k>_<j>`` (the letter alternates
  between dialogs) of ``turns`` utterances alternating between the two speakers, named
  ``<dialog>_<F|M><nnn>`` (numbered per speaker within the dialog, as in IEMOCAP).
* Labels use IEMOCAP's codes (``neu hap exc ang sad fru sur fea dis oth xxx``). Each dialog has
  a dominant emotion (improvisations in IEMOCAP are elicited towards one), rotating over
  ``neu hap exc ang sad`` across dialogs and sessions; each utterance takes it with probability
  0.4, otherwise one drawn from a prior close to IEMOCAP's label counts (``PRIOR``), so about a
  quarter of the files carry labels SUPERB drops.
* Emotion is rendered as a speaking style relative to the speaker's habit: eSpeak pitch, rate,
  volume and pitch range offsets (``STYLES``: angry louder, faster and higher; sad quieter,
  slower, lower and flatter; happy/excited higher with a wider range...). Every utterance
  jitters each offset (pitch +-6, rate x0.9-1.1, volume +-5, range +-12) so that classes
  overlap, as offline-speech.md asks; ``xxx`` (no agreement) mixes two styles.  Levels are not
  normalised per utterance (loudness is part of the style): each speaker is scaled once so that
  a neutral calibration sentence has an RMS of ``NEUTRAL_DBFS`` (-28 dBFS), and each session
  has a gain of +-1 dB and its own SNR (25-35 dB) of one pink noise floor (one studio, as in
  IEMOCAP; per-session channel differences would let mean-pooled features learn the session).
* The text is a grammar sentence (:mod:`..grammar`) unrelated to the emotion.
* EmoEvaluation files follow IEMOCAP's format: a ``%`` header line, then per utterance a block
  ``[start - end]<TAB>utterance<TAB>label<TAB>[V, A, D]`` with made-up dialog times, three
  ``C-E<k>:`` evaluator lines and an ``A-E<k>:`` line, then a blank line.

labels.jsonl fields: ``path``, ``speaker`` (``Ses0<s><F|M><pair>``), ``session``, ``dialog``,
``emotion`` (the raw code), ``style`` (the rendered offsets), ``text``, ``words``, ``phonemes``,
``voice``, ``duration``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common import BuildContext, LabelWriter, write_wav
from ...audio import SAMPLE_RATE
from ..grammar import sentence
from .voxceleb1 import render

FIRST_SPEAKER = 2000
SESSIONS = 5
#: emotion code -> (pitch offset, rate factor, eSpeak volume, pitch-range offset)
STYLES = {
    "neu": (0, 1.00, 45, 0),
    "hap": (12, 1.08, 64, 25),
    "exc": (15, 1.12, 70, 28),
    "ang": (8, 1.16, 95, 8),
    "sad": (-14, 0.82, 25, -22),
    "fru": (3, 1.05, 74, -4),
    "sur": (18, 1.00, 68, 30),
    "fea": (14, 1.15, 45, 10),
    "dis": (-5, 0.92, 58, -8),
    "oth": (2, 1.00, 55, 5),
}
#: RMS level (dBFS) of a speaker's neutral calibration sentence; every speaker is scaled to it
NEUTRAL_DBFS = -28.0
CALIBRATION = "the old man saw a small boat near the bridge this morning"
#: label prior (roughly IEMOCAP's consensus label counts)
PRIOR = {"neu": 0.22, "hap": 0.06, "exc": 0.10, "ang": 0.11, "sad": 0.11, "fru": 0.18,
         "sur": 0.01, "fea": 0.01, "dis": 0.005, "oth": 0.005, "xxx": 0.18}
#: dominant emotions of dialogs
DOMINANT = ("neu", "hap", "exc", "ang", "sad")
_NAMES = {"neu": "Neutral", "hap": "Happiness", "exc": "Excited", "ang": "Anger", "sad": "Sadness",
          "fru": "Frustration", "sur": "Surprise", "fea": "Fear", "dis": "Disgust", "oth": "Other"}
_VAD = {"neu": (3.0, 2.5, 2.5), "hap": (4.0, 3.2, 3.0), "exc": (4.0, 3.6, 3.2), "ang": (1.8, 3.8, 3.8),
        "sad": (2.0, 2.0, 2.2), "fru": (2.0, 3.2, 3.2), "sur": (3.5, 3.6, 2.8), "fea": (2.0, 3.5, 2.0),
        "dis": (1.8, 3.0, 3.2), "oth": (3.0, 3.0, 3.0)}


@dataclass(frozen=True)
class Config:
    impro: int  # improvised dialogs per session
    script: int  # scripted dialogs per session
    turns: int  # utterances per dialog
    pairs: int  # (female, male) speaker pairs per session; IEMOCAP has one


PROFILES = {
    "tiny": Config(impro=1, script=1, turns=6, pairs=1),
    "default": Config(impro=6, script=6, turns=12, pairs=3),
}


def _speakers(ctx: BuildContext, pairs: int) -> list[list[tuple]]:
    """Per session, ``pairs`` (female, male) pool speakers, scanning the pool from FIRST_SPEAKER."""
    female, male, i = [], [], FIRST_SPEAKER
    n = SESSIONS * pairs
    while len(female) < n or len(male) < n:
        sp = ctx.pool[i]
        (female if sp.gender == "female" else male).append(sp)
        i += 1
    both = list(zip(female[:n], male[:n]))
    return [both[s * pairs:(s + 1) * pairs] for s in range(SESSIONS)]


def _style(rng: np.random.Generator, emotion: str, speaker) -> dict:
    if emotion == "xxx":  # no agreement: between two styles
        a, b = rng.choice(list(DOMINANT), 2, replace=False)
        w = rng.uniform(0.3, 0.7)
        base = tuple(w * x + (1 - w) * y for x, y in zip(STYLES[str(a)], STYLES[str(b)]))
    else:
        base = STYLES[emotion]
    dp, rate, vol, dr = base
    v = speaker.voice
    return {
        "pitch": int(np.clip(v.pitch + dp + rng.integers(-6, 7), 0, 99)),
        "rate": int(round(v.rate * rate * rng.uniform(0.9, 1.1))),
        "volume": int(np.clip(vol + rng.integers(-5, 6), 10, 100)),
        "pitch_range": int(np.clip(v.pitch_range + dr + rng.integers(-12, 13), 0, 99)),
    }


def _draw_label(rng: np.random.Generator, dominant: str) -> str:
    if rng.random() < 0.4:
        return dominant
    codes = list(PRIOR)
    p = np.array([PRIOR[c] for c in codes])
    return str(rng.choice(codes, p=p / p.sum()))


def _calibration(ctx: BuildContext, speaker) -> float:
    """Gain that brings the speaker's neutral-style calibration sentence to NEUTRAL_DBFS RMS."""
    syn = ctx.engine.synth(CALIBRATION + ".", speaker.voice, volume=STYLES["neu"][2],
                           seed=ctx.espeak_seed("iemocap-calibration", speaker.index)).trim()
    rms = float(np.sqrt(np.mean(np.square(syn.audio, dtype=np.float64))))
    return 10 ** (NEUTRAL_DBFS / 20) / max(rms, 1e-9)


def _block(start: float, end: float, utt: str, label: str, rng: np.random.Generator) -> str:
    vad = _VAD.get(label, (3.0, 3.0, 3.0))
    v, a, d = (float(np.clip(x + rng.choice([-0.5, 0.0, 0.0, 0.5]), 1, 5)) for x in vad)
    lines = [f"[{start:.4f} - {end:.4f}]\t{utt}\t{label}\t[{v:.4f}, {a:.4f}, {d:.4f}]"]
    for k in (1, 2, 3):
        name = _NAMES.get(label if label != "xxx" else str(rng.choice(list(_NAMES.keys()))), "Other")
        lines.append(f"C-E{k}:\t{name};\t()")
    lines.append(f"A-E{int(rng.integers(1, 4))}:\tval {int(round(v))}; act {int(round(a))}; dom  {int(round(d))};\t()")
    return "\n".join(lines) + "\n\n"


def build(out_dir: Path, ctx: BuildContext) -> None:
    cfg = PROFILES[ctx.profile]
    labels = LabelWriter()
    pairs = _speakers(ctx, cfg.pairs)
    total = SESSIONS * (cfg.impro + cfg.script) * cfg.turns
    with ctx.progress_bar(total, "mini iemocap") as bar:
        for s in range(1, SESSIONS + 1):
            srng = ctx.rng("iemocap-session", s)
            # one studio for all sessions (as IEMOCAP): same noise colour, no tilt, SNR per session
            chan = {"noise": "pink", "snr": float(srng.uniform(25, 35)), "tilt": 0.0, "peak": 0.0}
            gain = float(10 ** (srng.uniform(-1, 1) / 20))
            calib = {sp.index: _calibration(ctx, sp) for pair in pairs[s - 1] for sp in pair}
            sess = out_dir / f"Session{s}"
            dialogs = [f"Ses{s:02d}{'FM'[k % 2]}_impro{k + 1:02d}" for k in range(cfg.impro)]
            dialogs += [f"Ses{s:02d}{'MF'[k % 2]}_script{k + 1:02d}_{1 + k % 3}" for k in range(cfg.script)]
            for di, dialog in enumerate(dialogs):
                drng = ctx.rng("iemocap-dialog", s, di)
                female, male = pairs[s - 1][di % cfg.pairs]
                dominant = DOMINANT[(s + di) % len(DOMINANT)]
                counters = {"F": 0, "M": 0}
                t = float(drng.uniform(2, 8))
                blocks = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"]
                for turn in range(cfg.turns):
                    who = "FM"[(turn + di) % 2]
                    sp = female if who == "F" else male
                    utt = f"{dialog}_{who}{counters[who]:03d}"
                    counters[who] += 1
                    keys = ("iemocap", s, di, turn)
                    rng = ctx.rng(*keys)
                    label = _draw_label(rng, dominant)
                    style = _style(rng, label, sp)
                    words = sentence(rng, 4, 12)
                    question = words[0] in ("did", "where", "why", "when", "how")
                    text = " ".join(words) + ("?" if question else "!" if label in ("ang", "exc") else ".")
                    volume = style.pop("volume")
                    audio, timing = render(ctx, sp, words, text, keys, chan, rng, prosody=style,
                                           volume=volume, normalise=False)
                    audio = audio * (gain * calib[sp.index])
                    peak = float(np.max(np.abs(audio)))
                    if peak > 0.98:
                        audio = audio * (0.98 / peak)
                    write_wav(sess / "sentences" / "wav" / dialog / f"{utt}.wav", audio, ctx)
                    dur = len(audio) / SAMPLE_RATE
                    blocks.append(_block(t, t + dur, utt, label, rng))
                    t += dur + float(rng.uniform(0.2, 1.5))
                    labels.add({"path": f"Session{s}/sentences/wav/{dialog}/{utt}.wav",
                                "speaker": f"Ses{s:02d}{who}{di % cfg.pairs}", "session": s, "dialog": dialog, "emotion": label,
                                "style": dict(style, volume=volume), "text": " ".join(words), "words": timing,
                                "phonemes": " ".join(ctx.word_phonemes(w) for w in words),
                                "voice": sp.voice.name, "duration": round(dur, 4)})
                    bar.update()
                emo = sess / "dialog" / "EmoEvaluation"
                emo.mkdir(parents=True, exist_ok=True)
                (emo / f"{dialog}.txt").write_text("".join(blocks))
    labels.write(out_dir)
