"""Corpora for the SUPERB toolkit.

* :mod:`superb.downstream.corpora.mini` -- the embedded default corpus "mini": speech
  synthesised offline with eSpeak NG and written in the exact on-disk layouts of the real
  corpora (``ensure_split("speech_commands")``, ``ensure_split("librispeech")``, ...).
* :mod:`.espeak`, :mod:`.speakers`, :mod:`.grammar`, :mod:`.noise`, :mod:`.common` -- the
  shared pieces its split generators (``splits_*.py``) are built from.

Submodules are imported on use so that ``import superb.downstream.corpora`` stays cheap.
"""

from __future__ import annotations

import importlib

_LAZY = ("mini", "espeak", "speakers", "grammar", "noise", "common",
         "splits_speech_commands", "splits_librispeech")


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
