"""VCC2020 (Zhao et al. 2020), task 1 (intra-lingual English): parallel speakers for voice conversion.

Layout (``root`` is the ``vcc2020`` folder, or its parent; the official audio is 24 kHz and superb
does not resample: convert it once to 16 kHz mono)::

    vcc2020/<SPK>/E<number>.wav          SEF1 SEF2 SEM1 SEM2 (sources), TEF1 TEF2 TEM1 TEM2 (targets)
    vcc2020/prompts/Eng_transcriptions.txt   "<number without E> <sentence>" per line

Splits (:func:`prepare_vcc2020`, any-to-one): train/dev are the target speaker's training
utterances (names starting with ``train_prefix``, ``E1``), the last ``dev_utterances`` of them in
name order dev; test is every evaluation utterance (``eval_prefix``, ``E3``) of every source
speaker, with the target's recording of the same sentence as reference (a missing reference is
an error naming the file). Labels: ``{"reference": path, "sentence": "E<number>", "source": speaker}``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Sequence

from ..audio import DEFAULT_MIN_SAMPLES, audio_files, check_unique_ids, segment_for
from ..example import Example
from ..fileio import read_lines


_UTT = re.compile(r"^E\d+$")


def read_prompts(path: Path) -> Dict[str, str]:
    """``Eng_transcriptions.txt``: ``<number> <sentence>`` lines -> {"E<number>": sentence}."""
    out = {}
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        num, _, text = line.strip().partition(" ")
        if not num.isdigit() or not text.strip():
            raise ValueError(f"{path}:{n}: expected '<number> <sentence>', got {line!r}")
        out["E" + num] = text.strip()
    return out


def speaker_files(root: Path, spk: str, prefix: str) -> Dict[str, Path]:
    d = root / spk
    if not d.is_dir():
        raise FileNotFoundError(f"VCC2020 speaker folder not found: {d}")
    files = {p.stem: p for p in audio_files(d, f"{prefix}*")}
    bad = [n for n in files if not _UTT.match(n)]
    if bad:
        raise ValueError(f"{d}: file names must be E<number>.wav, got {bad[:3]}")
    return files


def find_vcc2020_root(data_dir: Path) -> Path:
    """``data_dir/vcc2020`` when that folder exists, else ``data_dir``."""
    root = Path(data_dir)
    return root / "vcc2020" if (root / "vcc2020").is_dir() else root


def prepare_vcc2020(root: Path, target_speaker: str, source_speakers: Sequence[str], train_prefix: str = "E1",
                    eval_prefix: str = "E3", dev_utterances: int = 5, min_samples: int = DEFAULT_MIN_SAMPLES) -> Dict[str, List[Example]]:
    """``{"train", "dev", "test"}`` of the any-to-one protocol (see the module docstring)."""
    root = find_vcc2020_root(root)
    target = str(target_speaker)
    train_files = speaker_files(root, target, str(train_prefix))
    n_dev = int(dev_utterances)
    names = sorted(train_files)
    if len(names) <= n_dev:
        raise ValueError(f"{root / target}: {len(names)} training utterances ({train_prefix}*.wav), need more "
                         f"than task.dev_utterances={n_dev}")
    splits: Dict[str, List[Example]] = {"train": [], "dev": [], "test": []}
    for k, name in enumerate(names):
        seg = segment_for(train_files[name], min_samples)
        split = "dev" if k >= len(names) - n_dev else "train"
        splits[split].append(Example(f"{target}_{name}", seg, {"reference": str(train_files[name]),
                                                                 "sentence": name, "source": target}))
    target_eval = speaker_files(root, target, str(eval_prefix))
    for spk in source_speakers:
        for name, path in speaker_files(root, str(spk), str(eval_prefix)).items():
            if name not in target_eval:
                raise FileNotFoundError(f"{root / target / (name + '.wav')}: the target speaker's reference "
                                        f"recording of {path} is missing (needed for MCD)")
            splits["test"].append(Example(f"{spk}_{name}", segment_for(path, min_samples),
                                          {"reference": str(target_eval[name]), "sentence": name, "source": str(spk)}))
    if not splits["test"]:
        raise ValueError(f"{root}: no evaluation utterances ({eval_prefix}*.wav) of the source speakers "
                         f"{list(source_speakers)}")
    for k, v in splits.items():
        check_unique_ids([e.id for e in v], f"VCC2020 {k}")
    return splits
