"""Split ``diarization``: two-speaker conversations in the Libri2Mix kaldi-style layout (SD).

Layout written under the split directory ``<dir>`` (``ensure_split`` returns ``<dir>``, which is
what the SD task's ``--data`` points at)::

    <dir>/{train,dev,test}/wav/<recording>.wav   16 kHz mono 16-bit PCM
    <dir>/{train,dev,test}/wav.scp       <recording> wav/<recording>.wav   (relative to the split folder)
    <dir>/{train,dev,test}/segments      <utterance> <recording> <start s> <end s>
    <dir>/{train,dev,test}/utt2spk       <utterance> <speaker>
    <dir>/{train,dev,test}/spk2utt       <speaker> <utterance> ...
    <dir>/{train,dev,test}/reco2dur      <recording> <duration s>
    <dir>/{train,dev,test}/rttm          SPEAKER <recording> 1 <start> <dur> <NA> <NA> <speaker> <NA> <NA>
    <dir>/labels.jsonl                   one record per recording (extra)
    <dir>/COMPLETE                       build marker (written last)

* A recording is a conversation of two different speakers of its subset (speakers are disjoint
  between train, dev and test) taking ``turns`` (3-6) turns, mostly alternating. Each turn is one
  short grammar sentence (3-8 words) with the speaker's voice and jittered prosody, trimmed to
  its words.
* The gap between the end of a turn and the start of the next is controlled: a pause of
  0.15-0.9 s (60 %), an overlap of 0.2-0.8 s where the next turn starts before the previous one
  ends (30 %, never longer than 60 % of either turn), or an immediate start (10 %). 0.3-0.8 s of
  lead-in and tail.
* Each speaker is scaled to a random peak of 0.25-0.45 so overlaps never clip; the sum sits on a
  -72 to -55 dBFS white/pink/brown noise floor.
* One utterance (``<recording>_<speaker>_<turn>``) per turn; its segment and RTTM line are the
  turn's placement in samples (known offsets, so the reference is exact). Speaker ids are the
  pool speakers' 8-hex keys; recording ids ``<subset>_<nnnn>``.

labels.jsonl fields: ``path``, ``speaker`` (both keys, space separated), ``text`` (turns joined
with `` | ``), ``words`` (every word with its absolute timing and ``speaker``), ``phonemes``,
``turns`` (speaker, start, end, text), ``overlap_seconds``, ``duration``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import noise as N
from ..common import BuildContext, LabelWriter, place_level, write_wav
from ...audio import SAMPLE_RATE
from ..grammar import sentence

SUBSETS = ("train", "dev", "test")
FIRST_SPEAKER = 3000


@dataclass(frozen=True)
class Config:
    speakers: dict       # subset -> speakers
    recordings: dict     # subset -> recordings
    turns: tuple = (3, 6)


PROFILES = {
    "tiny": Config(speakers={"train": 4, "dev": 2, "test": 2}, recordings={"train": 4, "dev": 2, "test": 2},
                   turns=(2, 3)),
    "default": Config(speakers={"train": 40, "dev": 10, "test": 10},
                      recordings={"train": 160, "dev": 30, "test": 30}),
}


def _turn_audio(ctx: BuildContext, sp, keys):
    rng = ctx.rng(*keys)
    words = sentence(rng, 3, 8)
    syn = ctx.engine.synth(" ".join(words) + ".", sp.voice, words=words, seed=ctx.espeak_seed(*keys),
                           **sp.prosody(rng)).trim()
    return N.fade(place_level(rng, syn.audio, 0.25, 0.45)), words, syn.words


def _conversation(ctx: BuildContext, cfg: Config, subset: str, r: int, speakers):
    keys = ("diarization", subset, r)
    rng = ctx.rng(*keys)
    i, j = rng.choice(len(speakers), size=2, replace=False)
    pair = (speakers[int(i)], speakers[int(j)])
    n_turns = int(rng.integers(cfg.turns[0], cfg.turns[1] + 1))
    who = [0]
    for _ in range(n_turns - 1):
        who.append(1 - who[-1] if rng.random() < 0.85 or len(set(who)) < 2 else who[-1])
    if len(set(who)) < 2:
        who[-1] = 1 - who[0]
    turns = []
    pos = int(rng.uniform(0.3, 0.8) * SAMPLE_RATE)
    prev_len = None
    for t, w in enumerate(who):
        audio, words, timings = _turn_audio(ctx, pair[w], keys + ("turn", t))
        if t:
            u = rng.random()
            if u < 0.6:
                gap = int(rng.uniform(0.15, 0.9) * SAMPLE_RATE)
            elif u < 0.9 and who[t] != who[t - 1]:
                gap = -min(int(rng.uniform(0.2, 0.8) * SAMPLE_RATE), int(0.6 * min(prev_len, len(audio))))
            else:
                gap = 0
            pos = turns[-1][1] + len(turns[-1][2]) + gap
            own = [q + len(b) for v, q, b, _, _ in turns if v == w]
            if own:  # a speaker never overlaps their own previous turn
                pos = max(pos, max(own))
        turns.append((w, pos, audio, words, timings))
        prev_len = len(audio)
    end = max(p + len(a) for _, p, a, _, _ in turns)
    n = end + int(rng.uniform(0.3, 0.8) * SAMPLE_RATE)
    mix = N.set_level(N.make_noise(str(rng.choice(["white", "pink", "brown"])), rng, n),
                      float(rng.uniform(-72, -55))).astype(np.float64)
    for _, p, a, _, _ in turns:
        mix[p:p + len(a)] += a
    return pair, turns, mix.astype(np.float32)


def build(out_dir: Path, ctx: BuildContext) -> None:
    cfg = PROFILES[ctx.profile]
    labels = LabelWriter()
    first = FIRST_SPEAKER
    total = sum(cfg.recordings.values())
    with ctx.progress_bar(total, "mini diarization") as bar:
        for subset in SUBSETS:
            speakers = ctx.pool.take(first, cfg.speakers[subset])
            first += cfg.speakers[subset]
            d = out_dir / subset
            scp, segs, u2s, r2d, rttm = [], [], [], [], []
            spk2utt: dict[str, list[str]] = {}
            for r in range(cfg.recordings[subset]):
                pair, turns, mix = _conversation(ctx, cfg, subset, r, speakers)
                rec = f"{subset}_{r:04d}"
                write_wav(d / "wav" / f"{rec}.wav", mix, ctx)
                scp.append(f"{rec} wav/{rec}.wav")
                r2d.append(f"{rec} {len(mix) / SAMPLE_RATE:.4f}")
                words, info = [], []
                intervals = []
                for t, (w, p, a, text, timings) in enumerate(turns):
                    spk = pair[w].key
                    utt = f"{rec}_{spk}_{t}"
                    st, et = p / SAMPLE_RATE, (p + len(a)) / SAMPLE_RATE
                    segs.append(f"{utt} {rec} {st:.4f} {et:.4f}")
                    u2s.append(f"{utt} {spk}")
                    spk2utt.setdefault(spk, []).append(utt)
                    rttm.append(f"SPEAKER {rec} 1 {st:.4f} {et - st:.4f} <NA> <NA> {spk} <NA> <NA>")
                    words += [{**x.shifted(st).to_dict(), "speaker": spk} for x in timings]
                    info.append({"speaker": spk, "start": round(st, 4), "end": round(et, 4),
                                 "text": " ".join(text).upper()})
                    intervals.append((st, et))
                overlap = sum(max(0.0, min(a1, b1) - max(a0, b0))
                              for k, (a0, a1) in enumerate(intervals) for (b0, b1) in intervals[k + 1:])
                labels.add({"path": f"{subset}/wav/{rec}.wav", "speaker": f"{pair[0].key} {pair[1].key}",
                            "text": " | ".join(x["text"] for x in info), "words": words,
                            "phonemes": " | ".join(" ".join(ctx.word_phonemes(w) for w in x["text"].lower().split())
                                                   for x in info),
                            "turns": info, "overlap_seconds": round(overlap, 4),
                            "duration": round(len(mix) / SAMPLE_RATE, 4)})
                bar.update()
            for name, lines in (("wav.scp", scp), ("segments", segs), ("utt2spk", u2s), ("reco2dur", r2d),
                                ("rttm", rttm)):
                (d / name).write_text("\n".join(sorted(lines)) + "\n")
            (d / "spk2utt").write_text("".join(f"{s} {' '.join(sorted(u))}\n" for s, u in sorted(spk2utt.items())))
    labels.write(out_dir)
