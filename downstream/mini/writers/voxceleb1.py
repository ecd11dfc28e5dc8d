"""Split ``voxceleb1``: generated speakers in the VoxCeleb1 layout (speaker ID and verification).

Layout written under the split directory ``<dir>`` (``ensure_split`` returns ``<dir>``)::

    <dir>/wav/<speaker id>/<video id>/<nnnnn>.wav    16 kHz mono 16-bit PCM, dev and test speakers
    <dir>/iden_split.txt                             "<1|2|3> <id>/<video>/<nnnnn>.wav" (SID)
    <dir>/veri_test2.txt                             "<1|0> <enroll .wav> <test .wav>" (ASV, Vox1-O name)
    <dir>/labels.jsonl                               one record per .wav (extra)
    <dir>/COMPLETE                                   build marker (written last)

As in the real corpus both archives (``vox1_dev_wav``, ``vox1_test_wav``) are unpacked into one
``wav/`` folder.

* Speakers: ``dev_speakers`` generated voices named ``id10001``, ``id10002``, ... (VoxCeleb1 dev,
  ASV training) and ``test_speakers`` named ``id10270``, ``id10271``, ... (the Vox1-O test id
  range), pool indices ``1000 + k`` (disjoint from the other splits' first speakers).
* Each speaker has ``videos`` "videos" (11-character YouTube-style ids) of ``utts_per_video``
  utterances numbered ``00001.wav``, ``00002.wav``, ... per video.  A video is a recording
  condition: its own noise colour and SNR (12-35 dB), a first-order spectral tilt (+-0.4) and a gain; so
  speaker recognition has to generalise across channels, as on YouTube.
* An utterance is one or two grammar sentences (:mod:`..grammar`) said with the speaker's voice
  and jittered prosody, 0.1-0.4 s of lead-in and tail.  With probability ``short_prob`` it is a
  single 3-4-word sentence instead, mostly under 2 s: these exercise ASV's (counted) 2 s filter.
* ``iden_split.txt``: for every speaker (dev and test, as in VoxCeleb1) the last video's files
  are test (3), the second last's dev (2), the others train (1): disjoint utterances and videos.
* ``veri_test2.txt``: ``trials_per_class`` target trials (two files of one test speaker from
  different videos) and as many non-target trials (files of two different test speakers), drawn
  without repetition and shuffled.

labels.jsonl fields: ``path`` (``wav/...``), ``speaker`` (the id), ``video``, ``subset`` (dev/test
speaker group), ``iden_split`` (1/2/3), ``text``, ``words`` (timings in the file), ``phonemes``,
``voice``, ``duration``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from .. import noise as N
from ..common import BuildContext, LabelWriter, place_level, write_wav
from ...audio import SAMPLE_RATE
from ..grammar import sentence

WAV = "wav"
IDEN_SPLIT = "iden_split.txt"
TRIALS = "veri_test2.txt"
FIRST_SPEAKER = 1000
_VIDEO_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


@dataclass(frozen=True)
class Config:
    dev_speakers: int
    test_speakers: int
    videos: int
    utts_per_video: int
    short_prob: float
    trials_per_class: int


PROFILES = {
    "tiny": Config(dev_speakers=4, test_speakers=3, videos=3, utts_per_video=2, short_prob=0.2,
                   trials_per_class=6),
    "default": Config(dev_speakers=40, test_speakers=10, videos=5, utts_per_video=3, short_prob=0.08,
                      trials_per_class=300),
}


def video_id(rng: np.random.Generator) -> str:
    return "".join(_VIDEO_CHARS[i] for i in rng.integers(0, len(_VIDEO_CHARS), 11))


def utterance_text(rng: np.random.Generator, short_prob: float) -> tuple[list[str], str]:
    """(words, text with punctuation) of one utterance: 1-2 sentences, or a short one."""
    if rng.random() < short_prob:
        sents = [sentence(rng, 3, 4)]
    else:
        sents = [sentence(rng, 4, 12) for _ in range(int(rng.integers(1, 3)))]
    text = " ".join(" ".join(s) + ("?" if s[0] in ("did", "where", "why", "when", "how") else ".") for s in sents)
    return [w for s in sents for w in s], text


def channel(rng: np.random.Generator) -> dict:
    """A recording condition: noise kind, SNR, spectral tilt and output peak range."""
    return {"noise": str(rng.choice(["white", "pink", "brown", "hum"])), "snr": float(rng.uniform(12, 35)),
            "tilt": float(rng.uniform(-0.4, 0.4)), "peak": float(rng.uniform(0.3, 0.75))}


def render(ctx: BuildContext, speaker, words: list[str], text: str, keys: tuple, chan: dict,
           rng: np.random.Generator, prosody: dict | None = None, volume: int = 70,
           normalise: bool = True, pad: tuple[float, float] = (0.1, 0.4)):
    """Synthesise ``text`` and put it through ``chan``: (audio, word timings shifted to the file)."""
    syn = ctx.engine.synth(text, speaker.voice, words=words, seed=ctx.espeak_seed(*keys), volume=volume,
                           **(prosody if prosody is not None else speaker.prosody(rng))).trim()
    speech = syn.audio.astype(np.float64)
    speech = lfilter([1.0, chan["tilt"]], [1.0], speech).astype(np.float32)
    if normalise:
        speech = place_level(rng, speech, chan["peak"] * 0.9, chan["peak"] * 1.1)
    speech = N.fade(speech)
    lead = int(rng.uniform(*pad) * SAMPLE_RATE)
    tail = int(rng.uniform(*pad) * SAMPLE_RATE)
    n = lead + len(speech) + tail
    audio = np.zeros(n, dtype=np.float32)
    audio[lead:lead + len(speech)] = speech
    noise = N.make_noise(chan["noise"], rng, n)
    audio = N.mix_at_snr(audio, noise, chan["snr"]) if np.any(speech) else audio
    peak = float(np.max(np.abs(audio)))
    if peak > 0.98:  # keep headroom (rare: loud styles plus noise)
        audio = audio * (0.98 / peak)
    return audio.astype(np.float32), [w.shifted(lead / SAMPLE_RATE).to_dict() for w in syn.words]


def build(out_dir: Path, ctx: BuildContext) -> None:
    cfg = PROFILES[ctx.profile]
    labels = LabelWriter()
    groups = [("dev", f"id{10001 + k}", FIRST_SPEAKER + k) for k in range(cfg.dev_speakers)]
    groups += [("test", f"id{10270 + k}", FIRST_SPEAKER + cfg.dev_speakers + k) for k in range(cfg.test_speakers)]
    total = len(groups) * cfg.videos * cfg.utts_per_video
    iden: list[str] = []
    files: dict[str, list[tuple[str, str]]] = {}  # test speaker -> [(video, rel)]
    with ctx.progress_bar(total, "mini voxceleb1") as bar:
        for subset, spk_id, index in groups:
            sp = ctx.pool[index]
            vrng = ctx.rng("voxceleb1-videos", index)
            videos: list[str] = []
            while len(videos) < cfg.videos:
                v = video_id(vrng)
                if v not in videos:
                    videos.append(v)
            for vi, video in enumerate(videos):
                chan = channel(ctx.rng("voxceleb1-channel", index, vi))
                split_no = 3 if vi == cfg.videos - 1 else 2 if vi == cfg.videos - 2 else 1
                for u in range(cfg.utts_per_video):
                    keys = ("voxceleb1", index, vi, u)
                    rng = ctx.rng(*keys)
                    words, text = utterance_text(rng, cfg.short_prob)
                    audio, timing = render(ctx, sp, words, text, keys, chan, rng)
                    rel = f"{spk_id}/{video}/{u + 1:05d}.wav"
                    write_wav(out_dir / WAV / rel, audio, ctx)
                    iden.append(f"{split_no} {rel}")
                    if subset == "test":
                        files.setdefault(spk_id, []).append((video, rel))
                    labels.add({"path": f"{WAV}/{rel}", "speaker": spk_id, "video": video, "subset": subset,
                                "iden_split": split_no, "text": " ".join(words), "words": timing,
                                "phonemes": " ".join(ctx.word_phonemes(w) for w in words),
                                "voice": sp.voice.name, "duration": round(len(audio) / SAMPLE_RATE, 4)})
                    bar.update()
    (out_dir / IDEN_SPLIT).write_text("".join(line + "\n" for line in iden))
    (out_dir / TRIALS).write_text("".join(f"{t[0]} {t[1]} {t[2]}\n" for t in make_trials(files, cfg.trials_per_class,
                                                                                           ctx.rng("voxceleb1-trials"))))
    labels.write(out_dir)


def make_trials(files: dict[str, list[tuple[str, str]]], per_class: int, rng: np.random.Generator) -> list[tuple]:
    """Balanced trials: target pairs across videos of one speaker, non-target pairs across speakers."""
    target = [(1, a[1], b[1]) for spk in sorted(files) for a, b in itertools.combinations(files[spk], 2) if a[0] != b[0]]
    speakers = sorted(files)
    nontarget = [(0, a[1], b[1]) for s1, s2 in itertools.combinations(speakers, 2)
                 for a in files[s1] for b in files[s2]]
    n = min(per_class, len(target), len(nontarget))
    if n == 0:
        raise ValueError("voxceleb1 mini split: too few test speakers or videos to make trials")
    chosen = [target[i] for i in rng.choice(len(target), n, replace=False)]
    chosen += [nontarget[i] for i in rng.choice(len(nontarget), n, replace=False)]
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    # swap enroll/test at random so neither side is always the earlier file
    return [(lab, b, a) if rng.random() < 0.5 else (lab, a, b) for lab, a, b in chosen]
