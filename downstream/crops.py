"""Reproducible random training crops (SID and ASV train on SUPERB's 8 s crops).

The crop offset is a pure function of ``(seed, epoch, utterance id)``, so a resumed run sees the
same crops. Torch-free.
"""
from __future__ import annotations

import hashlib
from typing import Dict, List, Sequence

import numpy as np

from .audio import AudioSegment
from .example import Example


def crop_window(segment: AudioSegment, crop_samples: int, key: str, epoch: int, seed: int) -> AudioSegment:
    """A ``crop_samples`` window of a longer segment; the offset is drawn from (seed, epoch, key)."""
    if crop_samples <= 0 or segment.num_samples <= crop_samples:
        return segment
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), h])
    offset = int(rng.integers(0, segment.num_samples - crop_samples + 1))
    return AudioSegment(segment.path, crop_samples, segment.start + offset)


class RandomCrops:
    """Training on random crops with duration batching that sees the cropped lengths.

    ``register`` keeps each training file's full segment and returns an example whose audio is
    its first ``crop_samples`` (so the duration batch sampler packs batches by crop length);
    ``apply`` swaps in the crop of ``(seed, epoch, id)`` when a batch is drawn.
    """

    def __init__(self, crop_samples: int):
        self.crop_samples = int(crop_samples)
        self.full: Dict[str, AudioSegment] = {}

    def register(self, examples: Sequence[Example]) -> List[Example]:
        out = []
        for e in examples:
            self.full[e.id] = e.audio
            if self.crop_samples > 0 and e.audio.num_samples > self.crop_samples:
                e = Example(e.id, AudioSegment(e.audio.path, self.crop_samples, e.audio.start), e.label)
            out.append(e)
        return out

    def apply(self, examples: Sequence[Example], epoch: int, seed: int) -> List[Example]:
        return [Example(e.id, crop_window(self.full[e.id], self.crop_samples, e.id, epoch, seed), e.label)
                if e.id in self.full else e for e in examples]

    def num_cropped(self) -> int:
        return sum(s.num_samples > self.crop_samples for s in self.full.values()) if self.crop_samples > 0 else 0
