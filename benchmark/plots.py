"""PNG plots of an export (``superb export --plot DIR``) and of one run's training; matplotlib's
Agg backend, imported only when a figure is drawn, no display.

* ``scores.png``: one panel per leaderboard metric of the view (tasks with results only): each
  upstream's value as a bar on an axis that starts at 0 (lower-is-better metrics too; the arrow
  in the panel title gives the direction of improvement), its value written on the bar, and the
  FBANK and SOTA reference points as dashed lines. Each upstream has one colour, the same in
  every panel and in its layer-weight figure (:func:`upstream_colors`); a mini-corpus row shares
  the colour of the same upstream on real data and is hatched and labelled ``<upstream> [mini]``
  (its points are against the real test sets' reference points); the legend says so. Values in
  legends and on bars are rounded to 2 decimals (:func:`fmt_value`).
* ``layer_weights_<upstream>.png``: the learned softmax layer weights of one upstream, tasks as
  rows (leaderboard order) and hidden states as columns, on a colour bar fixed to [0, 1] (so
  figures of different upstreams compare), each cell's value written in it for up to 26 layers
  -- the figure SUPERB papers use to show where each kind of information lives. A task
  evaluated on a single layer (``featurizer.layer=N``, or QbE's layer pick) shows as one-hot.
  A mini-corpus row's file and title carry its ``[mini]`` label (``layer_weights_fbank_mini.png``).
* ``training_curves.png`` (:func:`write_training_curves`, next to a run's ``results.json``):
  the training loss against the step (top panel, with the learning-rate schedule on the right
  axis for a single run) and the dev primary metric against the step (bottom panel), the best
  dev step marked in both. A learning-rate sweep draws one line per rate (one colour per rate)
  and marks the selected rate; a cross-validated run (``fold<k>/`` folders) one line per fold.
"""
from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import leaderboard as lb


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, path: Path) -> Path:
    """``fig`` as PNG at ``path``, atomically (:func:`~superb.downstream.fileio.atomic_write_bytes`)."""
    from superb.downstream.fileio import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())


MINI_HATCH = "//"


def fmt_value(v: float) -> str:
    """A value for a legend or an annotation: 2 decimals, trailing zeros dropped (45.14, 93.6, 1000)."""
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _shown(upstream) -> str:
    """The upstream's label as the table shows it (``[mini]`` for mini-corpus rows)."""
    return getattr(upstream, "display", upstream.label)


def _is_mini(upstream) -> bool:
    return bool(getattr(upstream, "mini", False))


