"""PNG plots of an export (``superb export --plot DIR``); matplotlib's Agg backend, no display.

* ``scores.png``: one panel per leaderboard metric of the view (tasks with results only): each
  upstream's value as a bar, the FBANK and SOTA reference points as dashed lines, and the
  direction of improvement in the title. Bars are coloured by SUPERB points (red below FBANK,
  green at or above SOTA). Rows of runs on the embedded mini corpus are hatched and labelled
  ``<upstream> [mini]`` (their points are against the real test sets' reference points, so the
  colour says little); the legend says so.
* ``layer_weights_<upstream>.png``: the learned softmax layer weights (tasks x layers) of one
  upstream -- the figure SUPERB papers use to show where each kind of information lives. A task
  evaluated on a single layer (``featurizer.layer=N``, or QbE's layer pick) shows as one-hot.
  A mini-corpus row's file and title carry its ``[mini]`` label (``layer_weights_fbank_mini.png``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from . import leaderboard as lb


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


MINI_HATCH = "//"


def _shown(upstream) -> str:
    """The upstream's label as the table shows it (``[mini]`` for mini-corpus rows)."""
    return getattr(upstream, "display", upstream.label)


def _is_mini(upstream) -> bool:
    return bool(getattr(upstream, "mini", False))


def _safe(label: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", label).strip("_") or "upstream"


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


def plot_layer_weights(upstream, path: Path) -> Optional[Path]:
    tasks, mat = layer_weight_matrix(upstream)
    if not tasks:
        return None
    n_layers = mat.shape[1]
    fig = _figure(max(5.0, 0.45 * n_layers + 2.5), max(2.5, 0.45 * len(tasks) + 1.5))
    ax = fig.add_subplot()
    im = ax.imshow(mat, aspect="auto", cmap="viridis", vmin=0.0, vmax=max(float(mat.max()), 1e-9))
    ax.set_xticks(range(n_layers))
    ax.set_xticklabels([str(i) for i in range(n_layers)], fontsize=8)
    ax.set_yticks(range(len(tasks)))
    ax.set_yticklabels([lb.short_name(t) for t in tasks])
    ax.set_xlabel("hidden state (0 = first)")
    ax.set_title(f"{_shown(upstream)}: learned layer weights")
    if n_layers <= 26:
        for i in range(len(tasks)):
            for j in range(n_layers):
                v = mat[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if v < 0.6 * mat.max() else "black")
    fig.colorbar(im, ax=ax, label="softmax weight")
    fig.savefig(path)
    return path


def plot_scores(rows: Sequence, tasks: Sequence[str], path: Path) -> Optional[Path]:
    """Per-metric panels of displayed values against FBANK and SOTA. ``rows``: board rows."""
    panels = [(t, m) for t in tasks for m in lb.TASKS[t].metrics
              if any(t in r.upstream.tasks and r.upstream.tasks[t].scored for r in rows)]
    if not panels:
        return None
    cols = min(4, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    labels = [_shown(r.upstream) for r in rows]
    any_mini = any(_is_mini(r.upstream) for r in rows)
    fig = _figure(3.4 * cols, 2.9 * nrows + 0.4)
    axes = fig.subplots(nrows, cols, squeeze=False)
    import matplotlib

    cmap = matplotlib.colormaps["RdYlGn"]
    for k, (t, m) in enumerate(panels):
        ax = axes[k // cols][k % cols]
        xs, vals, colors, hatches = [], [], [], []
        for i, r in enumerate(rows):
            e = r.upstream.tasks.get(t)
            if e is None or not e.scored:
                continue
            v = e.displayed[m.name]
            xs.append(i)
            vals.append(v)
            colors.append(cmap(min(max(m.points(v) / 1000.0, 0.0), 1.0)))
            hatches.append(MINI_HATCH if _is_mini(r.upstream) else "")
        bars = ax.bar(xs, vals, color=colors, edgecolor="black", linewidth=0.5)
        for bar, hatch in zip(bars, hatches):
            if hatch:
                bar.set_hatch(hatch)
        ax.axhline(m.fbank, color="gray", linestyle="--", linewidth=1, label=f"FBANK {m.fbank:g}")
        ax.axhline(m.sota, color="green", linestyle="--", linewidth=1, label=f"SOTA {m.sota:g}")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        unit = f" ({m.unit})" if m.unit else ""
        ax.set_title(f"{lb.short_name(t)} {m.name}{unit} {'↑' if m.higher_is_better else '↓'}", fontsize=9)
        lo = min(vals + [m.fbank, m.sota])
        hi = max(vals + [m.fbank, m.sota])
        pad = 0.1 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
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
    fig.savefig(path)
    return path


def write_plots(col, board, out_dir) -> List[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    tasks = list(board.tasks) + list(board.extra)
    p = plot_scores(board.rows, tasks, out / "scores.png")
    if p:
        written.append(p)
    for r in board.rows:
        if r.upstream.published:
            continue
        p = plot_layer_weights(r.upstream, out / f"layer_weights_{_safe(_shown(r.upstream))}.png")
        if p:
            written.append(p)
    return written


__all__ = ["layer_weight_matrix", "plot_layer_weights", "plot_scores", "write_plots"]
