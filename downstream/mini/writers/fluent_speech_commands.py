"""Split ``fluent_commands``: spoken smart-home commands in the Fluent Speech Commands layout (IC).

Layout written under the split directory ``<dir>`` (``ensure_split`` returns ``<dir>``)::

    <dir>/data/train_data.csv     header ",path,speakerId,transcription,action,object,location"
    <dir>/data/valid_data.csv
    <dir>/data/test_data.csv
    <dir>/wavs/speakers/<speakerId>/<uuid>.wav     16 kHz mono 16-bit PCM
    <dir>/labels.jsonl                             one record per .wav (extra)
    <dir>/COMPLETE                                 build marker (written last)

* Intents: the 31 (action, object, location) combinations of FSC's label space (6 actions:
  activate, bring, change language, deactivate, decrease, increase; 14 objects incl. ``none``;
  4 locations incl. ``none``), each with 3-6 phrasings written for this corpus in FSC's style
  ("turn on the lights in the kitchen", "kitchen lights on", ...): ``PHRASES``.
* Speakers: ``train``/``valid``/``test`` generated speakers, disjoint (pool indices 3000 on), with
  FSC-style 16-character ids.  Every speaker says each phrasing with probability ``say_prob``
  (at least one phrasing of every intent), ``takes`` times.
* Each file: the phrase with the speaker's voice and jittered prosody, scaled to a peak of
  0.5-0.66, 0.05-0.15 s of lead-in and tail, a mild speaker-specific channel (white or pink
  noise at 25-40 dB SNR, spectral tilt +-0.1).  File names are random UUIDs (as in FSC).  The
  channel and level are kept mild on purpose: the SUPERB head is linear in the mean of the
  features, and speaker and channel offsets already make the task hard for FBANK (SUPERB's
  FBANK IC accuracy is 9.6 %).
* CSV rows: the pandas-style index, ``path`` (relative to ``<dir>``), ``speakerId``,
  ``transcription`` (the phrase, capitalised), ``action``, ``object``, ``location``.

labels.jsonl fields: ``path``, ``speaker``, ``subset``, ``action``, ``object``, ``location``,
``text``, ``words``, ``phonemes``, ``voice``, ``duration``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common import BuildContext, LabelWriter, write_wav
from ...audio import SAMPLE_RATE
from .voxceleb1 import render

FIRST_SPEAKER = 3000
LOCATIONS = ("kitchen", "bedroom", "washroom")
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _with_locations(action: str, obj: str, plain: list[str], located: list[str]) -> dict:
    """Phrases for ``obj`` without a location and with each of the three locations."""
    out = {(action, obj, "none"): plain}
    for loc in LOCATIONS:
        out[(action, obj, loc)] = [p.format(loc=loc) for p in located]
    return out


def _phrases() -> dict[tuple[str, str, str], list[str]]:
    p: dict[tuple[str, str, str], list[str]] = {}
    p.update(_with_locations("activate", "lights", ["turn on the lights", "switch on the lights", "lights on",
                                                    "switch the lights on"],
                             ["turn on the lights in the {loc}", "switch on the {loc} lights", "{loc} lights on",
                              "lights on in the {loc}"]))
    p.update(_with_locations("deactivate", "lights", ["turn off the lights", "switch off the lights", "lights off",
                                                      "switch the lights off"],
                             ["turn off the lights in the {loc}", "switch off the {loc} lights", "{loc} lights off",
                              "lights off in the {loc}"]))
    p.update(_with_locations("increase", "heat", ["turn up the heat", "increase the temperature", "make it warmer",
                                                  "heat up"],
                             ["turn up the heat in the {loc}", "increase the temperature in the {loc}",
                              "make the {loc} warmer", "{loc} heat up"]))
    p.update(_with_locations("decrease", "heat", ["turn down the heat", "decrease the temperature",
                                                  "make it cooler", "too hot"],
                             ["turn down the heat in the {loc}", "decrease the temperature in the {loc}",
                              "make the {loc} cooler", "the {loc} is too hot"]))
    p[("activate", "lamp", "none")] = ["turn on the lamp", "switch on the lamp", "lamp on"]
    p[("deactivate", "lamp", "none")] = ["turn off the lamp", "switch off the lamp", "lamp off"]
    p[("activate", "music", "none")] = ["play the music", "start the music", "put on some music", "music on"]
    p[("deactivate", "music", "none")] = ["stop the music", "pause the music", "turn off the music", "music off"]
    p[("increase", "volume", "none")] = ["turn up the volume", "increase the volume", "louder please",
                                         "make it louder", "volume up"]
    p[("decrease", "volume", "none")] = ["turn down the volume", "decrease the volume", "quieter please",
                                         "make it quieter", "volume down"]
    p[("change language", "none", "none")] = ["change the language", "switch the language", "language settings",
                                              "use another language"]
    for lang in ("Chinese", "English", "German", "Korean"):
        low = lang.lower()
        p[("change language", lang, "none")] = [f"switch to {low}", f"set the language to {low}",
                                                f"{low} please", f"change the language to {low}"]
    for obj, article in (("newspaper", "the newspaper"), ("socks", "my socks"), ("shoes", "my shoes"),
                         ("juice", "some juice")):
        p[("bring", obj, "none")] = [f"bring me {article}", f"get me {article}", f"fetch {article}",
                                     f"i need {article}"]
    return p


#: (action, object, location) -> phrasings
PHRASES: dict[tuple[str, str, str], list[str]] = _phrases()


@dataclass(frozen=True)
class Config:
    speakers: dict  # subset -> number of speakers
    say_prob: float
    takes: int


PROFILES = {
    "tiny": Config(speakers={"train": 2, "valid": 1, "test": 1}, say_prob=0.05, takes=1),
    "default": Config(speakers={"train": 45, "valid": 6, "test": 8}, say_prob=0.3, takes=1),
}
SUBSETS = ("train", "valid", "test")


def _channel(rng: np.random.Generator) -> dict:
    """A speaker's recording condition: mild (FSC was recorded by crowd workers at home)."""
    return {"noise": str(rng.choice(["white", "pink"])), "snr": float(rng.uniform(25, 40)),
            "tilt": float(rng.uniform(-0.1, 0.1)), "peak": float(rng.uniform(0.55, 0.6))}


