"""Corpus readers: one module per real corpus, each parsing that corpus's on-disk layout.

Every module documents the layout it reads at its top and has one entry point,
``prepare_<corpus>(root, ...)``, returning ``{split: [Example]}`` (some also return what the
corpus ships beside the audio: trial lists, ground truth, filtering counts). Readers know nothing
of tasks or heads: task protocols (phonemizing, fold splits, chunking, cleaning filters) stay in
:mod:`superb.downstream.tasks`. :class:`~superb.downstream.example.Example` is torch-free, and so
are these modules.

=========================  ==================================================  ==================
module                     corpus                                              used by
=========================  ==================================================  ==================
``librispeech``            LibriSpeech                                         ASR, PR
``speech_commands``        Speech Commands v0.01 (12 SUPERB classes)           KS
``voxceleb1``              VoxCeleb1 identification splits, verification       SID, ASV
``iemocap``                IEMOCAP (4 classes, by session)                     ER
``fluent_speech_commands`` Fluent Speech Commands                              IC
``audio_snips``            Audio SNIPS (IOB slot labels)                       SF
``quesst14``               QUESST 2014 (language keys, ground truth)           QbE
``librimix``               Libri2Mix separation; its kaldi diarization dirs    SS, SD
``voicebank_demand``       VoiceBank-DEMAND                                    SE
``vcc2020``                VCC2020 task 1                                      VC
``covost2``                CoVoST 2 tables                                     ST
``common_voice``           Common Voice tables and clips                       OOD-ASR, ST
``sbcsae``                 SBCSAE (segmented or raw layout)                    OOD-ASR
=========================  ==================================================  ==================

The synthetic mini corpus that writes these layouts is :mod:`superb.downstream.mini`.
"""
