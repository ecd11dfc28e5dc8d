"""QbE: QUESST 2014 layout, subsequence DTW against a plain reference, TWV by hand, a full run."""
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.spatial.distance import cdist

from superb.benchmark.config import resolve_config
from superb.benchmark.runner import Runner
from superb.downstream.corpora.quesst14 import read_ground_truth
from superb.downstream.tasks.qbe import QueryByExample, match_scores, subsequence_dtw, znorm

SR = 16000


def _tones(path, freqs, seg=0.25):
    t = np.arange(int(seg * SR)) / SR
    audio = np.concatenate([0.3 * np.sin(2 * np.pi * f * t) * np.hanning(len(t)) for f in freqs])
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (audio + 0.001).astype(np.float32), SR, subtype="PCM_16")


@pytest.fixture
def quesst(tmp_path):
    """Documents are tone sequences; a query is a tone pair that some documents contain."""
    root = tmp_path / "quesst14Database"
    docs = {1: [300, 700, 1100, 500], 2: [900, 300, 700, 1300], 3: [1500, 1700, 400, 600],
            4: [450, 1100, 500, 800], 5: [1200, 1000, 350, 650]}
    for k, freqs in docs.items():
        _tones(root / "Audio" / f"quesst14_{k:05d}.wav", freqs)
    _tones(root / "Audio" / "quesst14_00006.wav", [300, 700])  # a Basque document: not searched
    queries = {"dev": {1: [300, 700], 2: [1100, 500]}, "eval": {1: [1700, 400], 2: [350, 650]}}
    for split, qs in queries.items():
        for k, freqs in qs.items():
            _tones(root / f"{split}_queries" / f"quesst14_{split}_{k:04d}.wav", freqs)
    _tones(root / "dev_queries" / "quesst14_dev_0003.wav", [1200, 1000])  # Basque query
    sc = root / "scoring"
    sc.mkdir()
    (sc / "language_key_utterances.lst").write_text(
        "".join(f"quesst14Database/Audio/quesst14_{k:05d}.wav nnenglish\n" for k in docs)
        + "quesst14Database/Audio/quesst14_00006.wav basque\n")
    (sc / "language_key_dev.lst").write_text(
        "quesst14Database/dev_queries/quesst14_dev_0001.wav nnenglish\n"
        "quesst14Database/dev_queries/quesst14_dev_0002.wav nnenglish\n"
        "quesst14Database/dev_queries/quesst14_dev_0003.wav basque\n")
    (sc / "language_key_eval.lst").write_text(
        "quesst14Database/eval_queries/quesst14_eval_0001.wav nnenglish\n"
        "quesst14Database/eval_queries/quesst14_eval_0002.wav nnenglish\n")
    hits = {"dev": [("quesst14_00001", 1), ("quesst14_00002", 1), ("quesst14_00006", 1), ("quesst14_00001", 2),
                    ("quesst14_00004", 2), ("quesst14_00005", 3)],
            "eval": [("quesst14_00003", 1), ("quesst14_00005", 2)]}
    for split in ("dev", "eval"):
        gt = sc / f"groundtruth_quesst14_{split}"
        gt.mkdir()
        ecf = "".join(f'  <excerpt audio_filename="Audio/quesst14_{k:05d}.wav" channel="1" tbeg="0.000" dur="1.0" '
                      f'source_type="splitcts"/>\n' for k in range(1, 7))
        (gt / "quesst14.ecf.xml").write_text(f'<ecf source_signal_duration="6.0" language="multiple" version="1">\n'
                                             f'{ecf}</ecf>\n')
        n = 3 if split == "dev" else 2
        terms = "".join(f'<term termid="quesst14_{split}_{k:04d}"><termtext>x</termtext></term>' for k in range(1, n + 1))
        (gt / f"quesst14_{split}.tlist.xml").write_text(f'<termlist ecf_filename="quesst14.ecf.xml">{terms}</termlist>')
        (gt / f"quesst14_{split}.rttm").write_text("".join(
            f"LEXEME {doc} 1 0.25 0.50 quesst14_{split}_{q:04d} lex <NA> <NA>\n" for doc, q in hits[split]))
    return root


def test_layout_language_filter_and_ground_truth(quesst):
    task = QueryByExample({"language": "nnenglish"})
    splits = task.prepare(quesst.parent)  # the folder holding quesst14Database/ works too
    assert [e.id for e in splits["docs"]] == [f"quesst14_{k:05d}" for k in range(1, 6)]
    assert [e.id for e in splits["dev"]] == ["quesst14_dev_0001", "quesst14_dev_0002"]
    assert [e.id for e in splits["test"]] == ["quesst14_eval_0001", "quesst14_eval_0002"]
    gt = task.ground_truth["dev"]
    assert gt.queries == ["quesst14_dev_0001", "quesst14_dev_0002", "quesst14_dev_0003"]
    assert len(gt.docs) == 6 and gt.positives["quesst14_dev_0001"] == {"quesst14_00001", "quesst14_00002",
                                                                        "quesst14_00006"}