def _speaker_id(rng: np.random.Generator) -> str:
    return "".join(_ID_CHARS[i] for i in rng.integers(0, len(_ID_CHARS), 16))


def _uuid(rng: np.random.Generator) -> str:
    h = "".join(f"{int(b):02x}" for b in rng.integers(0, 256, 16))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def build(out_dir: Path, ctx: BuildContext) -> None:
    cfg = PROFILES[ctx.profile]
    labels = LabelWriter()
    intents = sorted(PHRASES)
    plan = []  # (subset, pool index, speaker id, intent, phrase index, take)
    first = FIRST_SPEAKER
    used_ids: set[str] = set()
    for subset in SUBSETS:
        for k in range(cfg.speakers[subset]):
            index = first + k
            rng = ctx.rng("fluent-plan", index)
            spk = _speaker_id(rng)
            while spk in used_ids:
                spk = _speaker_id(rng)
            used_ids.add(spk)
            for intent in intents:
                phrases = PHRASES[intent]
                said = [i for i in range(len(phrases)) if rng.random() < cfg.say_prob]
                if not said:
                    said = [int(rng.integers(0, len(phrases)))]
                plan += [(subset, index, spk, intent, i, t) for i in said for t in range(cfg.takes)]
        first += cfg.speakers[subset]
    rows: dict[str, list[list[str]]] = {s: [] for s in SUBSETS}
    with ctx.progress_bar(len(plan), "mini fluent_commands") as bar:
        for subset, index, spk, intent, pi, take in plan:
            sp = ctx.pool[index]
            chan = _channel(ctx.rng("fluent-channel", index))
            keys = ("fluent_commands", index, intent, pi, take)
            rng = ctx.rng(*keys)
            phrase = PHRASES[intent][pi]
            words = phrase.split()
            audio, timing = render(ctx, sp, words, phrase + ".", keys, chan, rng, pad=(0.05, 0.15))
            rel = f"wavs/speakers/{spk}/{_uuid(rng)}.wav"
            write_wav(out_dir / rel, audio, ctx)
            transcription = phrase[0].upper() + phrase[1:]
            rows[subset].append([rel, spk, transcription, *intent])
            labels.add({"path": rel, "speaker": spk, "subset": subset, "action": intent[0], "object": intent[1],
                        "location": intent[2], "text": phrase, "words": timing,
                        "phonemes": " ".join(ctx.word_phonemes(w) for w in words),
                        "voice": sp.voice.name, "duration": round(len(audio) / SAMPLE_RATE, 4)})
            bar.update()
    data = out_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    for subset in SUBSETS:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["", "path", "speakerId", "transcription", "action", "object", "location"])
        for i, row in enumerate(rows[subset]):
            writer.writerow([i, *row])
        (data / f"{subset}_data.csv").write_text(buf.getvalue())
    labels.write(out_dir)
