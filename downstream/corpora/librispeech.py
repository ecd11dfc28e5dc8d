"""LibriSpeech (Panayotov et al. 2015): read speech with transcripts (ASR, PR).

Layout (``root`` is the ``LibriSpeech`` folder)::

    LibriSpeech/
        <split>/<speaker>/<chapter>/<speaker>-<chapter>-<nnnn>.flac
        <split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   # "<utt id> <TRANSCRIPT>" lines

``<split>`` is one of ``train-clean-100``, ``dev-clean``, ``test-clean``, ... . Every audio file
needs a transcript line and every transcript line an audio file (either missing is an error naming
it); a chapter folder without transcript and audio is skipped. Example ids are the utterance ids,
labels the transcripts with whitespace collapsed, in (chapter folder, utterance id) order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

from ..audio import DEFAULT_MIN_SAMPLES, audio_files, segment_for
from ..example import Example
from ..fileio import read_lines

#: SUPERB's LibriSpeech splits (s3prl ``downstream/asr/config.yaml``)
SPLITS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}


def read_split(root: Path, split: str, min_samples: int = DEFAULT_MIN_SAMPLES,
               check_text: Optional[Callable[[str, str], object]] = None) -> List[Example]:
    """Parse ``<root>/<split>/<spk>/<chapter>/`` into examples labelled with their transcripts.

    ``check_text(text, where)``, if given, is called on every transcript (in file order) and may
    raise to refuse it (ASR refuses characters outside its vocabulary)."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"LibriSpeech split folder not found: {split_dir}")
    examples: List[Example] = []
    for chapter_dir in sorted(p for p in split_dir.glob("*/*") if p.is_dir()):
        spk, chapter = chapter_dir.parent.name, chapter_dir.name
        trans_path = chapter_dir / f"{spk}-{chapter}.trans.txt"
        audio = {p.stem: p for p in audio_files(chapter_dir, ext=".flac")}
        if not trans_path.is_file():
            if audio:
                raise FileNotFoundError(f"missing transcript file {trans_path} for {len(audio)} audio files")
            continue
        texts: Dict[str, str] = {}
        for n, line in enumerate(read_lines(trans_path), 1):
            if not line.strip():
                continue
            utt, _, text = line.strip().partition(" ")
            if not text.strip():
                raise ValueError(f"{trans_path}:{n}: empty transcript for {utt}")
            texts[utt] = " ".join(text.split())
        missing_text = sorted(set(audio) - set(texts))
        if missing_text:
            raise ValueError(f"{trans_path}: no transcript for audio {', '.join(missing_text[:5])}"
                             + (f" and {len(missing_text) - 5} more" if len(missing_text) > 5 else ""))
        missing_audio = sorted(set(texts) - set(audio))
        if missing_audio:
            raise FileNotFoundError(f"{trans_path}: transcript lines without audio file: {', '.join(missing_audio[:5])}")
        for utt in sorted(texts):
            if check_text is not None:
                check_text(texts[utt], f"{trans_path} ({utt})")
            examples.append(Example(utt, segment_for(audio[utt], min_samples), texts[utt]))
    if not examples:
        raise ValueError(f"LibriSpeech split {split_dir} holds no utterances")
    return examples


def prepare_librispeech(root: Path, splits: Mapping[str, str] = SPLITS, min_samples: int = DEFAULT_MIN_SAMPLES,
                        check_text: Optional[Callable[[str, str], object]] = None) -> Dict[str, List[Example]]:
    """``{name: examples}`` for every ``name -> LibriSpeech split folder`` of ``splits``, in order."""
    return {name: read_split(root, folder, min_samples, check_text) for name, folder in splits.items()}
