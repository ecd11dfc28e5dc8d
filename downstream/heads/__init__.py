"""Downstream heads and losses shared by several tasks.

* :mod:`.pooling` -- masked mean pooling and SUPERB's utterance-level head (KS, SID, ER, IC);
* :mod:`.ctc` -- the ASR character vocabulary, SpecAugment and the BiLSTM CTC head (ASR, SF,
  OOD-ASR; PR checks transcripts with the vocabulary);
* :mod:`.masking` -- the STFT mask network, mask targets and the uPIT loss (SE, SS).

A head used by one task only stays in that task's module. State-dict key names are part of the
checkpoint format: keep attribute names when editing a head.
"""
