"""Pretraining of upstreams from unlabelled audio (``superb pretrain``).

* :mod:`.loop` -- the shared loop: every audio file under a folder, duration batches, Adam (fp32),
  gradient clipping, ``log.jsonl``, atomic ``checkpoints/last.pt`` (model, optimiser and RNG
  state: ``--resume`` continues exactly) and, at the end, the family's official checkpoint.
* one module per objective, by family: generative :mod:`.apc` (``apc``), :mod:`.tera` (``tera``,
  ``mockingjay``); contrastive :mod:`.cpc` (``cpc``), :mod:`.wav2vec2` (``wav2vec2``); predictive
  :mod:`.hubert` (``hubert``), :mod:`.best_rq` (``best_rq``); bootstrapping :mod:`.data2vec`
  (``data2vec``); regularisation :mod:`.vicreg` (``vicreg``, on a wav2vec 2.0 encoder). Each
  defines its config dataclass (holding the upstream's architecture config), its ``PRESETS``
  (``tiny``, ``base``), an :class:`~superb.upstream.pretrain.loop.Objective` and the export to the
  format the matching upstream loader (and its peer) reads. :mod:`.masked` holds what the
  wav2vec 2.0-family objectives share (waveform rows, span masks, the masked forward).

The objective modules are imported only when chosen (:func:`objective_module`).
"""
from __future__ import annotations

import importlib

#: objective name -> module (relative to this package) that builds it
OBJECTIVES = {
    "apc": ".apc",
    "tera": ".tera",
    "mockingjay": ".tera",
    "cpc": ".cpc",
    "wav2vec2": ".wav2vec2",
    "hubert": ".hubert",
    "best_rq": ".best_rq",
    "data2vec": ".data2vec",
    "vicreg": ".vicreg",
}

#: names of the presets every objective has
PRESET_NAMES = ("tiny", "base")


def objective_module(name: str):
    """The module of objective ``name``; a clear error naming it (and the valid ones) otherwise."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown --objective {name!r}; valid objectives: {', '.join(sorted(OBJECTIVES))}")
    return importlib.import_module(OBJECTIVES[name], __name__)


__all__ = ["OBJECTIVES", "PRESET_NAMES", "objective_module"]
