"""Batches formed by total (padded) audio duration, not by utterance count.

A batch's cost is what the upstream really processes: ``len(batch) * longest utterance`` samples.
Every batch stays within ``max_batch_samples``; an utterance that alone exceeds the budget is an
error naming it (raise ``batch.max_seconds`` or crop the corpus), never silently dropped.

Training batches are reshuffled every epoch from ``seed + epoch``: the batch list of an epoch is a
pure function of (seed, epoch), which is what lets ``--resume`` continue at the exact batch.
Utterances are shuffled, grouped into pools, sorted by length inside a pool (so padding is
small), packed greedily, and the batch order is shuffled again.

``class_labels`` turns on class-balanced sampling (SUPERB's KS recipe): each epoch draws
``len(dataset)`` indices with replacement, with probability inversely proportional to class size.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np


class DurationBatchSampler:
    def __init__(
        self,
        num_samples: Sequence[int],
        max_batch_samples: int,
        shuffle: bool = True,
        seed: int = 0,
        class_labels: Optional[Sequence] = None,
        pool_batches: int = 50,
        ids: Optional[Sequence[str]] = None,
    ):
        self.num_samples = np.asarray(num_samples, dtype=np.int64)
        if self.num_samples.ndim != 1 or len(self.num_samples) == 0:
            raise ValueError("DurationBatchSampler needs a non-empty list of utterance lengths")
        self.max_batch_samples = int(max_batch_samples)
        too_long = np.nonzero(self.num_samples > self.max_batch_samples)[0]
        if len(too_long):
            i = int(too_long[0])
            name = ids[i] if ids is not None else f"#{i}"
            raise ValueError(
                f"utterance {name} has {int(self.num_samples[i])} samples, more than the batch budget of "
                f"{self.max_batch_samples} samples ({len(too_long)} such utterances); raise "
                "batch.max_seconds"
            )
        self.shuffle = shuffle
        self.seed = int(seed)
        self.pool_batches = pool_batches
        self.class_probs = None
        if class_labels is not None:
            labels = np.asarray([str(c) for c in class_labels])
            _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
            weights = 1.0 / counts[inverse]
            self.class_probs = weights / weights.sum()

    def _pack(self, order: np.ndarray) -> List[List[int]]:
        batches, current, longest = [], [], 0
        for idx in order:
            n = int(self.num_samples[idx])
            new_longest = max(longest, n)
            if current and new_longest * (len(current) + 1) > self.max_batch_samples:
                batches.append(current)
                current, new_longest = [], n
            current.append(int(idx))
            longest = new_longest
        if current:
            batches.append(current)
        return batches

    def epoch_batches(self, epoch: int = 0) -> List[List[int]]:
        """The batches (lists of dataset indices) of one epoch."""
        if not self.shuffle:
            order = np.argsort(self.num_samples, kind="stable")
            return self._pack(order)
        rng = np.random.default_rng([self.seed, int(epoch)])
        n = len(self.num_samples)
        if self.class_probs is not None:
            order = rng.choice(n, size=n, replace=True, p=self.class_probs)
        else:
            order = rng.permutation(n)
        mean_len = float(self.num_samples.mean())
        pool = max(1, int(self.pool_batches * max(1.0, self.max_batch_samples / mean_len)))
        batches: List[List[int]] = []
        for start in range(0, n, pool):
            chunk = order[start:start + pool]
            chunk = chunk[np.argsort(self.num_samples[chunk], kind="stable")]
            batches.extend(self._pack(chunk))
        perm = rng.permutation(len(batches))
        return [batches[i] for i in perm]

    def batch_cost(self, batch: Sequence[int]) -> int:
        return int(self.num_samples[list(batch)].max()) * len(batch)
