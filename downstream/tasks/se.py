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

Head, loss and metrics: :mod:`.enhancement` (3-layer BiLSTM 896 -> one ReLU mask, NPSM MSE,
hop = upstream rate). Metrics: wide-band PESQ (primary, higher is better; s3prl keeps the best
dev PESQ), STOI as a fraction in [0, 1], SI-SDRi in dB, plus the unprocessed input's PESQ, STOI
and SI-SDR. ``predictions/<split>/`` holds ``metrics.txt`` (``pesq``, ``stoi``, ``si_sdri``
lines: the leaderboard's ``se_public/metrics.txt``), ``utterances.tsv`` and
``examples/<id>_{noisy,enhanced,clean}.wav`` + ``<id>.png`` for the first
``task.num_examples`` utterances.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

from ..audio import audio_files, audio_info, check_unique_ids, segment_for
from .base import Example
from .enhancement import MaskTask

_NAME = re.compile(r"^(p\d+)_(\d+)\.wav$")


def _folder(root: Path, kind: str, set_name: str) -> Path:
    tried = [root / f"{kind}_{set_name}_wav_16k", root / f"{kind}_{set_name}_wav"]
    for d in tried:
        if d.is_dir():
            return d
    raise FileNotFoundError(f"VoiceBank-DEMAND folder not found: looked for {tried[0]} and {tried[1]}")


def voicebank_pairs(root: Path, set_name: str, min_samples: int = 400) -> List[Example]:
    """Parse one VoiceBank-DEMAND set into examples (noisy audio, label = (clean path,))."""
    noisy_dir, clean_dir = _folder(root, "noisy", set_name), _folder(root, "clean", set_name)
    noisy = {p.name: p for p in audio_files(noisy_dir)}
    clean = {p.name: p for p in audio_files(clean_dir)}
    if not noisy:
        raise ValueError(f"{noisy_dir} holds no .wav files")
    missing = sorted(set(noisy) - set(clean))
    if missing:
        raise FileNotFoundError(f"{clean_dir}: no clean file for noisy {', '.join(missing[:5])}"
                                + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    extra = sorted(set(clean) - set(noisy))
    if extra:
        raise FileNotFoundError(f"{noisy_dir}: no noisy file for clean {', '.join(extra[:5])}"
                                + (f" and {len(extra) - 5} more" if len(extra) > 5 else ""))
    out = []
    for name in sorted(noisy):
        if not _NAME.match(name):
            raise ValueError(f"{noisy[name]}: file name is not <speaker>_<number>.wav (e.g. p232_001.wav)")
        seg = segment_for(noisy[name], min_samples)
        n_clean = audio_info(clean[name])
        if n_clean != seg.num_samples:
            raise ValueError(f"{clean[name]} holds {n_clean} samples but {noisy[name]} holds {seg.num_samples}; "
                             "noisy and clean files must be sample-aligned")
        out.append(Example(name[:-4], seg, (str(clean[name]),)))
    return out


class SpeechEnhancement(MaskTask):
    name = "se"
    title = "Speech enhancement"
    category = "synthesis"
    dataset = "VoiceBank-DEMAND 16 kHz (28-speaker train set, official test set)"
    metrics = {"pesq": True, "stoi": True, "si_sdri": True, "si_sdr": True, "pesq_input": True,
               "stoi_input": True, "si_sdr_input": True, "pesq_failed": False}
    primary_metric = "pesq"
    mini_split = "voicebank"
    data_help = "the folder holding {clean,noisy}_trainset_28spk_wav(_16k)/ and {clean,noisy}_testset_wav(_16k)/"
    num_sources = 1
    example_names = ("noisy", "enhanced", "clean")
    submission_metrics = ("pesq", "stoi", "si_sdri")

    def prepare(self, data_dir) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("SE needs --data pointing at the VoiceBank-DEMAND folder")
        root = Path(data_dir)
        min_samples = int(self.cfg.get("min_samples", 400))
        train_all = voicebank_pairs(root, str(self.cfg["train_set"]), min_samples)
        test = voicebank_pairs(root, str(self.cfg["test_set"]), min_samples)
        dev_spk = {str(s) for s in self.cfg["dev_speakers"]}
        speakers = {e.id.split("_")[0] for e in train_all}
        unknown = sorted(dev_spk - speakers)
        if unknown:
            raise ValueError(f"task.dev_speakers {unknown} have no utterances in the training set "
                             f"(speakers there: {', '.join(sorted(speakers)[:10])}...)")
        dev = [e for e in train_all if e.id.split("_")[0] in dev_spk]
        train = [e for e in train_all if e.id.split("_")[0] not in dev_spk]
        if not train:
            raise ValueError("task.dev_speakers leave no training speaker")
        check_unique_ids([e.id for e in train + dev + test], f"VoiceBank-DEMAND at {root}")
        self.data_notes = {"dev": f"training-set speakers {sorted(dev_spk)} held out as dev"}
        return self._finish_prepare({"train": train, "dev": dev, "test": test})
