"""The synthetic mini corpus: offline eSpeak NG speech written in the real corpora's layouts.

This package *writes* corpora; :mod:`superb.downstream.corpora` *reads* them.  Every writer in
:mod:`.writers` produces the on-disk layout of one real corpus (the layout the matching reader
module of :mod:`superb.downstream.corpora` documents and parses), so a task's loader cannot tell
the mini corpus from the real one.

* :mod:`.build` -- the split registry (``SPLITS``), the cache layout and :func:`ensure_split`,
  which builds a split on first use and returns the directory ``--data`` points at.
* :mod:`.espeak` -- the eSpeak NG engine (ctypes, deterministic, word/phone timings).
* :mod:`.speakers`, :mod:`.grammar`, :mod:`.grammar_intl`, :mod:`.noise` -- generated speakers,
  sentence grammars (English; Spanish, Mandarin, English-German pairs) and noises.
* :mod:`.common` -- the plumbing every writer shares (build context, WAV/FLAC writers,
  ``labels.jsonl``).
* :mod:`.writers` -- one module per corpus layout (``speech_commands``, ``librispeech``,
  ``voxceleb1``, ``iemocap``, ``fluent_speech_commands``, ``quesst14``, ``diarization``,
  ``audio_snips``, ``voicebank_demand``, ``librimix``, ``vcc2020``, ``covost2``, ``common_voice``).

The names below are re-exported from :mod:`.build`.
"""
from __future__ import annotations

from .build import (COMPLETE, GENERATOR_VERSION, PROFILES, SPLIT_PROFILES, SPLITS, corpus_dir,
                    default_cache_dir, ensure_split, espeak_data_dir, is_complete, split_info,
                    split_profiles)

__all__ = ["COMPLETE", "GENERATOR_VERSION", "PROFILES", "SPLIT_PROFILES", "SPLITS", "corpus_dir",
           "default_cache_dir", "ensure_split", "espeak_data_dir", "is_complete", "split_info",
           "split_profiles"]
