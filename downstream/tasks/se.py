"""SE -- speech enhancement on VoiceBank-DEMAND (SUPERB-SG synthesis task).

Layout (``--data`` points at the folder holding the four VoiceBank-DEMAND folders)::

    clean_trainset_28spk_wav_16k/p226_001.wav    noisy_trainset_28spk_wav_16k/p226_001.wav
    clean_testset_wav_16k/p232_001.wav          noisy_testset_wav_16k/p232_001.wav

The official archives are 48 kHz and superb never resamples behind the user's back: convert
them once to 16 kHz mono. The ``_16k`` suffix (SpeechBrain / s3prl's converted copy) is looked for
first, then the official names without it (``clean_trainset_28spk_wav/``...) holding 16 kHz
files. ``task.train_set`` / ``task.test_set`` name the sets (``trainset_28spk``, ``testset``).
Every noisy file needs a clean file of the same name and length, and vice versa.

Splits: dev = the training-set utterances of speakers ``task.dev_speakers`` (p226 and p287, the
first two of the 28-speaker list: the SpeechBrain/s3prl VoiceBank preparation), train = the
other 26 speakers, test = the official test set (824 utterances, speakers p232 and p257).

Head, loss and metrics: :mod:`.masking_base` (3-layer BiLSTM 896 -> one ReLU mask, NPSM MSE,
hop = upstream rate). Metrics: wide-band PESQ (primary, higher is better; s3prl keeps the best
dev PESQ), STOI as a fraction in [0, 1], SI-SDRi in dB, plus the unprocessed input's PESQ, STOI
and SI-SDR. ``predictions/<split>/`` holds ``metrics.txt`` (``pesq``, ``stoi``, ``si_sdri``
lines: the leaderboard's ``se_public/metrics.txt``), ``utterances.tsv`` and
``examples/<id>_{noisy,enhanced,clean}.wav`` + ``<id>.png`` for the first
``task.num_examples`` utterances.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from ..corpora.voicebank_demand import prepare_voicebank_demand
from .base import Example
from .declaration import Board, Column, DB, HIGHER, LOWER, Metric, Submission
from .masking_base import MaskTask


class SpeechEnhancement(MaskTask):
    name = "se"
    title = "Speech enhancement"
    category = "synthesis"
    dataset = "VoiceBank-DEMAND 16 kHz (28-speaker train set, official test set)"
    metrics = {"pesq": Metric(HIGHER, "PESQ (wide-band MOS-LQO)"), "stoi": Metric(HIGHER, "STOI (fraction, 0-1)"),
               "si_sdri": Metric(HIGHER, DB), "si_sdr": Metric(HIGHER, DB),
               "pesq_input": Metric(HIGHER, "PESQ (wide-band MOS-LQO)", internal=True),
               "stoi_input": Metric(HIGHER, "STOI (fraction, 0-1)", internal=True),
               "si_sdr_input": Metric(HIGHER, DB, internal=True),
               "pesq_failed": Metric(LOWER, "utterances", internal=True)}
    primary_metric = "pesq"
    leaderboard = Board("Speech enhancement", (Column("PESQ", ("pesq",), 2.55, 2.64, unit="", valid=(-0.5, 4.64)),
                                         Column("STOI", ("stoi",), 93.6, 94.2, unit="x100", scale=100.0)),
                        position=12)
    submission = (Submission("se_public", "metrics.txt", "metrics", ("metrics.txt", "test_metrics.txt"),
                             server_metrics=("pesq", "stoi")),)
    mini_split = "voicebank"
    data_help = "the folder holding {clean,noisy}_trainset_28spk_wav(_16k)/ and {clean,noisy}_testset_wav(_16k)/"
    num_sources = 1
    example_names = ("noisy", "enhanced", "clean")
    submission_metrics = ("pesq", "stoi", "si_sdri")

    def prepare(self, data_dir) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("SE needs --data pointing at the VoiceBank-DEMAND folder")
        dev_spk = {str(s) for s in self.cfg["dev_speakers"]}
        splits = prepare_voicebank_demand(Path(data_dir), str(self.cfg["train_set"]), str(self.cfg["test_set"]),
                                          sorted(dev_spk), self.min_samples)
        self.data_notes = {"dev": f"training-set speakers {sorted(dev_spk)} held out as dev"}
        return self._finish_prepare(splits)
