"""VoxCeleb1 (Nagrani et al. 2017): identification splits and verification trial lists.

Layout (``root`` is the VoxCeleb1 folder)::

    VoxCeleb1/
        wav/<speaker id>/<youtube id>/<nnnnn>.wav        # vox1_dev_wav + vox1_test_wav unpacked together, or
        dev/wav/<speaker id>/<youtube id>/<nnnnn>.wav    # vox1_dev_wav (s3prl's layout) and
        test/wav/<speaker id>/<youtube id>/<nnnnn>.wav   # vox1_test_wav apart
        iden_split.txt                                   # "<1|2|3> <id>/<youtube id>/<nnnnn>.wav"
        veri_test.txt                                    # "<1|0> <enroll .wav> <test .wav>" (and other trial lists)

A listed path is looked up under every existing wav root; it must exist under exactly one of
them (a missing or duplicated file is an error naming it). Identification
(:func:`prepare_voxceleb1`): ``iden_split.txt`` assigns each file to train (1), dev (2) or test
(3); labels are speaker ids, example ids ``<id>-<youtube id>-<nnnnn>``; a dev or test speaker
without training files is an error. Verification (:func:`voxceleb1_verification`): training
files are the dev part (``dev/wav/``, else ``wav/`` minus every trial speaker), files of
``min_train_seconds`` or less dropped and counted; dev/test examples are the trial utterances
(id = relative path), returned with the trial lists and the filtering notes.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from ..audio import DEFAULT_MIN_SAMPLES, SAMPLE_RATE, audio_files, check_unique_ids, segment_for
from ..example import Example
from ..fileio import read_lines

#: where a VoxCeleb1 ``<id>/<video>/<n>.wav`` path is looked for, relative to ``--data``
WAV_ROOTS = ("wav", "dev/wav", "test/wav")
_REL_RE = re.compile(r"[^/\s]+/[^/\s]+/[^/\s]+\.wav")


def voxceleb_roots(data_dir: Path, names: Sequence[str] = WAV_ROOTS) -> List[Path]:
    """The existing wav roots of a VoxCeleb1 folder (``wav/``, ``dev/wav/``, ``test/wav/``)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"VoxCeleb1 folder not found: {data_dir}")
    roots = [data_dir / n for n in names if (data_dir / n).is_dir()]
    if not roots:
        raise FileNotFoundError(f"{data_dir}: no VoxCeleb1 audio folder (expected one of {', '.join(n + '/' for n in names)})")
    return roots


def check_rel_path(rel: str, where: str) -> str:
    if not _REL_RE.fullmatch(rel):
        raise ValueError(f"{where}: {rel!r} is not a VoxCeleb path of the form <id>/<youtube id>/<nnnnn>.wav")
    return rel


def resolve_wav(roots: Sequence[Path], rel: str, where: str) -> Path:
    """The one file ``<root>/<rel>`` among ``roots``; missing or ambiguous is an error naming it."""
    found = [r / rel for r in roots if (r / rel).is_file()]
    if not found:
        raise FileNotFoundError(f"{where}: audio file {rel} not found under {', '.join(str(r) for r in roots)}")
    if len(found) > 1:
        raise ValueError(f"{where}: {rel} exists under several roots ({', '.join(str(f) for f in found)}); keep one copy")
    return found[0]


def utterance_name(rel: str) -> str:
    """``id10001/1zcIwhmdeo4/00001.wav`` -> ``id10001-1zcIwhmdeo4-00001`` (s3prl's prediction names)."""
    spk, video, name = rel.split("/")
    return f"{spk}-{video}-{Path(name).stem}"


def read_iden_split(path: Path) -> List[tuple]:
    """``[(split number, relative path, line number)]`` of an ``iden_split.txt``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VoxCeleb1 identification split file not found: {path}")
    out = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("1", "2", "3"):
            raise ValueError(f"{path}:{n}: expected '<1|2|3> <id>/<youtube id>/<nnnnn>.wav', got {line.strip()!r}")
        out.append((int(parts[0]), check_rel_path(parts[1], f"{path}:{n}"), n))
    if not out:
        raise ValueError(f"{path}: the identification split file lists no files")
    return out


def voxceleb1_identification(data_dir: Path, split_file="iden_split.txt", min_samples: int = DEFAULT_MIN_SAMPLES) -> Dict[str, List[Example]]:
    """Parse VoxCeleb1 with ``iden_split.txt`` into train/dev/test examples labelled with speaker ids."""
    data_dir = Path(data_dir)
    roots = voxceleb_roots(data_dir)
    split_path = Path(split_file) if Path(split_file).is_absolute() else data_dir / split_file
    names = {1: "train", 2: "dev", 3: "test"}
    splits: Dict[str, List[Example]] = {"train": [], "dev": [], "test": []}
    seen: Dict[str, int] = {}
    for num, rel, n in read_iden_split(split_path):
        where = f"{split_path}:{n}"
        if rel in seen:
            raise ValueError(f"{where}: {rel} is listed twice (first on line {seen[rel]})")
        seen[rel] = n
        wav = resolve_wav(roots, rel, where)
        splits[names[num]].append(Example(utterance_name(rel), segment_for(wav, min_samples), rel.split("/")[0]))
    for split, examples in splits.items():
        if not examples:
            raise ValueError(f"{split_path}: the {split} split (number {[k for k, v in names.items() if v == split][0]}) is empty")
        check_unique_ids((e.id for e in examples), f"{split_path} ({split})")
    train_speakers = {e.label for e in splits["train"]}
    for split in ("dev", "test"):
        unknown = sorted({e.label for e in splits[split]} - train_speakers)
        if unknown:
            raise ValueError(f"{split_path}: {split} speakers without training files: {', '.join(unknown[:5])}"
                             f"{' ...' if len(unknown) > 5 else ''} ({len(unknown)})")
    return splits


Trial = Tuple[int, str, str]  # (1 target / 0 non-target, enroll relative path, test relative path)


def read_trials(path: Path) -> List[Trial]:
    """Trials of a ``veri_test*.txt`` file: ``<1|0> <enroll .wav> <test .wav>`` per line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VoxCeleb1 trial list not found: {path}")
    trials: List[Trial] = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] not in ("0", "1"):
            raise ValueError(f"{path}:{n}: expected '<1|0> <enroll .wav> <test .wav>', got {line.strip()!r}")
        trials.append((int(parts[0]), check_rel_path(parts[1], f"{path}:{n}"), check_rel_path(parts[2], f"{path}:{n}")))
    if not trials:
        raise ValueError(f"{path}: the trial list is empty")
    if len({t[0] for t in trials}) < 2:
        raise ValueError(f"{path}: the trial list needs both target (1) and non-target (0) trials")
    return trials


