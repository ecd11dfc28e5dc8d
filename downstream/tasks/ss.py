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

Head, loss and metrics: :mod:`.masking_base` -- the SE mask network with two outputs and
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

from ..corpora.librimix import prepare_librimix
from .base import Example
from .declaration import Board, Column, DB, HIGHER, INF, LOWER, Metric, Submission
from .masking_base import MaskTask


class SourceSeparation(MaskTask):
    name = "ss"
    title = "Source separation"
    category = "synthesis"
    dataset = "Libri2Mix 16 kHz min, train-100 / dev / test, mix_clean"
    metrics = {"si_sdri": Metric(HIGHER, DB), "si_sdr": Metric(HIGHER, DB),
               "si_sdr_input": Metric(HIGHER, DB, internal=True), "pesq": Metric(HIGHER, "PESQ (wide-band MOS-LQO)"),
               "stoi": Metric(HIGHER, "STOI (fraction, 0-1)"),
               "pesq_input": Metric(HIGHER, "PESQ (wide-band MOS-LQO)", internal=True),
               "stoi_input": Metric(HIGHER, "STOI (fraction, 0-1)", internal=True),
               "pesq_failed": Metric(LOWER, "utterances", internal=True)}
    primary_metric = "si_sdri"
    leaderboard = Board("Source separation", (Column("SI-SDRi", ("si_sdri", "sisdri", "si_snri"), 9.2341, 10.4514,
                                                     unit="dB", valid=(-INF, INF)),), position=13)
    submission = (Submission("ss_public", "metrics.txt", "metrics", ("metrics.txt", "test_metrics.txt"),
                             server_metrics=("si_sdri",)),)
    mini_split = "librimix"
    data_help = "the Libri2Mix folder (or its parent, or its wav16k/min folder)"
    num_sources = 2
    example_names = ("mix", "estimate", "source")
    submission_metrics = ("si_sdri", "stoi", "pesq")

    def prepare(self, data_dir) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("SS needs --data pointing at the Libri2Mix folder")
        splits = prepare_librimix(Path(data_dir), {k: str(self.cfg["splits"][k]) for k in ("train", "dev", "test")},
                                  str(self.cfg["rate_dir"]), str(self.cfg["mode"]), str(self.cfg["mixture"]),
                                  self.min_samples)
        return self._finish_prepare(splits)
