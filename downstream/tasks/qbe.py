"""QbE — query-by-example spoken term detection on QUESST 2014 (SUPERB content task, no training).

Layout: ``--data`` points at ``quesst14Database/``, with the audio converted to 16 kHz (the release
is 8 kHz and superb never resamples behind your back); :mod:`superb.downstream.corpora.quesst14`
reads it and documents the files.

What is searched (s3prl ``quesst14_dtw``, SUPERB): the entries of the language-key lists whose
language is ``task.language`` (``nnenglish``: 138 dev and 138 eval queries against 2,438
documents); the first path component of a list entry is dropped and the rest is read relative
to ``--data``. Every searched query must be a term of the split's tlist and every searched
document an excerpt of its ECF, or it is an error.

Matching (s3prl ``dtw_utils.py``, per hidden layer): features of the split's queries and all
documents are normalised per dimension (mean and standard deviation over all their frames,
``feature_normalization``); the frame distance is ``cosine_exp`` = exp(cosine distance) - 1;
each query frame's row of the distance matrix is min-max normalised over the document
(``minmax_norm``); subsequence DTW with the asymmetric step pattern (each query frame advances
one step while the document advances 0, 1 or 2 frames; free start and end in the document) gives
the cost normalised by the query length, and the score is minus that cost. Queries shorter than
5 frames score 0 against every document. Scores are z-normalised per query over the documents.
The DTW runs in torch on the run's device (GPU when present).

Scoring — TWV as the QUESST scoring tool computes it (``score-TWV-Cnxe.sh`` with the NIST
STD 2006 term-weighted value, one trial per query and document): ``P_target = 0.0008``,
``C_miss = 100``, ``C_fa = 1``, so ``beta = (C_fa / C_miss) * (1 - P_target) / P_target = 12.49``
(these constants are set in the scoring script shipped in the database; the QUESST 2015 copy was
checked, 2014's is assumed identical). For a decision threshold theta, per query q with
``N_true(q) > 0`` documents containing it (an RTTM LEXEME line), ``P_miss(q) = 1 - hits / N_true``
and ``P_fa(q) = false alarms / (N_docs - N_true)``, and
``TWV(theta) = 1 - mean_q [P_miss(q) + beta * P_fa(q)]`` over those queries; queries without any
occurrence are left out (the tool's "removing unseen models"). Trials are every tlist query ×
every ECF document; those not searched (other languages) get ``task.default_score`` (-10, the
value s3prl's scoring call passes). ``mtwv`` = max over theta (detection when score >= theta;
no detection at all gives 0), ``atwv`` = TWV at the fixed decision ``score > 2.0`` that
s3prl writes into the detection list. Both are reported x100, the leaderboard's display unit
(FBANK's MTWV 0.0058 is 0.58 here).

Layers: every hidden state is tried (or only ``featurizer.layer`` when set); the layer with the
best dev MTWV is chosen and its eval MTWV is the test result (SUPERB: dev picks the layer).
``results.json`` also lists each layer's dev and eval MTWV under ``qbe``.

Predictions (the leaderboard's ``qbe_public/benchmark.stdlist.xml``, NIST STD 2006 format):
``predictions/{dev,test}/benchmark.stdlist.xml``, one ``detected_termlist`` per query with a
``term`` per document (``tbeg 0.000``, ``dur 0.00``, the z-normalised score, ``decision`` YES
above 2.0), for the chosen layer.
"""
from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from superb.upstream.base import valid_mask

from ..audio import SAMPLE_RATE
from ..corpora.quesst14 import GroundTruth, prepare_quesst14
from ..fileio import atomic_write_bytes
from ..metrics.detection import actual_twv, maximum_twv
from ..sampler import DurationBatchSampler
from .base import Example, Task
from .declaration import Board, Column, HIGHER, INF, Metric, Submission

