"""Every metric superb reports, defined here and nowhere else.

One module per metric family; each function's docstring names the source whose definition it
follows (facts and formulas only, no code copied). The names below can also be imported from the
package itself (``from superb.downstream.metrics import equal_error_rate``); the submodule is
loaded on first use, so importing the package is cheap.

=======================  =================  ========================================================
metric                   module             source
=======================  =================  ========================================================
accuracy                 classification     fraction of correct labels, % (SUPERB / s3prl SID, ER,
                                            IC, KS)
balanced_accuracy        classification     mean per-class recall, % (sklearn
                                            ``balanced_accuracy_score``; Brodersen et al. 2010)
per_class_counts         classification     examples / correct / predicted per class (the
                                            confusion matrix's diagonal and margins)
error_curve              verification       miss / false-alarm rates per threshold (DET curve,
                                            Martin et al. 1997)
equal_error_rate         verification       EER, % (interpolated; = sklearn ``roc_curve`` +
                                            ``brentq``, s3prl ``sv_voxceleb1``, the leaderboard)
eer_threshold            verification       decision threshold at the EER, "accept if > t" (s3prl
                                            ``a2o-vc-vcc2020`` ASV evaluation)
min_dcf                  verification       normalised minimum detection cost (NIST SRE 2008)
wer, cer                 error_rates        corpus word / character error rate (jiwer; Levenshtein
                                            1966; SUPERB / s3prl ASR)
per                      error_rates        phone error rate (s3prl ``downstream/ctc/metric.py``)
edit_distance            error_rates        Levenshtein distance of two sequences (via jiwer)
slot_type_f1             slots              slot-type F1 (s3prl ``downstream/ctc/metric.py``)
slot_value_cer           slots              slot-value CER (s3prl ``downstream/ctc/metric.py``);
                                            helpers ``slot_value_pairs``, ``parse_slots``,
                                            ``remove_slot_tokens``
der_components,          diarization        DER and miss / false alarm / confusion (NIST RT
diarization_error_rate                      ``md-eval``, no collar, overlap scored; =
                                            pyannote.metrics); helper ``union_intervals``
maximum_twv, actual_twv  detection          MTWV / ATWV (NIST STD 2006 TWV; QUESST
                                            ``score-TWV-Cnxe.sh``); helper ``twv_weights``
si_sdr                   enhancement        SI-SDR, dB (Le Roux et al. 2019)
best_permutation         enhancement        utterance-level PIT assignment by SI-SDR (Kolbaek et
                                            al. 2017)
pesq_wb                  enhancement        wide-band PESQ (ITU-T P.862.2, ``pesq`` package)
stoi                     enhancement        STOI (Taal et al. 2011, ``pystoi``)
mean_or_nan              enhancement        mean leaving failed (NaN) utterances out
corpus_bleu              translation        corpus BLEU (Papineni et al. 2002; sacrebleu ``13a``,
                                            Post 2018)
mcd, mcd_dtw,            mel_cepstral       mel-cepstral distortion (Kubichek 1993; s3prl
mcd_aligned                                 ``a2o-vc-vcc2020/vc_evaluate.py`` / ESPnet
                                            ``mcd_calculate.py``)
dtw_path                 mel_cepstral       exact DTW (Sakoe & Chiba 1978)
world_mcep, sp2mc        mel_cepstral       WORLD + SPTK mel-cepstra (pyworld, pysptk ``sp2mc``)
require,                 dependencies       optional metric packages (``superb[synthesis]``)
MissingDependencyError
=======================  =================  ========================================================

Not metrics, so not here: QbE's per-query score normalisation ``znorm`` (part of the matching,
:mod:`superb.downstream.tasks.qbe`) and the cross-task averages of the leaderboard.
"""
from __future__ import annotations

import importlib

#: public name -> submodule that defines it
_WHERE = {
    "accuracy": "classification", "balanced_accuracy": "classification", "per_class_counts": "classification",
    "error_curve": "verification", "equal_error_rate": "verification", "eer_threshold": "verification",
    "min_dcf": "verification",
    "wer": "error_rates", "cer": "error_rates", "per": "error_rates", "edit_distance": "error_rates",
    "slot_type_f1": "slots", "slot_value_cer": "slots", "slot_value_pairs": "slots", "parse_slots": "slots",
    "remove_slot_tokens": "slots",
    "der_components": "diarization", "diarization_error_rate": "diarization", "union_intervals": "diarization",
    "maximum_twv": "detection", "actual_twv": "detection", "twv_weights": "detection",
    "si_sdr": "enhancement", "best_permutation": "enhancement", "pesq_wb": "enhancement", "stoi": "enhancement",
    "mean_or_nan": "enhancement",
    "corpus_bleu": "translation",
    "mcd": "mel_cepstral", "mcd_dtw": "mel_cepstral", "mcd_aligned": "mel_cepstral", "dtw_path": "mel_cepstral",
    "world_mcep": "mel_cepstral", "sp2mc": "mel_cepstral",
    "require": "dependencies", "MissingDependencyError": "dependencies",
}

MODULES = ("classification", "verification", "error_rates", "slots", "diarization", "detection", "enhancement",
           "translation", "mel_cepstral", "dependencies")


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = sorted(_WHERE)
