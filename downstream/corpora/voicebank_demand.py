"""VoiceBank-DEMAND (Valentini-Botinhao et al. 2016): noisy/clean parallel speech (SE).

Layout (``root`` holds the four folders)::

    clean_trainset_28spk_wav_16k/p226_001.wav    noisy_trainset_28spk_wav_16k/p226_001.wav
    clean_testset_wav_16k/p232_001.wav          noisy_testset_wav_16k/p232_001.wav

The official archives are 48 kHz and superb never resamples: convert them once to 16 kHz mono.
The ``_16k`` suffix (SpeechBrain / s3prl's converted copy) is looked for first, then the official
names without it (``clean_trainset_28spk_wav/``...) holding 16 kHz files. Every noisy file needs a
clean file of the same name and length, and vice versa. Examples: id ``p232_001``, audio the
noisy file, label ``(clean path,)``.

Splits (:func:`prepare_voicebank_demand`): dev = the training-set utterances of ``dev_speakers``
(SpeechBrain/s3prl: p226 and p287), train = the other training speakers, test = the test set.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Sequence

from ..audio import DEFAULT_MIN_SAMPLES, audio_files, audio_info, check_unique_ids, segment_for
from ..example import Example

_NAME = re.compile(r"^(p\d+)_(\d+)\.wav$")


def _folder(root: Path, kind: str, set_name: str) -> Path:
    tried = [root / f"{kind}_{set_name}_wav_16k", root / f"{kind}_{set_name}_wav"]
    for d in tried:
        if d.is_dir():
            return d
    raise FileNotFoundError(f"VoiceBank-DEMAND folder not found: looked for {tried[0]} and {tried[1]}")


def voicebank_pairs(root: Path, set_name: str, min_samples: int = DEFAULT_MIN_SAMPLES) -> List[Example]:
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


def prepare_voicebank_demand(root: Path, train_set: str = "trainset_28spk", test_set: str = "testset",
                             dev_speakers: Sequence[str] = ("p226", "p287"),
                             min_samples: int = DEFAULT_MIN_SAMPLES) -> Dict[str, List[Example]]:
    """``{"train", "dev", "test"}``: the training set split by ``dev_speakers``, and the test set."""
    root = Path(root)
    train_all = voicebank_pairs(root, str(train_set), min_samples)
    test = voicebank_pairs(root, str(test_set), min_samples)
    dev_spk = {str(s) for s in dev_speakers}
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
    return {"train": train, "dev": dev, "test": test}