# -- matching ---------------------------------------------------------------------------------------
def frame_distances(query: torch.Tensor, docs: torch.Tensor, method: str) -> torch.Tensor:
    """``[B, N, M]`` distances between query frames ``[N, D]`` and padded documents ``[B, M, D]``."""
    if method in ("cosine", "cosine_exp"):
        q = query / query.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        d = docs / docs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        dist = (1.0 - torch.einsum("nd,bmd->bnm", q, d)).clamp_min(0.0)
        return torch.exp(dist) - 1.0 if method == "cosine_exp" else dist
    if method == "euclidean":
        return torch.cdist(query.unsqueeze(0).expand(docs.shape[0], -1, -1), docs)
    if method == "cityblock":
        return torch.cdist(query.unsqueeze(0).expand(docs.shape[0], -1, -1), docs, p=1)
    raise ValueError(f"task.dist_method {method!r} is not one of cosine_exp, cosine, euclidean, cityblock")


def subsequence_dtw(dist: torch.Tensor, doc_lens: torch.Tensor) -> torch.Tensor:
    """Length-normalised cost of the best asymmetric open-begin/open-end alignment, per document.

    ``dist`` is ``[B, N, M]`` (query frames x padded document frames). ``D[0, j] = d[0, j]``;
    ``D[i, j] = d[i, j] + min(D[i-1, j], D[i-1, j-1], D[i-1, j-2])``; cost = ``min_j D[N-1, j] / N``
    over the valid frames of each document.
    """
    b, n, m = dist.shape
    valid = torch.arange(m, device=dist.device)[None, None, :] < doc_lens[:, None, None]
    dist = dist.masked_fill(~valid, float("inf"))  # padding can never be on a finite path
    buf = torch.full((b, m + 2), float("inf"), dtype=dist.dtype, device=dist.device)
    best = torch.empty((b, m), dtype=dist.dtype, device=dist.device)
    acc = buf[:, 2:]
    acc.copy_(dist[:, 0])
    for i in range(1, n):
        torch.minimum(buf[:, 2:], buf[:, 1:-1], out=best)
        torch.minimum(best, buf[:, :-2], out=best)
        torch.add(dist[:, i], best, out=acc)
    return acc.min(dim=1).values / n


def match_scores(query: torch.Tensor, docs: Sequence[torch.Tensor], method: str = "cosine_exp",
                 minmax_norm: bool = True, max_elements: int = 1 << 25) -> np.ndarray:
    """Minus the DTW cost of ``query`` against every document (already feature-normalised)."""
    n = query.shape[0]
    out = np.empty(len(docs), dtype=np.float64)
    order = sorted(range(len(docs)), key=lambda i: docs[i].shape[0])
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and (stop + 1 - start) * n * docs[order[stop]].shape[0] <= max_elements:
            stop += 1
        idx = order[start:stop]
        lens = torch.tensor([docs[i].shape[0] for i in idx], device=query.device)
        batch = torch.nn.utils.rnn.pad_sequence([docs[i] for i in idx], batch_first=True)
        dist = frame_distances(query, batch, method)
        valid = valid_mask(lens.to(query.device), batch.shape[1])[:, None, :]
        if minmax_norm:
            lo = dist.masked_fill(~valid, float("inf")).min(dim=-1, keepdim=True).values
            hi = dist.masked_fill(~valid, float("-inf")).max(dim=-1, keepdim=True).values
            dist = (dist - lo) / (hi - lo).clamp_min(1e-9)
        cost = subsequence_dtw(dist, lens)
        out[idx] = -cost.double().cpu().numpy()
        start = stop
    return out


def znorm(scores: np.ndarray) -> np.ndarray:
    """Per-query z-normalisation over documents (population std, floored at 1e-9)."""
    return (scores - scores.mean()) / max(float(scores.std()), 1e-9)


