"""Split ``speech_commands``: keyword spotting data in the Speech Commands v0.01 layout.

Layout written under the split directory ``<dir>`` (``ensure_split`` returns ``<dir>``)::

    <dir>/speech_commands_v0.01/<word>/<hash>_nohash_<n>.wav      all 30 words, train+dev+test
    <dir>/speech_commands_v0.01/validation_list.txt              word/<hash>_nohash_<n>.wav
    <dir>/speech_commands_v0.01/testing_list.txt                 word/<hash>_nohash_<n>.wav
    <dir>/speech_commands_v0.01/_background_noise_/*.wav         long noise recordings + README.md
    <dir>/speech_commands_test_set_v0.01/<label>/<hash>_nohash_<n>.wav
    <dir>/labels.jsonl                                           one record per .wav (extra)
    <dir>/COMPLETE                                               build marker (written last)

* Clips: 16 kHz mono 16-bit PCM WAV of exactly 1 s (16,000 samples).  ``<hash>`` is the 8-hex
  key of the generated speaker (like the real corpus, one hash = one speaker), ``<n>`` the take
  (0, 1, ...) of that word by that speaker.
* Words: the 10 SUPERB commands (yes no up down left right on off stop go) and the 20 other
  Speech Commands words (bed bird cat dog eight five four happy house marvin nine one seven sheila
  six three tree two wow zero).  Every speaker says each command ``takes`` times and each other
  word ``takes`` times with probability ``unknown_prob`` (0.75 by default, so about 60 % of the
  clips are "unknown" words, as in the real v0.01 corpus).
* Speakers are disjoint between train (not listed), ``validation_list.txt`` and
  ``testing_list.txt`` (pool indices ``0..train-1``, then dev, then test).
* Each clip: the word said with the speaker's voice, jittered rate/pitch/range and a random
  ending (``.``, ``!``, ``?``), trimmed, in 30 % of clips passed through a synthetic room
  response (RT60 0.15-0.6 s), scaled to a random peak in 0.25-0.7, faded (5 ms) and placed at a
  uniformly random offset inside the second, over a white/pink/brown noise floor at -72 to
  -50 dBFS RMS; 60 % of clips also get white/pink/brown/water/hum/babble noise at 0-25 dB SNR
  (relative to the word).  A mixture peaking above 0.95 is scaled down (never clipped).
* ``_background_noise_``: ``white_noise``, ``pink_noise``, ``brown_noise``, ``running_tap``
  (water-like), ``machine_hum`` (hum + motor whir) and ``babble`` (6 generated talkers), each
  ``noise_seconds`` long at -34 to -22 dBFS RMS.  Trainers cut their ``_silence_`` examples
  from these.
* The test archive (``speech_commands_test_set_v0.01``) is drawn from the ``testing_list`` clips
  as in the real corpus: the 10 command folders hold the test speakers' command clips (same
  file names), ``_unknown_`` an equal-size random sample of their other-word clips, and
  ``_silence_`` the same number of 1 s generated noise clips (white/pink/brown/water/hum/babble
  cut, -70 to -25 dBFS RMS; named ``<random hash>_nohash_0.wav``).

labels.jsonl fields: ``path``, ``speaker`` (hash; ``""`` for noise), ``word`` / ``label``
(``_silence_`` and ``_noise_`` for noise), ``subset`` (train/validation/testing/test_set/
background), ``text``, ``words`` (timing of the word inside the clip), ``phonemes`` (IPA, stress
stripped), ``voice``, ``duration``, and for processed clips ``rt60``, ``noise``, ``snr_db``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import noise as N
from ..common import BuildContext, LabelWriter, place_level, write_wav
from ...audio import SAMPLE_RATE
from ..grammar import sentence

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin",
                 "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero")
TRAIN_DIR = "speech_commands_v0.01"
TEST_DIR = "speech_commands_test_set_v0.01"
NOISE_DIR = "_background_noise_"
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
CLIP = SAMPLE_RATE  # exactly one second
BACKGROUND = ("white_noise", "pink_noise", "brown_noise", "running_tap", "machine_hum", "babble")
_FILE_NOISE = {"white_noise": "white", "pink_noise": "pink", "brown_noise": "brown",
               "running_tap": "running_water", "machine_hum": "hum"}


@dataclass(frozen=True)
class Config:
    train_speakers: int
    dev_speakers: int
    test_speakers: int
    takes: int
    unknown_prob: float
    noise_seconds: float
    babble_talkers: int = 6
    noisy_prob: float = 0.6  # share of clips with added noise at snr_db
    snr_db: tuple[float, float] = (0.0, 25.0)
    reverb_prob: float = 0.3  # share of clips through a synthetic room response
    babble_pool_seconds: float = 20.0  # babble that noisy clips cut their 1 s from


PROFILES = {
    "tiny": Config(train_speakers=3, dev_speakers=1, test_speakers=1, takes=1, unknown_prob=0.3,
                   noise_seconds=3.0, babble_talkers=3, babble_pool_seconds=3.0),
    "default": Config(train_speakers=30, dev_speakers=6, test_speakers=6, takes=2,
                      unknown_prob=0.75, noise_seconds=45.0),
}


def _word_clip(ctx: BuildContext, cfg: Config, speaker, word: str, take: int,
               babble_pool: np.ndarray):
    """(1 s audio, word timing, details) for one take of ``word`` by ``speaker``."""
    keys = ("speech_commands", speaker.index, word, take)
    rng = ctx.rng(*keys)
    ending = str(rng.choice([".", "!", "?"], p=[0.6, 0.25, 0.15]))
    prosody = speaker.prosody(rng)
    for attempt in range(4):
        syn = ctx.engine.synth(word + ending, speaker.voice, seed=ctx.espeak_seed(*keys, attempt),
                               words=[word], **prosody).trim(margin=0.02)
        if len(syn.audio) <= CLIP - 320:
            break
        prosody["rate"] = int(prosody["rate"] * 1.25)  # too slow for one second: speak faster
    speech = syn.audio[: CLIP - 320]
    details: dict = {}
    if rng.random() < cfg.reverb_prob:
        rt60 = float(rng.uniform(0.15, 0.6))
        pad = min(CLIP - 320 - len(speech), int(0.15 * SAMPLE_RATE))
        speech = N.reverberate(np.pad(speech, (0, pad)), N.exp_rir(rng, rt60, rng.uniform(0.2, 0.5)))
        details["rt60"] = round(rt60, 3)
    speech = N.fade(place_level(rng, speech, 0.25, 0.7))
    offset = int(rng.integers(0, CLIP - len(speech) + 1))
    clip = N.set_level(N.make_noise(str(rng.choice(["white", "pink", "brown"])), rng, CLIP),
                       float(rng.uniform(-72, -50)))
    if rng.random() < cfg.noisy_prob:
        kind = str(rng.choice(["white", "pink", "brown", "running_water", "hum", "babble"]))
        if kind == "babble":
            start = int(rng.integers(0, len(babble_pool) - CLIP + 1))
            extra = babble_pool[start:start + CLIP]
        else:
            extra = N.make_noise(kind, rng, CLIP)
        snr = float(rng.uniform(*cfg.snr_db))
        clip += N.snr_gain(speech, extra, snr) * extra
        details.update(noise=kind, snr_db=round(snr, 2))
    clip[offset:offset + len(speech)] += speech
    peak = float(np.max(np.abs(clip)))
    if peak > 0.95:  # loud noise on a loud word: scale the mixture down, never clip
        clip *= 0.95 / peak
    w = syn.words[0].shifted(offset / SAMPLE_RATE)
    w.end = min(w.end, (offset + len(speech)) / SAMPLE_RATE)
    return clip, w, details


def _babble(ctx: BuildContext, n: int, talkers: int, key: str) -> np.ndarray:
    first = 10_000  # babble voices come from a far region of the pool, not the KS speakers

    def utter(talker: int, k: int) -> np.ndarray:
        sp = ctx.pool[first + talker]
        rng = ctx.rng("babble", key, talker, k)
        words = sentence(rng)
        syn = ctx.engine.synth(" ".join(words) + ".", sp.voice, words=words,
                               seed=ctx.espeak_seed("babble", key, talker, k), **sp.prosody(rng))
        return syn.audio

    return N.babble(utter, talkers, n, ctx.rng("babble-mix", key))


def build(out_dir: Path, ctx: BuildContext) -> None:
    cfg = PROFILES[ctx.profile]
    labels = LabelWriter()
    root = out_dir / TRAIN_DIR
    groups = {
        "train": ctx.pool.take(0, cfg.train_speakers),
        "validation": ctx.pool.take(cfg.train_speakers, cfg.dev_speakers),
        "testing": ctx.pool.take(cfg.train_speakers + cfg.dev_speakers, cfg.test_speakers),
    }
    # plan every clip first (so the progress bar knows the total)
    plan: list[tuple[str, object, str, int]] = []
    for subset, speakers in groups.items():
        for sp in speakers:
            rng = ctx.rng("speech_commands-plan", sp.index)
            for word in COMMANDS + UNKNOWN_WORDS:
                said = word in COMMANDS or rng.random() < cfg.unknown_prob
                if said:
                    plan += [(subset, sp, word, take) for take in range(cfg.takes)]
    n_silence = cfg.test_speakers * cfg.takes
    total = len(plan) + len(BACKGROUND) + n_silence
    lists: dict[str, list[str]] = {"validation": [], "testing": []}
    test_clips: dict[str, list[tuple[str, np.ndarray, dict, object]]] = {}
    with ctx.progress_bar(total, "mini speech_commands") as bar:
        babble_pool = _babble(ctx, int(cfg.babble_pool_seconds * SAMPLE_RATE), cfg.babble_talkers,
                              "clips")
        for subset, sp, word, take in plan:
            clip, timing, details = _word_clip(ctx, cfg, sp, word, take, babble_pool)
            rel = f"{word}/{sp.key}_nohash_{take}.wav"
            write_wav(root / rel, clip, ctx)
            if subset in lists:
                lists[subset].append(rel)
            rec = {"path": f"{TRAIN_DIR}/{rel}", "speaker": sp.key, "word": word,
                   "label": word if word in COMMANDS else UNKNOWN, "subset": subset,
                   "text": word, "words": [timing.to_dict()], "phonemes": ctx.word_phonemes(word),
                   "voice": sp.voice.name, "duration": CLIP / SAMPLE_RATE, **details}
            labels.add(rec)
            if subset == "testing":
                test_clips.setdefault(rec["label"], []).append((rel, clip, rec, sp))
            bar.update()

        # long background noises
        n_bg = int(round(cfg.noise_seconds * SAMPLE_RATE))
        readme = ["Generated background noises of the superb mini corpus (not recordings).", ""]
        for name in BACKGROUND:
            rng = ctx.rng("background", name)
            if name == "babble":
                sig = _babble(ctx, n_bg, cfg.babble_talkers, "background")
            else:
                sig = N.make_noise(_FILE_NOISE[name], rng, n_bg)
            sig = N.set_level(sig, float(rng.uniform(-34, -22)))
            sig = np.clip(sig, -0.99, 0.99)
            rel = f"{NOISE_DIR}/{name}.wav"
            write_wav(root / rel, sig, ctx)
            labels.add({"path": f"{TRAIN_DIR}/{rel}", "speaker": "", "word": "", "label": "_noise_",
                        "subset": "background", "text": "", "words": [], "phonemes": "",
                        "voice": "", "duration": n_bg / SAMPLE_RATE})
            readme.append(f"{name}.wav: {name.replace('_', ' ')}, {cfg.noise_seconds:g} s")
            bar.update()
        (root / NOISE_DIR / "README.md").write_text("\n".join(readme) + "\n")

        for name in ("validation", "testing"):
            (root / f"{name}_list.txt").write_text("".join(r + "\n" for r in sorted(lists[name])))

        # the separate test archive
        test_root = out_dir / TEST_DIR
        per_label = cfg.test_speakers * cfg.takes
        for word in COMMANDS:
            for rel, clip, rec, sp in test_clips.get(word, []):
                _test_file(test_root, word, rel.split("/", 1)[1], clip, rec, labels, ctx)
        unknown = test_clips.get(UNKNOWN, [])
        rng = ctx.rng("test-set-unknown")
        chosen, names = [], set()
        for i in rng.permutation(len(unknown)):
            name = unknown[i][0].split("/", 1)[1]
            if name not in names:  # one folder: file names must stay unique
                names.add(name)
                chosen.append(unknown[i])
            if len(chosen) == per_label:
                break
        for rel, clip, rec, sp in sorted(chosen, key=lambda c: c[0]):
            _test_file(test_root, UNKNOWN, rel.split("/", 1)[1], clip, rec, labels, ctx)
        babble_src = _babble(ctx, CLIP * max(n_silence, 1), cfg.babble_talkers, "silence")
        for i in range(n_silence):
            rng = ctx.rng("silence", i)
            kind = str(rng.choice(["white", "pink", "brown", "running_water", "hum", "babble"]))
            if kind == "babble":
                sig = babble_src[i * CLIP:(i + 1) * CLIP]
            else:
                sig = N.make_noise(kind, rng, CLIP)
            sig = np.clip(N.set_level(sig, float(rng.uniform(-70, -25))), -0.99, 0.99)
            name = hashlib.sha1(f"silence-{ctx.seed}-{i}".encode()).hexdigest()[:8] + "_nohash_0.wav"
            write_wav(test_root / SILENCE / name, sig, ctx)
            labels.add({"path": f"{TEST_DIR}/{SILENCE}/{name}", "speaker": "", "word": "",
                        "label": SILENCE, "subset": "test_set", "noise": kind, "text": "",
                        "words": [], "phonemes": "", "voice": "", "duration": CLIP / SAMPLE_RATE})
            bar.update()
    labels.write(out_dir)


def _test_file(test_root: Path, label: str, name: str, clip: np.ndarray, rec: dict,
               labels: LabelWriter, ctx: BuildContext) -> None:
    write_wav(test_root / label / name, clip, ctx)
    labels.add(dict(rec, path=f"{TEST_DIR}/{label}/{name}", label=label, subset="test_set"))
