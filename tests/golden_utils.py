"""Helpers of the every-layer equivalence tests of the upstream families (Upstreams II).

A golden test builds a small random reference model with the peer's own code (s3prl 0.4.18,
speechbrain 1.1.2), writes its weights in the official format, loads that file through
``build_upstream`` and compares **every** hidden state on a padded batch of utterances of
different lengths: the number of states and every valid-frame count exactly, values within
``ATOL``.
"""
from __future__ import annotations

import math
from typing import Callable, List, Sequence

import torch

ATOL = 1e-4
#: utterance lengths (samples) of the golden batch: all different, none a multiple of 160
LENGTHS = (9137, 5003, 12011)


def randomize_(module: torch.nn.Module, seed: int, scale: float = 0.2) -> torch.nn.Module:
    """Overwrite every parameter (and float buffer named like a statistic) with random values,
    so that no weight keeps its structured initial value (ones, zeros)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            # normalisation gains (initialised to ones) stay around one
            base = 1.0 if bool(torch.all(p == 1)) else 0.0
            p.copy_(torch.randn(p.shape, generator=g) * scale + base)
    return module


def golden_batch(lengths: Sequence[int] = LENGTHS, seed: int = 0, garbage: bool = True):
    """``(wavs [B, T], wav_lens [B], list of unpadded wavs)``; the padding holds random garbage
    (the upstream contract says padding values are undefined)."""
    g = torch.Generator().manual_seed(seed)
    wavs = []
    for i, n in enumerate(lengths):
        # non-stationary: a chirp, a random 25 ms amplitude envelope and noise bursts, so that
        # frames differ from each other (quantisers pick many codes, attention is not uniform)
        t = torch.arange(n, dtype=torch.float64) / 16000.0
        f0 = 150 + 60 * i
        chirp = torch.sin(2 * math.pi * (f0 * t + 900 * t ** 2))
        env = torch.rand(n // 400 + 1, generator=g, dtype=torch.float64).repeat_interleave(400)[:n]
        noise = torch.randn(n, generator=g, dtype=torch.float64) * (torch.rand(n // 800 + 1, generator=g,
                                                                                dtype=torch.float64) > 0.6).repeat_interleave(800)[:n]
        w = 0.4 * env * chirp + 0.2 * noise + 0.01 * torch.randn(n, generator=g, dtype=torch.float64)
        wavs.append(w.float())
    T = max(lengths)
    padded = torch.randn(len(lengths), T, generator=g) * (0.5 if garbage else 0.0)
    for i, w in enumerate(wavs):
        padded[i, : len(w)] = w
    return padded, torch.tensor(lengths), wavs


def assert_states_close(ours: Sequence[torch.Tensor], ref: Sequence[torch.Tensor], lengths: torch.Tensor,
                        ref_lengths: Sequence[int] | None = None, atol: float = ATOL, what: str = "") -> float:
    """Every hidden state equal on every valid frame; returns the largest difference."""
    assert len(ours) == len(ref), f"{what}: {len(ours)} hidden states, reference has {len(ref)}"
    worst = 0.0
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert a.shape[0] == b.shape[0] and a.shape[-1] == b.shape[-1], \
            f"{what} layer {i}: shape {tuple(a.shape)} vs reference {tuple(b.shape)}"
        for u in range(a.shape[0]):
            n = int(lengths[u])
            if ref_lengths is not None:
                assert n == int(ref_lengths[u]), f"{what} utt {u}: {n} frames, reference {ref_lengths[u]}"
            assert b.shape[1] >= n, f"{what} layer {i} utt {u}: reference has only {b.shape[1]} frames, we claim {n}"
            diff = (a[u, :n].double() - b[u, :n].double()).abs().max().item()
            worst = max(worst, diff)
            assert diff <= atol, f"{what} layer {i} utt {u}: max |diff| {diff:.3g} > {atol}"
    return worst


def per_utterance(ref_fn: Callable[[List[torch.Tensor]], Sequence[torch.Tensor]],
                  wavs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Run the reference on every utterance alone and pad its states into a batch."""
    outs = [ref_fn([w]) for w in wavs]
    num = len(outs[0])
    states = []
    for layer in range(num):
        seqs = [o[layer][0] for o in outs]
        states.append(torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True))
    return states


def ref_lengths_per_utterance(ref_fn, wavs) -> List[int]:
    return [int(ref_fn([w])[-1].shape[1]) for w in wavs]