def _safe(label: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", label).strip("_") or "upstream"


def _colour_key(upstream) -> str:
    """What one colour stands for: the upstream without its mini-corpus mark."""
    return re.sub(r"\s*\[mini[^\]]*\]\s*$", "", _shown(upstream)) or _shown(upstream)


def _palette(n: int) -> List[Tuple[float, float, float, float]]:
    import matplotlib

    if n <= 10:
        cmap = matplotlib.colormaps["tab10"]
        return [cmap(i) for i in range(n)]
    if n <= 20:
        cmap = matplotlib.colormaps["tab20"]
        return [cmap(i) for i in range(n)]
    cmap = matplotlib.colormaps["turbo"]
    return [cmap(0.05 + 0.9 * i / (n - 1)) for i in range(n)]


def upstream_colors(upstreams: Sequence) -> Dict[str, Tuple[float, float, float, float]]:
    """One colour per upstream (keyed by its shown label), in the order given: every row of an
    upstream -- its mini-corpus row too -- gets the same colour, distinct from the others'."""
    keys: List[str] = []
    for up in upstreams:
        k = _colour_key(up)
        if k not in keys:
            keys.append(k)
    by_key = dict(zip(keys, _palette(len(keys))))
    return {_shown(up): by_key[_colour_key(up)] for up in upstreams}


def layer_weight_matrix(upstream) -> Tuple[List[str], np.ndarray]:
    """Tasks (in leaderboard order) and their layer weights as a ``[tasks, layers]`` array.

    Tasks whose weight vectors have another length than the most common one (impossible for one
    upstream unless results were mixed) are left out."""
    items = [(t, e.layer_weights) for t, e in upstream.tasks.items() if e.layer_weights]
    if not items:
        return [], np.zeros((0, 0))
    lengths = [len(w) for _, w in items]
    common = max(set(lengths), key=lengths.count)
    order = {t: i for i, t in enumerate(lb.ordered_tasks(t for t, _ in items))}
    items = sorted([(t, w) for t, w in items if len(w) == common], key=lambda x: order[x[0]])
    return [t for t, _ in items], np.array([w for _, w in items], dtype=float)


def layer_weights_figure(upstream, color=None):
    """The layer-weight heatmap of ``upstream`` (a matplotlib Figure), or None without weights.
    ``color``: the upstream's colour in the score plot, shown behind the title."""
    tasks, mat = layer_weight_matrix(upstream)
    if not tasks:
        return None
    n_layers = mat.shape[1]
    fig = _figure(max(5.0, 0.45 * n_layers + 2.5), max(2.5, 0.45 * len(tasks) + 1.5))
    ax = fig.add_subplot()
    im = ax.imshow(mat, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(n_layers))
    ax.set_xticklabels([str(i) for i in range(n_layers)], fontsize=8)
    ax.set_yticks(range(len(tasks)))
    ax.set_yticklabels([lb.short_name(t) for t in tasks])
    ax.set_xlabel("hidden state (0 = first)")
    ax.set_ylabel("task")
    title_box = None if color is None else {"facecolor": color, "alpha": 0.35, "edgecolor": "none", "pad": 2}
    ax.set_title(f"{_shown(upstream)}: learned layer weights", bbox=title_box)
    if n_layers <= 26:
        for i in range(len(tasks)):
            for j in range(n_layers):
                v = mat[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if v < 0.6 else "black")
    fig.colorbar(im, ax=ax, label="softmax weight")
    return fig


def plot_layer_weights(upstream, path: Path, color=None) -> Optional[Path]:
    fig = layer_weights_figure(upstream, color)
    return None if fig is None else _save(fig, path)


def _panels(rows: Sequence, tasks: Sequence[str]):
    return [(t, m) for t in tasks for m in lb.TASKS[t].metrics
            if any(t in r.upstream.tasks and r.upstream.tasks[t].scored for r in rows)]


def scores_figure(rows: Sequence, tasks: Sequence[str], colors: Optional[Dict[str, Any]] = None):
    """Per-metric panels of displayed values against FBANK and SOTA (a matplotlib Figure), or
    None when no row has a scored task. ``rows``: board rows; ``colors``: :func:`upstream_colors`
    of them (computed from ``rows`` when not given)."""
    panels = _panels(rows, tasks)
    if not panels:
        return None
    colors = {**upstream_colors([r.upstream for r in rows]), **(colors or {})}
    cols = min(4, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    labels = [_shown(r.upstream) for r in rows]
    any_mini = any(_is_mini(r.upstream) for r in rows)
    many = len(rows) > 6
    fig = _figure(max(3.4, 0.28 * len(rows) + 1.6) * cols, 2.9 * nrows + 0.4)
    axes = fig.subplots(nrows, cols, squeeze=False)
    for k, (t, m) in enumerate(panels):
        ax = axes[k // cols][k % cols]
        xs, vals, face, hatches = [], [], [], []
        for i, r in enumerate(rows):
            e = r.upstream.tasks.get(t)
            if e is None or not e.scored:
                continue
            xs.append(i)
            vals.append(float(e.displayed[m.name]))
            face.append(colors[_shown(r.upstream)])
            hatches.append(MINI_HATCH if _is_mini(r.upstream) else "")
        bars = ax.bar(xs, vals, color=face, edgecolor="black", linewidth=0.5)
        for bar, hatch in zip(bars, hatches):
            if hatch:
                bar.set_hatch(hatch)
        ax.bar_label(bars, labels=[fmt_value(v) for v in vals], fontsize=6, padding=1,
                     rotation=90 if many else 0)
        ax.axhline(m.fbank, color="gray", linestyle="--", linewidth=1, label=f"FBANK {fmt_value(m.fbank)}")
        ax.axhline(m.sota, color="green", linestyle="--", linewidth=1, label=f"SOTA {fmt_value(m.sota)}")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        unit = f" ({m.unit})" if m.unit else ""
        ax.set_title(f"{lb.short_name(t)} {m.name}{unit} {'↑' if m.higher_is_better else '↓'}", fontsize=9)
        # bars start at 0 (an axis that does not would mislead); room above for the value labels
        lo = min(vals + [m.fbank, m.sota, 0.0])
        hi = max(vals + [m.fbank, m.sota, 0.0])
        span = (hi - lo) or 1.0
        head = 0.25 if many else 0.15
        ax.set_ylim(lo - head * span if lo < 0 else 0.0, hi + head * span if hi > 0 else 0.0)
        if any_mini:
            from matplotlib.patches import Patch

            handles, names = ax.get_legend_handles_labels()
            handles.append(Patch(facecolor="white", edgecolor="black", hatch=MINI_HATCH))
            names.append("[mini]: mini corpus")
            ax.legend(handles, names, fontsize=6, loc="best")
        else:
            ax.legend(fontsize=6, loc="best")
    for k in range(len(panels), nrows * cols):
        axes[k // cols][k % cols].set_visible(False)
    title = "Scores against the SUPERB reference points (FBANK = 0 points, SOTA = 1000)"
    if any_mini:
        title += "; hatched: embedded mini corpus, not the real test sets"
    fig.suptitle(title, fontsize=10)
    return fig


def plot_scores(rows: Sequence, tasks: Sequence[str], path: Path,
                colors: Optional[Dict[str, Any]] = None) -> Optional[Path]:
    """:func:`scores_figure` saved at ``path``; None when there is nothing to plot."""
    fig = scores_figure(rows, tasks, colors)
    return None if fig is None else _save(fig, path)


def write_plots(col, board, out_dir) -> List[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    tasks = list(board.tasks) + list(board.extra)
    colors = upstream_colors([r.upstream for r in board.rows])
    p = plot_scores(board.rows, tasks, out / "scores.png", colors)
    if p:
        written.append(p)
    for r in board.rows:
        if r.upstream.published:
            continue
        shown = _shown(r.upstream)
        p = plot_layer_weights(r.upstream, out / f"layer_weights_{_safe(shown)}.png", colors.get(shown))
        if p:
            written.append(p)
    return written


# ---------------------------------------------------------------------------------------------
# training curves of one run


def _read_text_file(path: Path, missing: str) -> str:
    """``path``'s text; missing or unreadable files are ValueErrors naming it (``missing`` says why
    the file should be there)."""
    from superb.downstream.fileio import read_text

    try:
        return read_text(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing ({missing})") from None
    except OSError as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None


def _read_json_file(path: Path) -> Dict[str, Any]:
    from superb.downstream.fileio import read_json

    try:
        data = read_json(path)  # invalid JSON: a ValueError naming the file
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (no results.json: not a finished run folder)") from None
    except OSError as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a results object")
    return data


def read_training_log(path) -> Tuple[List[Tuple[int, float, Optional[float]]], List[Tuple[int, Dict[str, Any]]]]:
    """The training lines ``(step, loss, lr)`` and dev lines ``(step, metrics)`` of a ``log.jsonl``,
    each sorted by step (a step logged twice keeps its last line). A missing, unreadable or
    malformed file, or one with no line of either kind, is a ValueError naming it."""
    path = Path(path)
    text = _read_text_file(path, "the run wrote no training log")
    train: Dict[int, Tuple[float, Optional[float]]] = {}
    dev: Dict[int, Dict[str, Any]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            step = int(rec["step"])
            if "dev" in rec:
                if not isinstance(rec["dev"], dict):
                    raise TypeError("dev is not an object")
                dev[step] = rec["dev"]
            elif "loss" in rec:
                lr = rec.get("lr")
                train[step] = (float(rec["loss"]), None if lr is None else float(lr))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}: line {n} is not a log line of the runner "
                             f"({{\"step\", \"loss\", ...}} or {{\"step\", \"dev\", ...}}): {exc}") from None
    if not train and not dev:
        raise ValueError(f"{path}: no training or dev lines")
    return ([(s, *train[s]) for s in sorted(train)], [(s, dev[s]) for s in sorted(dev)])


def _curve_members(run_dir: Path, results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """What to draw: ``{"label", "log", "best_step", "selected"}`` per line."""
    sweep = results.get("sweep")
    folds = results.get("folds")
    if isinstance(folds, dict) and folds:
        out = []
        for k in sorted(folds, key=lambda s: (len(str(s)), str(s))):
            fold_dir = run_dir / f"fold{k}"
            # a fold that is itself a sweep: its selected rate's log
            inner = _curve_members(fold_dir, _read_json_file(fold_dir / "results.json")) \
                if (fold_dir / "results.json").is_file() else []
            chosen = next((m for m in inner if m["selected"]), None)
            out.append({"label": f"fold {k}" + (f" ({chosen['label']})" if chosen and len(inner) > 1 else ""),
                        "log": chosen["log"] if chosen else fold_dir / "log.jsonl",
                        "best_step": (chosen or {}).get("best_step", (folds[k] or {}).get("best_step")),
                        "selected": False})
        return out
    if isinstance(sweep, dict) and sweep.get("members"):
        best_lr = sweep.get("best_lr")
        return [{"label": f"lr {float(m['lr']):g}", "log": run_dir / str(m["dir"]) / "log.jsonl",
                 "best_step": m.get("best_step"),
                 "selected": best_lr is not None and float(m["lr"]) == float(best_lr)}
                for m in sweep["members"]]
    return [{"label": None, "log": run_dir / "log.jsonl", "best_step": results.get("best_step"), "selected": True}]


def _log_minor_label(v: float, _pos=None) -> str:
    """Minor tick labels of a log axis: 2 and 5 times a power of ten only (0.2, 0.5, 2, 5)."""
    if v <= 0:
        return ""
    lead = v / 10 ** math.floor(math.log10(v))
    return f"{v:g}" if round(lead, 6) in (2.0, 5.0) else ""


def training_curves_figure(run_dir):
    """The training-curve figure of a run folder (a matplotlib Figure): the training loss (top)
    and the dev primary metric (bottom) against the step, one line per learning rate of a sweep
    (or per fold), the best dev step marked. A missing or unreadable ``log.jsonl`` or
    ``results.json`` is a ValueError naming the file."""
    run_dir = Path(run_dir)
    results = _read_json_file(run_dir / "results.json")
    primary = results.get("primary_metric")
    if not primary:
        raise ValueError(f"{run_dir / 'results.json'}: no primary_metric")
    higher = (results.get("higher_is_better") or {}).get(primary, True)
    members = _curve_members(run_dir, results)
    logs = [read_training_log(m["log"]) for m in members]
    single = len(members) == 1
    if single:
        colors = [(0.12, 0.47, 0.71, 1.0)]
    else:
        colors = _palette(len(members))

    fig = _figure(7.0, 5.6)
    ax_loss, ax_dev = fig.subplots(2, 1, sharex=True)
    all_loss: List[float] = []
    best_text = []
    for m, (train, dev), c in zip(members, logs, colors):
        width = 2.0 if m["selected"] and not single else 1.3
        label = None if single else m["label"] + (" (selected)" if m["selected"] else "")
        if train:
            steps = [s for s, _, _ in train]
            losses = [v for _, v, _ in train]
            all_loss += [v for v in losses if math.isfinite(v)]
            ax_loss.plot(steps, losses, color=c, linewidth=width, label=label)
            lrs = [lr for _, _, lr in train]
            if single and all(lr is not None for lr in lrs):
                ax_lr = ax_loss.twinx()
                ax_lr.plot(steps, lrs, color="gray", linestyle=":", linewidth=1)
                ax_lr.set_ylabel("learning rate", color="gray", fontsize=8)
                ax_lr.tick_params(axis="y", labelsize=7, colors="gray")
        pts = [(s, float(d[primary])) for s, d in dev
               if isinstance(d.get(primary), (int, float)) and not isinstance(d.get(primary), bool)]
        if pts:
            ax_dev.plot([s for s, _ in pts], [v for _, v in pts], color=c, linewidth=width, marker="o",
                        markersize=3, label=label)
        best = m["best_step"]
        if best is None and pts:  # older results without best_step: the best dev value's step
            best = (max if higher else min)(pts, key=lambda p: p[1])[0]
        at = [v for s, v in pts if s == best]
        if best is not None and at:
            selected = m["selected"]
            ax_dev.plot([best], at, linestyle="none", marker="*", markersize=14 if selected else 9,
                        markerfacecolor=c, markeredgecolor="black", markeredgewidth=0.7, zorder=5)
            if selected:
                for ax in (ax_loss, ax_dev):
                    ax.axvline(best, color="black", linestyle="--", linewidth=0.8, alpha=0.6)
                best_text.append(f"best dev {primary} {fmt_value(at[0])} at step {best}"
                                 + ("" if single else f" ({m['label']})"))
    if all_loss and min(all_loss) > 0 and max(all_loss) / min(all_loss) > 20:
        from matplotlib.ticker import FuncFormatter

        ax_loss.set_yscale("log")
        ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax_loss.yaxis.set_minor_formatter(FuncFormatter(_log_minor_label))
    ax_loss.set_ylabel("training loss")
    if not all_loss:
        ax_loss.text(0.5, 0.5, "no training-loss lines in the log", ha="center", va="center",
                     transform=ax_loss.transAxes, fontsize=8)
    ax_dev.set_ylabel(f"dev {primary} {'↑' if higher else '↓'}")
    ax_dev.set_xlabel("step")
    if not any(dev for _, dev in logs):
        ax_dev.text(0.5, 0.5, "no dev evaluation in the log", ha="center", va="center",
                    transform=ax_dev.transAxes, fontsize=8)
    if not single:
        ax_loss.legend(fontsize=7, loc="best")
    for ax in (ax_loss, ax_dev):
        ax.grid(True, alpha=0.3)
    up = results.get("upstream") or {}
    name = up.get("name") if isinstance(up, dict) else None
    head = " / ".join(str(x) for x in (results.get("task"), name) if x)
    title = (head + ": " if head else "") + "training curves"
    if best_text:
        title += "\n" + "; ".join(best_text)
    elif not single and "sweep" in results and results["sweep"].get("best_lr") is not None:
        title += f"\nselected lr {float(results['sweep']['best_lr']):g}"
    fig.suptitle(title, fontsize=9)
    return fig


def write_training_curves(run_dir) -> Path:
    """``training_curves.png`` of a finished run folder, written next to its ``results.json``
    (:func:`training_curves_figure`); returns its path."""
    run_dir = Path(run_dir)
    return _save(training_curves_figure(run_dir), run_dir / "training_curves.png")


__all__ = ["fmt_value", "layer_weight_matrix", "layer_weights_figure", "plot_layer_weights", "plot_scores",
           "read_training_log", "scores_figure", "training_curves_figure", "upstream_colors",
           "write_plots", "write_training_curves"]
