"""The runner's input pipeline: batches of examples -> audio or stored hidden states, prefetched.

A :class:`torch.utils.data.DataLoader` reads ahead of the training loop: its worker processes
apply the task's ``training_examples`` (SID/ASV crops), look each utterance up in the feature
store (:mod:`superb.benchmark.feature_store`) and decode the audio of those not found, so audio
decoding and store reads overlap the upstream and the head. The main process then runs the
upstream on the misses only, stores what it computed and assembles the batch.

* **Deterministic and exactly resumable**: the batches are the duration sampler's, in its order;
  the key of a batch is ``(epoch, position, indices)`` and a worker's result is a pure function of
  that key (crops are functions of ``(seed, epoch, example)``), so a run resumed at
  ``(epoch, position)`` reads the same batches as one that never stopped. The workers' seeds come
  from a generator of their own (seeded by the run's seed), never from torch's global RNG, which
  belongs to the head (dropout, SpecAugment) and is saved in ``last.pt``.
* ``workers`` (``--workers``, config ``workers``): processes reading ahead (0: the training loop's
  own thread, as before). Each worker uses one torch thread. Pinned memory on CUDA.
* Errors raised in a worker (a corrupt audio file) reach the caller as the original exception with
  its own one-line message (not DataLoader's wrapped traceback).
* What may be stored: an utterance fed to the upstream as the corpus gives it. A training crop
  (the task changed the example's audio segment) is computed from its cropped waveform every time
  and never stored - its frames would not be the crop of the whole utterance's frames for any
  upstream that looks beyond one frame (every transformer, CNN context, per-utterance CMVN).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import torch

from superb.downstream.audio import load_audio
from superb.downstream.example import Example

#: ``(epoch, position, example indices)``; eval batches use epoch 0 and their position
BatchKey = Tuple[int, int, Tuple[int, ...]]


@dataclass
class LoadedBatch:
    """One batch as the pipeline delivers it."""

    epoch: int
    position: int
    examples: List[Example]
    #: per example: its stored hidden states (float32, one tensor or numpy array per selected layer) or None
    cached: List[Optional[List[torch.Tensor]]]
    #: per example: its store key when it may be stored or read (None: a crop, or no store)
    keys: List[Optional[str]]
    #: padded audio ``[M, samples]`` and lengths ``[M]`` of the examples not served from the store
    wavs: Optional[torch.Tensor] = None
    wav_lens: Optional[torch.Tensor] = None
    #: store entries found corrupt (and removed) while loading this batch
    corrupt: int = 0
    error: Optional[BaseException] = field(default=None, repr=False)

    @property
    def misses(self) -> List[int]:
        return [i for i, c in enumerate(self.cached) if c is None]

    def pin_memory(self) -> "LoadedBatch":
        if self.wavs is not None:
            self.wavs, self.wav_lens = self.wavs.pin_memory(), self.wav_lens.pin_memory()
        self.cached = [None if c is None else [t.pin_memory() if isinstance(t, torch.Tensor) else t for t in c]
                       for c in self.cached]
        return self


def pad_waves(wavs: Sequence[Any]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D float32 waveforms (numpy or torch) to ``[B, max]`` with exact lengths."""
    lens = torch.tensor([len(w) for w in wavs], dtype=torch.long)
    out = torch.zeros(len(wavs), int(lens.max()) if len(wavs) else 0, dtype=torch.float32)
    for i, w in enumerate(wavs):
        out[i, : len(w)] = torch.as_tensor(w)
    return out, lens