def write_stdlist(path: Path, query_names: Sequence[str], doc_names: Sequence[str], scores: np.ndarray,
                  threshold: float) -> Path:
    """NIST STD 2006 detection list (the layout s3prl writes for the QUESST scorer)."""
    root = ET.Element("stdlist", {"termlist_filename": "benchmark.stdlist.xml", "indexing_time": "1.00",
                                  "language": "english", "index_size": "1", "system_id": "benchmark"})
    for qi, q in enumerate(query_names):
        terms = ET.SubElement(root, "detected_termlist", {"termid": q, "term_search_time": "1.0",
                                                            "oov_term_count": "1"})
        for di, d in enumerate(doc_names):
            s = float(scores[qi, di])
            ET.SubElement(terms, "term", {"file": d, "channel": "1", "tbeg": "0.000", "dur": "0.00",
                                          "score": f"{s:.4f}", "decision": "YES" if s > threshold else "NO"})
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    ET.ElementTree(root).write(buf, encoding="UTF-8", xml_declaration=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


class QueryByExample(Task):
    name = "qbe"
    title = "Query-by-example spoken term detection"
    category = "content"
    dataset = "QUESST 2014 (English queries and documents)"
    metrics = {"mtwv": Metric(HIGHER, "MTWV x 100"), "atwv": Metric(HIGHER, "ATWV x 100")}
    primary_metric = "mtwv"
    leaderboard = Board("Query by example", (Column("MTWV", ("mtwv",), 0.58, 7.36, unit="x100", valid=(-INF, 100.0)),),
                        position=9, splits=("test", "eval"))  # MTWV reported x 100 already: scale 1
    submission = (Submission("qbe_public", "benchmark.stdlist.xml", "stdlist_xml", ("benchmark.stdlist.xml",)),)
    mini_split = "quesst"
    data_help = "the quesst14Database folder (audio converted to 16 kHz)"
    trainable = False

    def __init__(self, cfg, context=None):
        super().__init__(cfg, context)
        self.ground_truth: Dict[str, GroundTruth] = {}

    def build_head(self, input_dim, downsample_rate):
        return torch.nn.Identity()  # nothing is trained

    @property
    def beta(self) -> float:
        p, c_miss, c_fa = float(self.cfg["p_target"]), float(self.cfg["c_miss"]), float(self.cfg["c_fa"])
        return (c_fa / c_miss) * (1.0 - p) / p

    def prepare(self, data_dir: Path) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("QbE needs --data pointing at the quesst14Database folder")
        splits, truth = prepare_quesst14(Path(data_dir), str(self.cfg["language"]), self.min_samples)
        self.ground_truth.update(truth)
        return splits

    # -- features ------------------------------------------------------------------------------------
    def _layer_groups(self, examples: Sequence[Example], layers: Sequence[int]) -> List[List[int]]:
        frames = sum(e.audio.num_samples for e in examples) / self.context.downsample_rate
        budget = float(self.cfg["cache_gb"]) * (1 << 30)
        groups, cur, used = [], [], 0.0
        for layer in layers:
            need = frames * self.context.hidden_sizes[layer] * 4
            if cur and used + need > budget:
                groups.append(cur)
                cur, used = [], 0.0
            cur.append(layer)
            used += need
        return groups + ([cur] if cur else [])

    def _extract(self, examples: Sequence[Example], layers: Sequence[int]) -> Dict[int, List[torch.Tensor]]:
        feats: Dict[int, List[Optional[torch.Tensor]]] = {layer: [None] * len(examples) for layer in layers}
        budget = int(self.context.eval_max_seconds * SAMPLE_RATE)
        sampler = DurationBatchSampler([e.audio.num_samples for e in examples], budget, shuffle=False,
                                       ids=[e.id for e in examples])
        with torch.no_grad():
            for batch in sampler.epoch_batches():
                hidden, lengths = self.context.upstream_states([examples[i] for i in batch])
                for layer in layers:
                    h = hidden[layer]
                    for b, i in enumerate(batch):
                        feats[layer][i] = h[b, : int(lengths[b])].detach().float().clone()
        return feats

    def _split_scores(self, queries: List[torch.Tensor], docs: List[torch.Tensor]) -> np.ndarray:
        c = self.cfg
        if c["feature_normalization"]:
            allf = torch.cat(queries + docs)
            mean, std = allf.mean(0), allf.std(0).clamp_min(1e-9)
            queries = [(q - mean) / std for q in queries]
            docs = [(d - mean) / std for d in docs]
        scores = np.zeros((len(queries), len(docs)))
        for qi, q in enumerate(queries):
            if q.shape[0] < int(c["min_query_frames"]):
                continue  # too short to match: every document scores 0
            scores[qi] = znorm(match_scores(q, docs, str(c["dist_method"]), bool(c["minmax_norm"])))
        return scores

    def _full_matrix(self, split: str, query_names: Sequence[str], doc_names: Sequence[str],
                     scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        gt = self.ground_truth[split]
        qi = {q: i for i, q in enumerate(gt.queries)}
        di = {d: i for i, d in enumerate(gt.docs)}
        full = np.full((len(gt.queries), len(gt.docs)), float(self.cfg["default_score"]))
        rows = [qi[q] for q in query_names]
        cols = [di[d] for d in doc_names]
        full[np.ix_(rows, cols)] = scores
        targets = np.zeros(full.shape, dtype=bool)
        for q, ds in gt.positives.items():
            for d in ds:
                targets[qi[q], di[d]] = True
        return full, targets

    def evaluate_scores(self, split: str, query_names, doc_names, scores) -> Dict[str, float]:
        full, targets = self._full_matrix(split, query_names, doc_names, scores)
        mtwv, threshold = maximum_twv(full, targets, self.beta)
        atwv = actual_twv(full, targets, self.beta, float(self.cfg["decision_threshold"]))
        return {"mtwv": 100.0 * mtwv, "atwv": 100.0 * atwv, "threshold": threshold}

    def run_untrained(self, splits: Dict[str, List[Example]]) -> Dict:
        for key in ("step_pattern", "subsequence"):
            if (key, self.cfg[key]) not in (("step_pattern", "asymmetric"), ("subsequence", True)):
                raise ValueError(f"task.{key}={self.cfg[key]!r}: only the SUPERB setting (asymmetric, "
                                 "subsequence) is implemented")
        n_layers = len(self.context.hidden_sizes)
        chosen = self.context.layer
        layers = [int(chosen) % n_layers] if chosen is not None else list(range(n_layers))
        docs = splits["docs"]
        everything = splits["dev"] + splits["test"] + docs
        per_layer: Dict[int, Dict[str, Dict]] = {}
        for group in self._layer_groups(everything, layers):
            feats = self._extract(everything, group)
            for layer in group:
                f = feats.pop(layer)
                n_dev, n_test = len(splits["dev"]), len(splits["test"])
                parts = {"dev": f[:n_dev], "test": f[n_dev:n_dev + n_test]}
                doc_feats = f[n_dev + n_test:]
                per_layer[layer] = {}
                for split, qf in parts.items():
                    scores = self._split_scores(qf, doc_feats)
                    res = self.evaluate_scores(split, [e.id for e in splits[split]], [e.id for e in docs], scores)
                    per_layer[layer][split] = {"scores": scores, **res}
        best = max(layers, key=lambda k: (per_layer[k]["dev"]["mtwv"], -k))
        out_dir = self.context.output_dir / "predictions"
        metrics, predictions = {}, {}
        for split in ("dev", "test"):
            r = per_layer[best][split]
            metrics[split] = {"mtwv": r["mtwv"], "atwv": r["atwv"]}
            path = write_stdlist(out_dir / split / "benchmark.stdlist.xml", [e.id for e in splits[split]],
                                 [e.id for e in docs], r["scores"], float(self.cfg["decision_threshold"]))
            predictions[split] = [str(path.relative_to(self.context.output_dir))]
        return {
            "metrics": metrics,
            "predictions": predictions,
            "layer_weights": [1.0 if k == best else 0.0 for k in range(n_layers)],
            "qbe": {
                "best_layer": best,
                "beta": self.beta,
                "mtwv_threshold": {s: (None if math.isinf(per_layer[best][s]["threshold"]) else per_layer[best][s]["threshold"])
                                   for s in ("dev", "test")},
                "layers": {str(k): {"dev_mtwv": per_layer[k]["dev"]["mtwv"], "test_mtwv": per_layer[k]["test"]["mtwv"]}
                           for k in layers},
            },
        }