def _trial_examples(data_dir: Path, trials: Sequence[Trial], where: Path, min_samples: int) -> List[Example]:
    roots = voxceleb_roots(data_dir, ("test/wav", "wav"))
    rels = sorted({t[1] for t in trials} | {t[2] for t in trials})
    examples = [Example(r, segment_for(resolve_wav(roots, r, str(where)), min_samples), r.split("/")[0]) for r in rels]
    return examples


def voxceleb1_verification(data_dir: Path, trials_file="veri_test.txt", dev_trials_file=None,
                           min_train_seconds: float = 2.0, min_samples: int = DEFAULT_MIN_SAMPLES):
    """Training examples (VoxCeleb1 dev, short files dropped), trial utterances and trial lists.

    Returns ``(splits, trials, notes)``: ``splits`` maps train/dev/test to examples (dev/test:
    one example per utterance in the trials, id = relative path), ``trials`` maps dev/test to
    their trial lists, ``notes`` counts what was filtered.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"VoxCeleb1 folder not found: {data_dir}")

    def _path(name) -> Path:
        return Path(name) if Path(name).is_absolute() else data_dir / name

    test_path = _path(trials_file)
    test_trials = read_trials(test_path)
    dev_path = _path(dev_trials_file) if dev_trials_file else test_path
    dev_trials = read_trials(dev_path) if dev_trials_file else test_trials
    trial_speakers = {r.split("/")[0] for t in test_trials + dev_trials for r in t[1:]}

    if (data_dir / "dev" / "wav").is_dir():
        train_root, held_out = data_dir / "dev" / "wav", set()
    elif (data_dir / "wav").is_dir():
        train_root = data_dir / "wav"
        held_out = {p.name for p in train_root.iterdir() if p.is_dir()} & trial_speakers
    else:
        raise FileNotFoundError(f"{data_dir}: no VoxCeleb1 training audio (expected dev/wav/ or wav/)")
    min_keep = int(round(float(min_train_seconds) * SAMPLE_RATE))
    train: List[Example] = []
    dropped = 0
    speaker_dirs = sorted(p for p in train_root.iterdir() if p.is_dir() and p.name not in held_out)
    for spk_dir in speaker_dirs:
        for wav in audio_files(spk_dir, "*/*"):
            rel = f"{spk_dir.name}/{wav.parent.name}/{wav.name}"
            seg = segment_for(wav, min_samples)
            if seg.num_samples <= min_keep:
                dropped += 1
                continue
            train.append(Example(utterance_name(rel), seg, spk_dir.name))
    if not train:
        raise ValueError(f"{train_root}: no training files longer than {min_train_seconds:g} s "
                         f"({dropped} shorter ones dropped, {len(held_out)} trial speakers held out)")
    check_unique_ids((e.id for e in train), str(train_root))
    overlap = sorted({e.label for e in train} & trial_speakers)
    splits = {"train": train,
              "dev": _trial_examples(data_dir, dev_trials, dev_path, min_samples),
              "test": _trial_examples(data_dir, test_trials, test_path, min_samples)}
    notes = {
        "train_root": str(train_root),
        "train_files_kept": len(train),
        "train_files_dropped_short": dropped,
        "min_train_seconds": float(min_train_seconds),
        "train_speakers": len({e.label for e in train}),
        "trial_speakers_held_out_of_training": len(held_out),
        "trial_speakers_also_in_training": len(overlap),
        "dev_trials": str(dev_path) + ("" if dev_trials_file else " (= the test trials: SUPERB has no dev set)"),
        "test_trials": str(test_path),
        "trials": {"dev": _count(dev_trials), "test": _count(test_trials)},
    }
    return splits, {"dev": dev_trials, "test": test_trials}, notes


def _count(trials: Sequence[Trial]) -> Dict[str, int]:
    target = sum(t[0] for t in trials)
    return {"target": target, "nontarget": len(trials) - target}


def prepare_voxceleb1(root: Path, split_file="iden_split.txt", min_samples: int = DEFAULT_MIN_SAMPLES) -> Dict[str, List[Example]]:
    """``{"train", "dev", "test"}`` identification examples (see :func:`voxceleb1_identification`);
    for the verification protocol use :func:`voxceleb1_verification`."""
    return voxceleb1_identification(root, split_file, min_samples)
