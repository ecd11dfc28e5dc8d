"""``superb submit RUN_DIR... --out predict.zip``: the leaderboard's public-set submission archive.

Layout (superb-reference.md section 8, from s3prl ``submit/submit.py`` v0.4.18; facts, no code):
a zip of ``predict/<task>_public/<file>``.

=====  ==================================  =============================================
task   path in the zip                     content (one line per item)
=====  ==================================  =============================================
pr     predict/pr_public/predict.ark       ``utt hypothesis`` (phones)
asr    predict/asr_public/predict.ark      ``utt hypothesis`` (no LM); a run decoded with the
       predict/asr_lm_public/predict.ark   KenLM n-gram adds its ``predict_lm.ark`` (ASR+LM)
ks     predict/ks_public/predict.txt       ``utt label``; utt = ``<label>-<file>.wav``
                                           (``<label>/<file>.wav`` ids are converted)
sid    predict/sid_public/predict.txt      ``utt label``
ic     predict/ic_public/predict.csv       ``utt,action,object,location`` (no header)
er     predict/er_fold{1..5}_public/       ``utt label`` per fold; all five folds required
       predict.txt
qbe    predict/qbe_public/                 the STD list XML (root ``<stdlist>``)
       benchmark.stdlist.xml
sf     predict/sf_public/predict.ark       ``utt hypothesis`` (with slot tokens)
asv    predict/sv_public/predict.txt       ``pair score``; pair = ``<enroll>_<test>``, each
                                           ``<spk>-<video>-<utt>`` (last three path parts,
                                           extension dropped)
sd     predict/sd_public/                  ``<rec>.h5`` per test recording (the posteriors as
                                           dataset ``T_hat``, what the server scores), the other
                                           test prediction files of the SD run (``hyp.rttm``,
                                           ...), and ``frame_shift``: samples (16 kHz) per
                                           prediction frame -- the task's own file, else the
                                           upstream's downsample rate. ``--no-sd-h5`` keeps
                                           ``posteriors/<rec>.npy`` (not scored by the server)
se/ss  predict/{se,ss}_public/metrics.txt  self-reported ``metric value`` lines, exactly the ones
                                           the server reads: SE ``pesq``, ``stoi``; SS ``si_sdri``
                                           (from the run's metrics.txt, else results.json)
st     predict/st_public/predict.tsv       tab-separated with ``hyp`` and ``ref`` columns
=====  ==================================  =============================================

Server facts are from the leaderboard's own scorer (superbbenchmark/website-react
``backend/calculate.py``, ``backend/inference/make_rttm.py``); ``docs/submission.md`` has them
task by task. The prediction files come from each run's ``results.json`` (``predictions[<test split>]``; ER from
``folds``). Every file is validated -- and converted where the task's own format differs (an IC
header row, ASV ``enroll test score`` lines) -- before anything is written; problems name the
run, the file and the line. Tasks of the public set without a run are listed (``--require-all``
makes that an error); runs of no public-set task at all are an error, not an empty zip. Prediction
paths must stay inside their run folder (see :mod:`superb.benchmark.export`). The archive is
deterministic (sorted entries, fixed timestamps).

Mini-corpus runs are refused: a run whose results.json says ``data.source == "mini"`` (the
runner's record of the embedded synthetic corpus, with its ``mini_profile`` and ``mini_seed``) was
trained and tested on data the leaderboard does not score, so ``submit`` stops with one line
naming the run folder(s) and nothing is written; ``--allow-mini`` packs such runs anyway (a test
of the archive, not a submission). Runs whose results.json has no ``data.source`` (written before
the runner recorded it, or by hand) are treated as real-data runs and are not refused. (The
library function :func:`plan_submission` refuses them only when called with ``allow_mini=False``,
as ``superb submit`` does; ``Plan.mini`` names the mini corpus of what it packed.)
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import os
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from superb.downstream.fileio import atomic_write_bytes
from superb.downstream.tasks import describe_tasks

from .export import Collection, RunResult, TaskEntry, UpstreamResults, collect, describe_mini

LEADERBOARD_SUBMISSION_SOURCE = "s3prl v0.4.18 submit/submit.py (superb-reference.md section 8)"


class SubmitError(ValueError):
    pass


@dataclass(frozen=True)
class SubmitTarget:
    folder: str                  # under predict/; "{fold}" is replaced for fold tasks
    file: Optional[str]          # file name in the folder; None: a folder of files (SD)
    fmt: str                     # validator / converter
    sources: Tuple[str, ...]     # accepted names of the task's prediction file, preferred first
    folds: int = 0
    server_metrics: Tuple[str, ...] = ()   # metrics.txt lines the server reads (SE, SS), in order


def _layout() -> Tuple[Dict[str, SubmitTarget], Dict[str, Tuple[SubmitTarget, ...]]]:
    """Each task's submission files as its module declares them (``submission = (Submission(...),
    ...)``): the main one, and the others (ASR's LM-decoded output)."""
    main: Dict[str, SubmitTarget] = {}
    extra: Dict[str, Tuple[SubmitTarget, ...]] = {}
    for info in sorted(describe_tasks(), key=lambda i: (i.leaderboard.position if i.leaderboard else 99, i.name)):
        targets = [SubmitTarget(d.folder, d.file or None, d.fmt, tuple(d.sources),
                                len(info.folds) if "{fold}" in d.folder else 0, tuple(d.server_metrics))
                   for d in info.submission]
        if targets:
            main[info.name], extra[info.name] = targets[0], tuple(targets[1:])
    return main, extra


#: task id -> where its predictions go in the zip (the public set's layout); EXTRA: further files a
#: task fills when its run wrote them (ASR decoded with the KenLM n-gram: the server's ASR+LM column)
LAYOUT, EXTRA = _layout()


# ---------------------------------------------------------------------------------------------
# validators / converters: (path, text) -> normalised bytes
# ---------------------------------------------------------------------------------------------
def _lines(path: Path) -> List[Tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SubmitError(f"{path}: not UTF-8 text ({exc})") from exc
    out = [(i + 1, line.rstrip("\r\n").rstrip()) for i, line in enumerate(text.splitlines())]
    out = [(n, line) for n, line in out if line.strip()]
    if not out:
        raise SubmitError(f"{path}: empty prediction file")
    return out


def _no_dups(path: Path, keys: List[Tuple[int, str]]) -> None:
    seen: Dict[str, int] = {}
    for n, k in keys:
        if k in seen:
            raise SubmitError(f"{path}:{n}: id {k!r} repeats line {seen[k]}")
        seen[k] = n


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _is_finite(s: str) -> bool:
    return _is_float(s) and math.isfinite(float(s))


def fmt_utt_text(path: Path) -> bytes:
    rows = []
    for n, line in _lines(path):
        utt, _, hyp = line.strip().partition(" ")
        rows.append((n, utt, " ".join(hyp.split())))
    _no_dups(path, [(n, u) for n, u, _ in rows])
    return "".join(f"{u} {h}\n" if h else f"{u}\n" for _, u, h in rows).encode()


def fmt_utt_label(path: Path) -> bytes:
    rows = []
    for n, line in _lines(path):
        parts = line.split()
        if len(parts) != 2:
            raise SubmitError(f"{path}:{n}: expected `utt label`, got {line!r}")
        rows.append((n, parts[0], parts[1]))
    _no_dups(path, [(n, u) for n, u, _ in rows])
    return "".join(f"{u} {lab}\n" for _, u, lab in rows).encode()


_KS_ID = re.compile(r"^[^/\\\s]+-[^/\\\s]+\.wav$", re.IGNORECASE)


def fmt_ks_label(path: Path) -> bytes:
    """KS ``utt label`` lines with the server's ids, ``<label>-<file>.wav`` (the last two path parts
    joined with ``-``); ids written as ``<label>/<file>.wav`` (runs of superb before 0.5) are converted."""
    rows = []
    for n, line in _lines(path):
        parts = line.split()
        if len(parts) != 2:
            raise SubmitError(f"{path}:{n}: expected `utt label`, got {line!r}")
        utt = parts[0]
        if "/" in utt:
            utt = "-".join(utt.split("/")[-2:])
        if not _KS_ID.match(utt):
            raise SubmitError(f"{path}:{n}: KS id {parts[0]!r} is not of the form <label>-<file>.wav (e.g. "
                              "yes-0a2b400e_nohash_0.wav), which the leaderboard server's truth file is keyed by")
        rows.append((n, utt, parts[1]))
    _no_dups(path, [(n, u) for n, u, _ in rows])
    return "".join(f"{u} {lab}\n" for _, u, lab in rows).encode()


_IC_ID = ("id", "utt", "path", "filename", "file", "wav", "audio")


def fmt_ic_csv(path: Path) -> bytes:
    text = "\n".join(line for _, line in _lines(path))
    rows = list(csv.reader(io.StringIO(text)))
    header = [c.strip().lower() for c in rows[0]]
    if {"action", "object", "location"} <= set(header):
        idc = next((header.index(c) for c in _IC_ID if c in header), None)
        if idc is None:
            raise SubmitError(f"{path}: header {rows[0]} has no utterance id column ({', '.join(_IC_ID)})")
        order = [idc, header.index("action"), header.index("object"), header.index("location")]
        rows = [[r[i] for i in order] if len(r) == len(header) else r for r in rows[1:]]
        start = 2
    else:
        start = 1
    for k, r in enumerate(rows):
        if len(r) != 4 or not all(c.strip() for c in r):
            raise SubmitError(f"{path}:{k + start}: expected `utt,action,object,location`, got {','.join(r)!r}")
    _no_dups(path, [(k + start, r[0]) for k, r in enumerate(rows)])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([[c.strip() for c in r] for r in rows])
    return buf.getvalue().encode()


def _trial_name(p: str) -> str:
    parts = list(Path(p).parts[-3:])
    parts[-1] = Path(parts[-1]).stem if Path(parts[-1]).suffix.lower() in (".wav", ".flac", ".m4a") else parts[-1]
    return "-".join(parts)


def fmt_pair_score(path: Path) -> bytes:
    rows = []
    for n, line in _lines(path):
        parts = line.split()
        if len(parts) == 2 and _is_finite(parts[1]):
            pair, score = parts
        elif len(parts) == 3 and _is_finite(parts[2]):
            pair, score = f"{_trial_name(parts[0])}_{_trial_name(parts[1])}", parts[2]
        else:  # a NaN score would make the server's EER (sklearn roc_curve) fail for the whole column
            raise SubmitError(f"{path}:{n}: expected `pair score` or `enroll test score` with a finite score, "
                              f"got {line!r}")
        rows.append((n, pair, score))
    _no_dups(path, [(n, p) for n, p, _ in rows])
    return "".join(f"{p} {s}\n" for _, p, s in rows).encode()


def fmt_stdlist_xml(path: Path) -> bytes:
    data = path.read_bytes()
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise SubmitError(f"{path}: not valid XML ({exc})") from exc
    if root.tag != "stdlist":
        raise SubmitError(f"{path}: root element is <{root.tag}>, expected <stdlist>")
    return data


_METRIC_LINE = re.compile(r"^\s*([A-Za-z][\w.\-]*)\s*[:=]?\s+([-+0-9.eE]+|nan|inf)\s*$")


def read_metric_lines(path: Path) -> Dict[str, float]:
    values: Dict[str, float] = {}
    for n, line in _lines(path):
        m = _METRIC_LINE.match(line)
        if not m or not _is_float(m.group(2)):
            raise SubmitError(f"{path}:{n}: expected `metric value`, got {line!r}")
        if m.group(1) in values:
            raise SubmitError(f"{path}:{n}: metric {m.group(1)!r} appears twice")
        values[m.group(1)] = float(m.group(2))
    return values


def server_metric_lines(task: str, values: Dict[str, float], names: Tuple[str, ...], where: str) -> bytes:
    """``name value`` lines of exactly the metrics the server reads. Its SE scorer takes the lines
    named ``pesq`` and ``stoi``; its SS scorer takes the *last* line whose name contains
    ``si_sdr`` -- so ``si_sdr`` or ``si_sdr_input`` lines would replace SI-SDRi; only these lines
    are written."""
    missing = [k for k in names if k not in values]
    if missing:
        raise SubmitError(f"{task}: {where} has no {', '.join(missing)} value; the leaderboard reads "
                          f"{', '.join(names)} from {task}_public/metrics.txt")
    bad = [k for k in names if values[k] != values[k] or abs(values[k]) == float("inf")]
    if bad:
        raise SubmitError(f"{task}: {where}: {', '.join(f'{k} = {values[k]}' for k in bad)} is not a finite number")
    return "".join(f"{k} {values[k]:.6f}\n" for k in names).encode()


def fmt_metrics(path: Path) -> bytes:
    read_metric_lines(path)
    return path.read_bytes()


def fmt_hyp_ref_tsv(path: Path) -> bytes:
    """ST: the server reads the file with ``csv.DictReader`` (tab, no quoting) and takes the columns
    named exactly ``hyp`` and ``ref``. Fields are counted on the raw line: an empty last field
    (an empty hypothesis or reference) is still a field."""
    _lines(path)  # UTF-8, not empty
    lines = [(i + 1, line.rstrip("\r\n")) for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"))]
    lines = [(n, line) for n, line in lines if line.strip()]
    header = [c.strip() for c in lines[0][1].split("\t")]
    if "hyp" not in header or "ref" not in header:
        raise SubmitError(f"{path}:{lines[0][0]}: header must name `hyp` and `ref` columns (tab-separated, lower "
                          f"case: the server's csv.DictReader looks them up by name), got {lines[0][1]!r}")
    for n, line in lines[1:]:
        if len(line.split("\t")) != len(header):
            raise SubmitError(f"{path}:{n}: {len(line.split(chr(9)))} tab-separated fields, the header has {len(header)}")
    return path.read_bytes()


FORMATS = {
    "utt_text": fmt_utt_text, "utt_label": fmt_utt_label, "ks_label": fmt_ks_label, "ic_csv": fmt_ic_csv, "pair_score": fmt_pair_score,
    "stdlist_xml": fmt_stdlist_xml, "metrics": fmt_metrics, "hyp_ref_tsv": fmt_hyp_ref_tsv,
}


# ---------------------------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------------------------
def _pick(task: str, target: SubmitTarget, files: List[Path], where: str) -> Path:
    if not files:
        raise SubmitError(f"{task}: {where} lists no test prediction files (results.json `predictions`)")
    for name in target.sources:
        hits = [f for f in files if f.name == name]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise SubmitError(f"{task}: {where} has several {name} files: {', '.join(map(str, hits))}")
    if len(files) == 1:
        return files[0]
    raise SubmitError(f"{task}: cannot tell which of {', '.join(f.name for f in files)} ({where}) is the submission "
                      f"file; expected one named {' or '.join(target.sources)}")


def _exists(task: str, f: Path, entry: Optional[TaskEntry] = None) -> Path:
    """``f`` if it is a file; with ``entry``, also inside one of the entry's run folders (collect()
    already refuses paths leading out of a run folder; this guards TaskEntry objects built elsewhere)."""
    if entry is not None and entry.runs:
        real = Path(f).resolve()
        roots = [r.run_dir.resolve() for r in entry.runs]
        if not any(real.is_relative_to(root) for root in roots):
            raise SubmitError(f"{task}: prediction file {f} (listed in {_where(entry)}) is outside the run folder "
                              f"{', '.join(map(str, roots))}; refusing to read it")
    if not f.is_file():
        raise SubmitError(f"{task}: prediction file listed in results.json is missing: {f}")
    return f


def _where(entry: TaskEntry) -> str:
    return ", ".join(str(r.path) for r in entry.runs)


def _plan_sd(task: str, entry: TaskEntry, target: SubmitTarget, where: str, sd_h5: bool) -> Dict[str, bytes]:
    """SD: the run's test prediction files, keeping their paths below the split folder, plus
    ``frame_shift``. With ``sd_h5`` (the default) each ``posteriors/<recording>.npy`` becomes
    ``sd_public/<recording>.h5`` with the dataset ``T_hat``: the server globs ``sd_public/*.h5``
    (not recursively), thresholds ``T_hat`` and scores the RTTM it makes; without any h5 file it
    skips SD, so a run without posteriors is an error unless ``--no-sd-h5``."""
    files = [_exists(task, f, entry) for f in entry.predictions]
    if not [f for f in files if f.name != "frame_shift"]:
        raise SubmitError(f"{task}: {where} lists no test prediction files")
    if sd_h5 and not any(f.suffix in (".npy", ".h5") for f in files):
        raise SubmitError(f"{task}: {where} lists no posteriors (posteriors/<recording>.npy); the leaderboard server "
                          "scores SD only from sd_public/<recording>.h5 files (pass --no-sd-h5 to pack the run's "
                          "files anyway, which the server will not score)")
    base = Path(os.path.commonpath([str(f.parent) for f in files]))
    out: Dict[str, bytes] = {}
    rels = {}
    for f in files:
        rel = f.relative_to(base).as_posix()
        if sd_h5 and f.suffix in (".npy", ".h5"):
            rel = f"{f.stem}.h5"  # top level: the server's glob is sd_public/*.h5
        if rel in rels:
            raise SubmitError(f"{task}: {rels[rel]} and {f} would both become sd_public/{rel}")
        rels[rel] = f
        out[f"predict/{target.folder}/{rel}"] = _npy_to_h5(f) if sd_h5 and f.suffix == ".npy" else f.read_bytes()
    shift = next((f for f in files if f.name == "frame_shift"), None)
    if shift is not None:
        value = shift.read_text().strip()
        if not value.isdigit() or int(value) <= 0:
            raise SubmitError(f"{shift}: frame_shift must be a positive integer (samples), got {value!r}")
        if shift.parent != base:
            out[f"predict/{target.folder}/frame_shift"] = f"{int(value)}\n".encode()
    else:
        rate = (entry.runs[0].upstream or {}).get("downsample_rate")
        if not isinstance(rate, int) or rate <= 0:
            raise SubmitError(f"{task}: {where}: upstream.downsample_rate {rate!r} cannot give the frame_shift file")
        out[f"predict/{target.folder}/frame_shift"] = f"{rate}\n".encode()
    return out


def _npy_to_h5(path: Path) -> bytes:
    try:
        import h5py
    except ImportError as exc:
        raise SubmitError("SD h5 posteriors need h5py (pip install h5py)") from exc
    import numpy as np

    arr = np.load(path)
    if arr.ndim != 2:
        raise SubmitError(f"{path}: posteriors must be [frames, speakers], got shape {arr.shape}")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.create_dataset("T_hat", data=arr.astype(np.float32), track_times=False)
    return buf.getvalue()


def plan_task(task: str, entry: TaskEntry, upstream: UpstreamResults, sd_h5: bool = True) -> Dict[str, bytes]:
    """``{zip path: content}`` of one task; raises :class:`SubmitError` naming what is wrong."""
    target = LAYOUT[task]
    where = _where(entry)
    if entry.problem and not target.folds:
        raise SubmitError(f"{task}: {entry.problem}")
    out: Dict[str, bytes] = {}
    if target.folds:
        have = entry.fold_predictions
        missing = [k for k in range(1, target.folds + 1) if not have.get(k)]
        if missing:
            names = ", ".join(target.folder.format(fold=k) for k in missing)
            raise SubmitError(f"{task}: folds {', '.join(map(str, missing))} missing ({names}) in {where}; the leaderboard "
                              f"scores {task.upper()} only with all {target.folds} folds")
        for k in range(1, target.folds + 1):
            src = _exists(task, _pick(task, target, have[k], f"fold {k} of {where}"), entry)
            out[f"predict/{target.folder.format(fold=k)}/{target.file}"] = FORMATS[target.fmt](src)
        return out
    if target.fmt == "sd_dir":
        return _plan_sd(task, entry, target, where, sd_h5)
    dest = f"predict/{target.folder}/{target.file}"
    if target.fmt == "metrics":
        if any(f.name in target.sources for f in entry.predictions):
            src = _exists(task, _pick(task, target, entry.predictions, where), entry)
            values, origin = read_metric_lines(src), str(src)
        elif entry.metrics:
            values, origin = {k: float(v) for k, v in entry.metrics.items()}, f"{where} (test metrics)"
        else:
            raise SubmitError(f"{task}: {where} has neither a metrics.txt prediction file nor test metrics")
        out[dest] = server_metric_lines(task, values, target.server_metrics, origin)
        return out
    rest = list(entry.predictions)
    for other in EXTRA.get(task, ()):
        mine = [f for f in rest if f.name in other.sources]
        rest = [f for f in rest if f.name not in other.sources]
        if mine:
            src = _exists(task, _pick(task, other, mine, where), entry)
            out[f"predict/{other.folder}/{other.file}"] = FORMATS[other.fmt](src)
    src = _exists(task, _pick(task, target, rest, where), entry)
    out[dest] = FORMATS[target.fmt](src)
    return out


@dataclass
class Plan:
    upstream: str
    files: Dict[str, bytes]
    included: List[str]
    missing: List[str]
    ignored: List[str]
    mini: Optional[str] = None   # packed with --allow-mini: the mini corpus the runs used ("profile P, seed S")


def mini_refusal(runs: List[RunResult]) -> Optional[str]:
    """The one-line refusal for the mini-corpus runs among ``runs`` (None when there are none)."""
    minis: Dict[str, List[str]] = {}
    seen = set()
    for r in runs:
        m = r.mini
        if m is None or r.run_dir in seen:
            continue
        seen.add(r.run_dir)
        minis.setdefault(describe_mini(m), []).append(str(r.run_dir))
    if not minis:
        return None
    count = sum(len(v) for v in minis.values())
    if len(minis) == 1:
        (corpus, dirs), = minis.items()
        who = f"{', '.join(dirs)} {'was' if count == 1 else 'were'} trained/tested on the embedded mini corpus ({corpus})"
    else:
        who = (", ".join(f"{', '.join(dirs)} ({corpus})" for corpus, dirs in minis.items())
               + " were trained/tested on the embedded mini corpus")
    return (f"{who}; the leaderboard scores the real test sets; pass --allow-mini to pack "
            f"{'it' if count == 1 else 'them'} anyway")


def select_upstream(col: Collection, upstream: Optional[str] = None) -> UpstreamResults:
    """The one upstream of ``col`` to submit (``upstream``: its label as shown, or its name)."""
    ups = [u for u in col.upstreams.values() if not u.published]
    if upstream is not None:
        exact = [u for u in ups if upstream in (u.label, u.display)]
        ups = exact or [u for u in ups if u.info.get("name") == upstream]
        if not ups:
            raise SubmitError(f"--upstream {upstream!r} matches none of: "
                              f"{', '.join(u.display for u in col.upstreams.values())}")
    if len(ups) != 1:
        raise SubmitError("a submission holds one upstream; these runs have "
                          f"{len(ups)}: {', '.join(u.display for u in ups) or 'none'} (pick one with --upstream LABEL)")
    return ups[0]


def upstream_runs(up: UpstreamResults) -> List[RunResult]:
    """The runs whose files a submission of ``up`` packs."""
    return [r for e in up.tasks.values() for r in e.runs]


def plan_submission(col: Collection, upstream: Optional[str] = None, require_all: bool = False,
                    sd_h5: bool = True, allow_mini: bool = True) -> Plan:
    """The archive's files for the one upstream of ``col`` (or ``upstream``, a label or name).
    ``allow_mini=False`` refuses runs on the embedded mini corpus, as ``superb submit`` does
    without ``--allow-mini`` (module docstring); either way ``Plan.mini`` names their corpus."""
    up = select_upstream(col, upstream)
    runs = upstream_runs(up)
    refusal = mini_refusal(runs)
    if refusal and not allow_mini:
        raise SubmitError(refusal)
    files: Dict[str, bytes] = {}
    errors: List[str] = []
    included = []
    for task in LAYOUT:
        if task not in up.tasks:
            continue
        try:
            files.update(plan_task(task, up.tasks[task], up, sd_h5))
            included.append(task)
        except (SubmitError, OSError) as exc:
            errors.append(str(exc))
    missing = [t for t in LAYOUT if t not in up.tasks]
    ignored = sorted(t for t in up.tasks if t not in LAYOUT)
    if require_all and missing:
        errors.append(f"--require-all: no runs for {', '.join(missing)}")
    if errors:
        raise SubmitError("the submission is not valid; nothing was written:\n  " + "\n  ".join(errors))
    if not files:
        found = f"its runs are of {', '.join(ignored)}, not part of the public set" if ignored else "it has no runs"
        raise SubmitError(f"nothing to submit for upstream {up.label}: {found}; the public set's tasks are "
                          f"{', '.join(LAYOUT)}. Nothing was written")
    corpora = sorted({describe_mini(r.mini) for r in runs if r.mini is not None})
    return Plan(up.label, files, included, missing, ignored, "; ".join(corpora) or None)


def write_zip(files: Dict[str, bytes], out: Path) -> Path:
    """Deterministic zip: directory entries, sorted paths, fixed timestamps; written atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dirs = set()
    for name in files:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]) + "/")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(dirs | set(files)):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            if name.endswith("/"):
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, files[name])
    return atomic_write_bytes(out, buf.getvalue())


def cmd_submit(args) -> int:
    col = collect(args.run_dirs)
    plan = plan_submission(col, args.upstream, args.require_all, args.sd_h5, allow_mini=args.allow_mini)
    if not args.dry_run:
        write_zip(plan.files, Path(args.out))
    print(f"{'would write' if args.dry_run else 'wrote'} {args.out}: upstream {plan.upstream}, "
          f"{len(plan.included)} tasks")
    for name in sorted(plan.files):
        data = plan.files[name]
        binary = name.endswith((".h5", ".npy"))
        size = f"{len(data)} bytes" if binary else f"{data.count(bytes([10]))} lines"
        print(f"  {name}  ({size})")
    if plan.missing:
        print(f"not included (no runs): {', '.join(plan.missing)}")
    if plan.ignored:
        print(f"not part of the public-set submission: {', '.join(plan.ignored)}")
    if plan.mini:
        print(f"warning: --allow-mini: these runs were trained/tested on the embedded mini corpus ({plan.mini}); "
              "the leaderboard scores the real test sets, so this archive is a format check, not a result")
    return 0


def register(sub) -> None:
    p = sub.add_parser("submit", help="build the leaderboard's public-set submission zip from run directories",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, results.json files or folders of runs")
    p.add_argument("--out", required=True, help="the zip to write, e.g. predict.zip")
    p.add_argument("--upstream", help="the upstream to submit when the runs hold several (label shown by export)")
    p.add_argument("--require-all", action="store_true", help="fail unless every public-set task has a run")
    p.add_argument("--sd-h5", action=argparse.BooleanOptionalAction, default=True,
                   help="SD: ship the posteriors as s3prl's <recording>.h5 files, dataset T_hat (default: the "
                        "server scores SD only from sd_public/*.h5); --no-sd-h5 ships the run's .npy files "
                        "as they are, which the server does not score")
    p.add_argument("--allow-mini", action="store_true",
                   help="pack runs trained/tested on the embedded mini corpus (refused by default: the leaderboard "
                        "scores the real test sets)")
    p.add_argument("--dry-run", action="store_true", help="validate and list, write nothing")
    p.set_defaults(func=cmd_submit)


__all__ = ["EXTRA", "LAYOUT", "Plan", "SubmitError", "SubmitTarget", "mini_refusal", "plan_submission", "plan_task",
           "select_upstream", "upstream_runs", "write_zip"]
