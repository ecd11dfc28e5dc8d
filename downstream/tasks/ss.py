"""SS -- two-speaker source separation on Libri2Mix (SUPERB-SG synthesis task).

Layout (``--data`` points at ``Libri2Mix/``, its parent, or its ``wav16k/min`` folder)::

    Libri2Mix/wav16k/min/<split>/mix_clean/<id>.wav
    Libri2Mix/wav16k/min/<split>/s1/<id>.wav
    Libri2Mix/wav16k/min/<split>/s2/<id>.wav

``<id>`` is ``<utt1>_<utt2>`` (the LibriSpeech utterances mixed). ``task.splits`` maps train /
dev / test to the LibriMix folders (SUPERB: ``train-100``, ``dev``, ``test``; the ``min`` mode,
mixtures cut to the shorter source; ``task.mixture`` ``mix_clean``). Every mixture needs an
``s1`` and an ``s2`` file of the same length. (s3prl evaluated dev on a 1,000-mixture subset
``dev_1000``; the full dev folder is used here.)

Head, loss and metrics: :mod:`.enhancement` -- the SE mask network with two outputs and
utterance-level permutation-invariant training (uPIT) of the NPSM MSE. Metrics: SI-SDRi in dB
(primary, higher is better; estimates assigned to sources by the best mean SI-SDR), and on test
(on dev too with ``task.quality_on_dev: true``) wide-band PESQ and STOI averaged over the two
sources. ``predictions/<split>/metrics.txt`` (``si_sdri``, ``stoi``, ``pesq`` lines: the
leaderboard's ``ss_public/metrics.txt``), ``utterances.tsv`` and listening examples
``examples/<id>_{mix,estimate1,estimate2,source1,source2}.wav`` + ``<id>.png``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from ..audio import audio_files, audio_info, check_unique_ids, segment_for
from .base import Example
from .enhancement import MaskTask

SOURCES = ("s1", "s2")


def find_librimix_root(data_dir: Path, rate_dir: str, mode: str) -> Path:
    """The ``wav16k/min`` folder below ``data_dir`` (or ``data_dir`` itself)."""
    data_dir = Path(data_dir)
    candidates = [data_dir / "Libri2Mix" / rate_dir / mode, data_dir / rate_dir / mode, data_dir]
    for c in candidates:
        if c.is_dir() and any((c / s).is_dir() for s in ("train-100", "train-360", "dev", "test")):
            return c
    raise FileNotFoundError(f"Libri2Mix folder not found: looked for {candidates[0]}, {candidates[1]} and split "
                            f"folders (train-100/, dev/, test/) in {data_dir}")


def librimix_split(root: Path, split: str, mixture: str = "mix_clean", min_samples: int = 400) -> List[Example]:
    d = Path(root) / split
    mix_dir = d / mixture
    if not mix_dir.is_dir():
        raise FileNotFoundError(f"Libri2Mix mixture folder not found: {mix_dir}")
    mixes = audio_files(mix_dir)
    if not mixes:
        raise ValueError(f"{mix_dir} holds no .wav files")
    out = []
    for mix in mixes:
        seg = segment_for(mix, min_samples)
        refs = []
        for s in SOURCES:
            ref = d / s / mix.name
            if not ref.is_file():
                raise FileNotFoundError(f"{ref}: source file missing for mixture {mix}")
            n = audio_info(ref)
            if n != seg.num_samples:
                raise ValueError(f"{ref} holds {n} samples but its mixture {mix} holds {seg.num_samples}")
            refs.append(str(ref))
        out.append(Example(mix.stem, seg, tuple(refs)))
    return out


class SourceSeparation(MaskTask):
    name = "ss"
    title = "Source separation"
    category = "synthesis"
    dataset = "Libri2Mix 16 kHz min, train-100 / dev / test, mix_clean"
    metrics = {"si_sdri": True, "si_sdr": True, "si_sdr_input": True, "pesq": True, "stoi": True,
               "pesq_input": True, "stoi_input": True, "pesq_failed": False}
    primary_metric = "si_sdri"
    mini_split = "librimix"
    data_help = "the Libri2Mix folder (or its parent, or its wav16k/min folder)"
    num_sources = 2
    example_names = ("mix", "estimate", "source")
    submission_metrics = ("si_sdri", "stoi", "pesq")

    def prepare(self, data_dir) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("SS needs --data pointing at the Libri2Mix folder")
        root = find_librimix_root(Path(data_dir), str(self.cfg["rate_dir"]), str(self.cfg["mode"]))
        min_samples = int(self.cfg.get("min_samples", 400))
        splits = {k: librimix_split(root, str(self.cfg["splits"][k]), str(self.cfg["mixture"]), min_samples)
                  for k in ("train", "dev", "test")}
        for k, v in splits.items():
            check_unique_ids([e.id for e in v], f"Libri2Mix {k} split")
        return self._finish_prepare(splits)
