"""Split ``librimix``: two-speaker mixtures in the Libri2Mix 16 kHz ``min`` layout (SS).

Layout written under the split directory ``<dir>`` (what the SS task's ``--data`` points at)::

    <dir>/Libri2Mix/wav16k/min/{train-100,dev,test}/mix_clean/<id>.wav   s1 + s2
    <dir>/Libri2Mix/wav16k/min/{train-100,dev,test}/s1/<id>.wav
    <dir>/Libri2Mix/wav16k/min/{train-100,dev,test}/s2/<id>.wav
    <dir>/Libri2Mix/wav16k/min/metadata/mixture_<split>_mix_clean.csv
          mixture_ID,mixture_path,source_1_path,source_2_path,length   (LibriMix's columns)
    <dir>/labels.jsonl        one record per mixture (extra)
    <dir>/COMPLETE

* ``<id>`` is ``<utt1>_<utt2>``, each a LibriSpeech-style ``<spk>-<chapter>-<nnnn>`` id of a
  generated speaker of the subset (speakers disjoint between train-100, dev and test).
* Each source is one grammar sentence (3-12 words) with the speaker's voice and jittered
  prosody, trimmed to its words, its RMS drawn uniformly in [-33, -25] dBFS (LibriMix draws
  loudness in [-33, -25] LUFS), so the two speakers meet at random relative gains of up to
  +-8 dB. ``min`` mode: both sources are cut to the shorter one and summed; when the mixture
  would peak above 0.9, mixture and sources are scaled down together.

labels.jsonl fields: ``path`` (mixture), ``sources``, ``speaker`` (both ids), ``text`` (both
sentences joined by `` | ``), ``words`` ([] -- sources are cut), ``phonemes``, ``gains_db``,
``duration``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import noise as N
from ..common import BuildContext, LabelWriter, write_wav
from ...audio import SAMPLE_RATE
from ..grammar import sentence

FIRST_SPEAKER = 5100
ROOT = "Libri2Mix/wav16k/min"
SUBSETS = {"train-100": "train", "dev": "dev", "test": "test"}


@dataclass(frozen=True)
class Config:
    speakers: dict   # subset -> speakers
    mixtures: dict   # subset -> mixtures


PROFILES = {
    "tiny": Config(speakers={"train-100": 4, "dev": 2, "test": 2}, mixtures={"train-100": 4, "dev": 2, "test": 2}),
    "default": Config(speakers={"train-100": 16, "dev": 4, "test": 4},
                      mixtures={"train-100": 240, "dev": 24, "test": 30}),
}


def build(out_dir: Path, ctx: BuildContext) -> None:
    cfg = PROFILES[ctx.profile]
    labels = LabelWriter()
    first = FIRST_SPEAKER
    total = sum(cfg.mixtures.values())
    ids = ctx.rng("librimix-ids")
    n_spk = sum(cfg.speakers.values())
    all_spk_ids = [int(x) for x in ids.choice(np.arange(100, 10_000), n_spk, replace=False)]
    with ctx.progress_bar(total, "mini librimix") as bar:
        for subset in SUBSETS:
            speakers = ctx.pool.take(first, cfg.speakers[subset])
            first += cfg.speakers[subset]
            spk_ids = {sp.index: all_spk_ids[sp.index - FIRST_SPEAKER] for sp in speakers}
            chapters = {sp.index: int(ids.integers(1000, 1_000_000)) for sp in speakers}
            counters: dict = {}
            rows = []
            for m in range(cfg.mixtures[subset]):
                rng = ctx.rng("librimix", subset, m)
                pair = rng.choice(len(speakers), 2, replace=False)
                sources, utt_ids, texts, gains = [], [], [], []
                for k in pair:
                    sp = speakers[int(k)]
                    idx = counters.get(sp.index, 0)
                    counters[sp.index] = idx + 1
                    keys = ("librimix", subset, m, sp.index)
                    srng = ctx.rng(*keys)
                    words = sentence(srng, 3, 12)
                    syn = ctx.engine.synth(" ".join(words) + ".", sp.voice, words=words,
                                           seed=ctx.espeak_seed(*keys), **sp.prosody(srng)).trim(0.05)
                    gain = float(srng.uniform(-33.0, -25.0))
                    sources.append(N.set_level(N.fade(syn.audio), gain))
                    gains.append(round(gain, 2))
                    utt_ids.append(f"{spk_ids[sp.index]}-{chapters[sp.index]}-{idx:04d}")
                    texts.append(" ".join(words).upper())
                n = min(len(s) for s in sources)
                sources = [N.fade(s[:n]) for s in sources]
                mix = sources[0] + sources[1]
                peak = float(np.max(np.abs(mix)))
                if peak > 0.9:
                    sources = [s * (0.9 / peak) for s in sources]
                    mix = sources[0] + sources[1]
                mid = "_".join(utt_ids)
                rel = f"{ROOT}/{subset}"
                write_wav(out_dir / rel / "mix_clean" / f"{mid}.wav", mix, ctx)
                for k, s in enumerate(sources):
                    write_wav(out_dir / rel / f"s{k + 1}" / f"{mid}.wav", s)
                rows.append([mid, f"{rel}/mix_clean/{mid}.wav", f"{rel}/s1/{mid}.wav", f"{rel}/s2/{mid}.wav", n])
                labels.add({"path": f"{rel}/mix_clean/{mid}.wav", "sources": [f"{rel}/s1/{mid}.wav", f"{rel}/s2/{mid}.wav"],
                            "speaker": " ".join(u.split("-")[0] for u in utt_ids), "text": " | ".join(texts),
                            "words": [], "phonemes": "", "gains_db": gains, "duration": round(n / SAMPLE_RATE, 4)})
                bar.update()
            meta = out_dir / ROOT / "metadata" / f"mixture_{subset}_mix_clean.csv"
            meta.parent.mkdir(parents=True, exist_ok=True)
            with open(meta, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow(["mixture_ID", "mixture_path", "source_1_path", "source_2_path", "length"])
                w.writerows(sorted(rows))
    labels.write(out_dir)
