"""The mini corpus's per-corpus writers.

Each module writes one split of the mini corpus in the exact on-disk layout of a real corpus:
it exposes ``PROFILES = {"tiny": ..., "default": ...}`` and ``build(out_dir, ctx)`` (see
:mod:`superb.downstream.mini.common`), and :mod:`superb.downstream.mini.build` registers it in
``SPLITS``.  The layout it writes is the one parsed by the reader module of the same corpus in
:mod:`superb.downstream.corpora` (``writers.voxceleb1`` -> ``corpora.voxceleb1`` ...).
"""