class BatchReader(torch.utils.data.Dataset):
    """Map-style dataset over batch keys: ``reader[(epoch, position, indices)] -> LoadedBatch``.

    ``transform(examples, epoch)``: the task's training-time view of a batch (None for eval);
    ``namespace``: the feature store namespace of this run, or None (no store).

    Within one reader (one process) an utterance's store key is derived once (a run's audio files
    do not change under it), and entries up to ``memo_bytes`` in all (time-means: a few KB each) are
    kept in memory after their first read, so epochs after the first read no file at all. Small
    entries travel from a worker as numpy arrays (pickled inline: cheaper than one shared-memory
    segment per tensor)."""

    #: entries of at most this many bytes are memoised and sent inline
    SMALL = 1 << 16

    def __init__(self, examples: Sequence[Example], transform: Optional[Callable[[List[Example], int], List[Example]]],
                 namespace=None, memo_bytes: int = 256 << 20):
        self.examples = list(examples)
        self.transform = transform
        self.namespace = namespace
        self.memo_bytes = memo_bytes
        self._keys: dict = {}
        self._memo: dict = {}
        self._memo_size = 0

    def key(self, segment) -> str:
        from .feature_store import audio_key

        ident = (segment.path, segment.start, segment.num_samples)
        key = self._keys.get(ident)
        if key is None:
            key = self._keys[ident] = audio_key(segment.path, segment.start, segment.num_samples)
        return key

    def lookup(self, key: str):
        """A stored entry (memoised when small), or None."""
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        entry = self.namespace.get(key)
        if entry is None:
            return None
        size = sum(t.numel() * 4 for t in entry)
        if size <= self.SMALL:
            entry = [t.numpy() for t in entry]
            if self._memo_size + size <= self.memo_bytes:
                self._memo[key] = entry
                self._memo_size += size
        return entry

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, key: BatchKey) -> LoadedBatch:
        epoch, position, indices = key
        originals = [self.examples[i] for i in indices]
        exs = list(originals)
        try:
            if self.transform is not None:
                exs = list(self.transform(originals, epoch))
            return self.load(exs, originals, epoch, position)
        except Exception as exc:  # delivered to the main process, which raises it as it is
            return LoadedBatch(epoch, position, exs, [], [], error=exc)

    def load(self, exs: Sequence[Example], originals: Optional[Sequence[Example]] = None, epoch: int = 0,
             position: int = 0) -> LoadedBatch:
        originals = exs if originals is None else originals
        keys: List[Optional[str]] = []
        cached: List[Optional[List[Any]]] = []
        corrupt = self.namespace.corrupt if self.namespace is not None else 0
        for e, o in zip(exs, originals):
            key = self.key(e.audio) if self.namespace is not None and e.audio == o.audio else None
            keys.append(key)
            cached.append(self.lookup(key) if key is not None else None)
        waves = [load_audio(e.audio) for e, c in zip(exs, cached) if c is None]
        wavs, wav_lens = pad_waves(waves) if waves else (None, None)
        corrupt = (self.namespace.corrupt - corrupt) if self.namespace is not None else 0
        return LoadedBatch(epoch, position, list(exs), cached, keys, wavs, wav_lens, corrupt)


class TrainingKeys:
    """Every training batch key from ``(epoch, position)`` on, epoch after epoch (endless)."""

    def __init__(self, sampler, epoch: int, position: int):
        self.sampler, self.epoch, self.position = sampler, int(epoch), int(position)

    def __iter__(self) -> Iterator[BatchKey]:
        epoch, position = self.epoch, self.position
        while True:
            batches = self.sampler.epoch_batches(epoch)
            if not batches:
                raise ValueError("the training split yields no batch (no examples)")
            for p in range(position, len(batches)):
                yield epoch, p, tuple(batches[p])
            epoch, position = epoch + 1, 0


class ShardKeys:
    """The keys of ``keys`` with every batch cut to the part of process ``rank`` of ``world``
    (:func:`superb.benchmark.distributed.shard`: sorted by length, dealt round-robin); the
    epoch and position stay the global batch's, so resuming works as in one process."""

    def __init__(self, keys, num_samples: Sequence[int], rank: int, world: int):
        self.keys, self.num_samples, self.rank, self.world = keys, num_samples, int(rank), int(world)

    def __iter__(self) -> Iterator[BatchKey]:
        from .distributed import shard

        for epoch, position, indices in self.keys:
            yield epoch, position, shard(indices, self.num_samples, self.rank, self.world)


class EvalKeys:
    """The evaluation batches in order; with ``world`` > 1 only those of process ``rank``
    (batch ``p`` goes to rank ``p % world``: whole batches, dealt round-robin)."""

    def __init__(self, batches: Sequence[Sequence[int]], rank: int = 0, world: int = 1):
        self.batches = [tuple(b) for b in batches]
        self.rank, self.world = int(rank), int(world)

    def __iter__(self) -> Iterator[BatchKey]:
        for p, b in enumerate(self.batches):
            if p % self.world == self.rank:
                yield 0, p, b

    def __len__(self) -> int:
        return len(range(self.rank, len(self.batches), self.world))


def _deliver(item: LoadedBatch) -> LoadedBatch:
    return item


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)


def batches(reader: BatchReader, keys, workers: int, seed: int, pin_memory: bool = False) -> Iterator[LoadedBatch]:
    """The loaded batches of ``keys``, read ahead by ``workers`` processes (0: in this thread).

    Raises a worker's exception as the original one."""
    if workers <= 0:
        for key in keys:
            item = reader[key]
            if item.error is not None:
                raise item.error
            yield item
        return
    loader = torch.utils.data.DataLoader(
        reader, sampler=keys, batch_size=None, collate_fn=_deliver, num_workers=int(workers),
        pin_memory=pin_memory, prefetch_factor=2, worker_init_fn=_one_thread,
        generator=torch.Generator().manual_seed(int(seed)), multiprocessing_context="fork"
        if "fork" in torch.multiprocessing.get_all_start_methods() else None)
    for item in loader:
        if item.error is not None:
            raise item.error
        yield item
