"""Diarization metric (superb.downstream.metrics.diarization): DER and its components against
pyannote.metrics, by hand, and the interval union."""
import numpy as np
import pytest

from superb.downstream.metrics.diarization import der_components, diarization_error_rate, union_intervals


def _random_annotation(rng, n_spk, dur, n_seg):
    """Per speaker ``n_seg`` non-overlapping segments on a 10 ms grid (speakers may overlap)."""
    out = {}
    for k in range(n_spk):
        cuts = np.sort(rng.choice(int(dur * 100), size=2 * n_seg, replace=False)) / 100
        out[f"s{k}"] = [(float(cuts[2 * i]), float(cuts[2 * i + 1])) for i in range(n_seg)]
    return out


@pytest.mark.filterwarnings("ignore:'uem' was approximated")
def test_der_matches_pyannote_metrics():
    from pyannote.core import Annotation, Segment  # test-only peer (tests/requirements-peers.txt)
    from pyannote.metrics.diarization import DiarizationErrorRate

    def to_annotation(d):
        ann = Annotation()
        for spk, segs in d.items():
            for k, (st, et) in enumerate(segs):
                ann[Segment(st, et), f"{spk}-{k}"] = spk
        return ann

    rng = np.random.default_rng(0)
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    refs, hyps = {}, {}
    for r in range(12):
        refs[f"rec{r}"] = _random_annotation(rng, 2, 10.0, 4)
        hyps[f"rec{r}"] = _random_annotation(rng, int(rng.integers(1, 4)), 10.0, int(rng.integers(1, 6)))
    hyps["rec0"] = {}  # nothing detected: all missed
    hyps["rec1"] = {"x": refs["rec1"]["s1"], "y": refs["rec1"]["s0"]}  # perfect up to labels
    for r in refs:
        c = der_components(refs[r], hyps[r])
        detail = metric(to_annotation(refs[r]), to_annotation(hyps[r]), detailed=True)
        assert c["total"] == pytest.approx(detail["total"], abs=1e-6)
        assert c["miss"] == pytest.approx(detail["missed detection"], abs=1e-6)
        assert c["false_alarm"] == pytest.approx(detail["false alarm"], abs=1e-6)
        assert c["confusion"] == pytest.approx(detail["confusion"], abs=1e-6)
    ours = diarization_error_rate(refs, hyps)
    assert ours["der"] == pytest.approx(100 * abs(metric), abs=1e-6)
    assert der_components(refs["rec1"], hyps["rec1"])["confusion"] == 0.0
    assert der_components(refs["rec0"], {})["miss"] == pytest.approx(der_components(refs["rec0"], {})["total"])
    # a speaker's own overlapping segments count once (their union), as md-eval does
    assert der_components({"a": [(0, 2), (1, 3)]}, {"h": [(0, 3)]}) == {
        "total": 3.0, "miss": 0.0, "false_alarm": 0.0, "confusion": 0.0}


def test_der_by_hand():
    ref = {"A": [(0.0, 4.0)], "B": [(3.0, 6.0)]}  # 7 s of speech, 1 s overlapped
    hyp = {"x": [(0.0, 3.0)], "y": [(3.0, 7.0)]}  # x = A, y = B; y also covers A's 3-4 and 6-7
    c = der_components(ref, hyp)
    # 3-4: two reference speakers, one hypothesis speaker (y, mapped to B): 1 s missed
    # 6-7: no reference speech, y speaks: 1 s false alarm; no confusion under the mapping x->A, y->B
    assert c == {"total": 7.0, "miss": 1.0, "false_alarm": 1.0, "confusion": 0.0}
    relabelled = der_components(ref, {"y": [(0.0, 4.0)], "x": [(3.0, 6.0)]})  # perfect up to the labels
    assert relabelled == {"total": 7.0, "miss": 0.0, "false_alarm": 0.0, "confusion": 0.0}
    # a third hypothesis speaker in the overlap is left unmapped: 1 s of confusion
    extra = der_components(ref, {"x": [(0.0, 3.0)], "y": [(3.0, 6.0)], "z": [(3.0, 4.0)]})
    assert extra == {"total": 7.0, "miss": 0.0, "false_alarm": 0.0, "confusion": 1.0}
    wrong = der_components({"A": [(0.0, 2.0)], "B": [(2.0, 4.0)]}, {"x": [(0.0, 4.0)]})  # one speaker for two
    assert wrong == {"total": 4.0, "miss": 0.0, "false_alarm": 0.0, "confusion": 2.0}
    res = diarization_error_rate({"r1": ref, "r2": {"A": [(0.0, 1.0)]}}, {"r1": hyp})  # r2 not detected: 1 s miss
    assert res["miss"] == pytest.approx(100 * 2 / 8) and res["false_alarm"] == pytest.approx(100 * 1 / 8)
    assert res["der"] == pytest.approx(100 * 3 / 8) and res["confusion"] == 0.0
    with pytest.raises(ValueError, match="no speech"):
        diarization_error_rate({"r": {}}, {})


def test_union_intervals():
    assert union_intervals([(3, 4), (0, 2), (1, 2.5), (2.5, 3), (5, 5)]) == [(0, 4)]
    assert union_intervals([(0, 1), (2, 3)]) == [(0, 1), (2, 3)]
    assert union_intervals([]) == []