def test_bad_ground_truth_is_named(quesst):
    rttm = quesst / "scoring" / "groundtruth_quesst14_eval" / "quesst14_eval.rttm"
    rttm.write_text("LEXEME quesst14_09999 1 0.1 0.2 quesst14_eval_0001 lex <NA> <NA>\n")
    with pytest.raises(ValueError, match=r"quesst14_eval.rttm:1: document 'quesst14_09999' is not in quesst14.ecf.xml"):
        read_ground_truth(rttm.parent)
    rttm.write_text("LEXEME quesst14_00001 1 0.1 0.2 quesst14_eval_0042 lex <NA> <NA>\n")
    with pytest.raises(ValueError, match=r"query 'quesst14_eval_0042' is not a term"):
        read_ground_truth(rttm.parent)
    rttm.write_text("LEXEME quesst14_00001 1 0.1 0.2 quesst14_eval_0001 lex <NA> <NA>\n")
    lst = quesst / "scoring" / "language_key_eval.lst"
    lst.write_text(lst.read_text() + "quesst14Database/eval_queries/quesst14_eval_0009.wav nnenglish\n")
    with pytest.raises(ValueError, match=r"queries \['quesst14_eval_0009'\] are not terms of the eval tlist"):
        QueryByExample({"language": "nnenglish"}).prepare(quesst)


def _naive_dtw(d):
    n, m = d.shape
    acc = np.full((n, m), np.inf)
    acc[0] = d[0]
    for i in range(1, n):
        for j in range(m):
            prev = [acc[i - 1, j]] + ([acc[i - 1, j - 1]] if j >= 1 else []) + ([acc[i - 1, j - 2]] if j >= 2 else [])
            acc[i, j] = d[i, j] + min(prev)
    return acc[-1].min() / n


def test_dtw_matches_a_plain_implementation():
    rng = np.random.default_rng(0)
    query = rng.standard_normal((6, 5))
    docs = [rng.standard_normal((m, 5)) for m in (4, 9, 15, 3)]
    # the batched DTW against the textbook recursion, documents of different lengths
    dists = [np.exp(cdist(query, d, "cosine")) - 1 for d in docs]
    for d in dists:
        d -= d.min(1, keepdims=True)
        d /= d.max(1, keepdims=True)
    padded = torch.full((4, 6, 15), 7.0, dtype=torch.float64)
    for k, d in enumerate(dists):
        padded[k, :, : d.shape[1]] = torch.from_numpy(d)
    costs = subsequence_dtw(padded, torch.tensor([4, 9, 15, 3])).numpy()
    assert np.allclose(costs, [_naive_dtw(d) for d in dists])
    # the whole matcher (cosine_exp, row min-max) = minus those costs
    got = match_scores(torch.from_numpy(query), [torch.from_numpy(d) for d in docs], "cosine_exp", True)
    assert np.allclose(got, [-_naive_dtw(d) for d in dists])
    # a query found verbatim inside a document costs 0 there
    inside = np.concatenate([rng.standard_normal((3, 5)), query, rng.standard_normal((4, 5))])
    assert match_scores(torch.from_numpy(query), [torch.from_numpy(inside)], "cosine", False)[0] == pytest.approx(0)
    z = znorm(np.array([1.0, 2.0, 3.0]))
    assert np.allclose(z, [-1.2247449, 0.0, 1.2247449])


def test_quesst_twv_constants():
    # the QUESST constants
    task = QueryByExample({"p_target": 0.0008, "c_miss": 100, "c_fa": 1})
    assert task.beta == pytest.approx(12.49)


def test_full_run_writes_the_detection_list(quesst, tmp_path):
    cfg = resolve_config("qbe", use_mini=False)
    cfg.update({"upstream": {"name": "fbank", "ckpt": None, "random_init": False, "options": {}},
                "data": {"dir": str(quesst)}, "device": "cpu"})
    res = Runner(cfg, tmp_path / "run", progress=False).run()
    assert res["layer_weights"] == [1.0] and res["qbe"]["best_layer"] == 0
    assert set(res["metrics"]) == {"dev", "test"} and res["metrics"]["dev"]["mtwv"] > 0
    # the exact tone pairs are found: both eval queries rank their document first
    root = ET.parse(tmp_path / "run" / "predictions" / "test" / "benchmark.stdlist.xml").getroot()
    assert root.tag == "stdlist" and root.attrib["system_id"] == "benchmark"
    lists = root.findall("detected_termlist")
    assert [t.attrib["termid"] for t in lists] == ["quesst14_eval_0001", "quesst14_eval_0002"]
    best = {t.attrib["termid"]: max(t.findall("term"), key=lambda e: float(e.attrib["score"])).attrib["file"]
            for t in lists}
    assert best == {"quesst14_eval_0001": "quesst14_00003", "quesst14_eval_0002": "quesst14_00005"}
    assert all(len(t.findall("term")) == 5 for t in lists)
    assert res["metrics"]["test"]["mtwv"] == pytest.approx(100.0)


def test_mini_quesst_split_parses():
    from superb.downstream.mini import ensure_split

    data = ensure_split("quesst", profile="tiny", progress=False)
    task = QueryByExample({"language": "nnenglish"})
    splits = task.prepare(data)
    assert {k: len(v) for k, v in splits.items()} == {"docs": 12, "dev": 3, "test": 3}
    assert all(task.ground_truth["dev"].positives.get(e.id) for e in splits["dev"])


def test_mini_quesst_split_is_reproducible(tmp_path):
    import hashlib

    from superb.downstream.mini import ensure_split

    def digest(d):
        return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(d.rglob("*")) if p.is_file() and p.name != "COMPLETE"}

    a = ensure_split("quesst", profile="tiny", cache_dir=tmp_path / "a", progress=False)
    b = ensure_split("quesst", profile="tiny", cache_dir=tmp_path / "b", progress=False)
    assert digest(a) == digest(b) and len(digest(a)) == 12 + 3 + 3 + 1 + 3 + 6
