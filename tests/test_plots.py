"""Plots people read (benchmark/plots.py): score bars from 0 with one colour per upstream, the
layer-weight heatmap on a fixed [0, 1] scale, and a run's training curves (single run and
learning-rate sweep folders written by hand in the runner's log.jsonl/results.json format)."""
import json
import math
import re

import pytest
from matplotlib.colors import to_rgba

from superb.benchmark import leaderboard as lb
from superb.benchmark.export import build_board, collect
from superb.benchmark.plots import (fmt_value, layer_weights_figure, scores_figure, training_curves_figure,
                                    upstream_colors, write_plots, write_training_curves)

from results_fixtures import write_run

PNG = b"\x89PNG\r\n\x1a\n"


def _mark_mini(run):
    data = json.loads((run / "results.json").read_text())
    data["data"] = {"dir": str(run / "data"), "source": "mini", "mini_profile": "tiny", "mini_seed": 3}
    (run / "results.json").write_text(json.dumps(data))


def _board(tmp_path):
    """hubert_base and wav2vec2 on PR (lower is better) and SID, fbank on real data and on the mini corpus."""
    root = tmp_path / "runs"
    values = {"hubert_base": (5.41, 81.42), "wav2vec2": (5.74, 75.18),
              "fbank": (41.3, 45.138888888888886), "fbank_mini": (38.0, 50.0)}
    for name, (per, acc) in values.items():
        up = "fbank" if name.startswith("fbank") else name
        for task, metric, v in (("pr", "PER", per), ("sid", "Acc", acc)):
            m = lb.metric(task, metric)
            run = write_run(root / name, task, task, {m.result_keys[0]: v / m.scale}, upstream=up,
                            higher={m.result_keys[0]: m.higher_is_better},
                            layer_weights=[0.5, 0.3, 0.2] if task == "pr" else [0.1, 0.1, 0.8])
            if name == "fbank_mini":
                _mark_mini(run)
    col = collect([root])
    return col, build_board(col)


def _bars(ax):
    """{tick label: (facecolor, hatch, height)} of a score panel."""
    labels = [t.get_text() for t in ax.get_xticklabels()]
    out = {}
    for bar in ax.containers[0]:
        x = round(bar.get_x() + bar.get_width() / 2)
        out[labels[x]] = (bar.get_facecolor(), bar.get_hatch() or "", bar.get_height())
    return out


def test_score_bars_start_at_zero_with_one_colour_per_upstream(tmp_path):
    col, board = _board(tmp_path)
    fig = scores_figure(board.rows, list(board.tasks))
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["PR PER (%) ↓", "SID Acc (%) ↑"]
    seen = {}
    for ax in panels:
        lo, hi = ax.get_ylim()
        assert lo == 0.0  # lower-is-better PR too: the bars' length is the value
        bars = _bars(ax)
        assert hi >= max(h for _, _, h in bars.values())
        assert set(bars) == {"hubert_base", "wav2vec2", "fbank", "fbank [mini]"}
        for label, (color, _, _) in bars.items():
            assert seen.setdefault(label, color) == color  # the same colour in every panel
        assert bars["fbank [mini]"][1] == "//" and bars["fbank"][1] == ""
    # one colour per upstream: the mini row shares fbank's colour (and is hatched), the others differ
    assert seen["fbank [mini]"] == seen["fbank"]
    assert len({seen["hubert_base"], seen["wav2vec2"], seen["fbank"]}) == 3
    # the colours are those write_plots hands to every figure
    colors = upstream_colors([r.upstream for r in board.rows])
    assert {k: to_rgba(v) for k, v in colors.items()} == seen


def test_score_values_are_rounded_in_legends_and_on_bars(tmp_path):
    assert [fmt_value(v) for v in (45.138888888888886, 93.6, 1000.0, 0.58, -0.004)] == \
        ["45.14", "93.6", "1000", "0.58", "0"]
    col, board = _board(tmp_path)
    fig = scores_figure(board.rows, list(board.tasks))
    sid = next(ax for ax in fig.axes if ax.get_title().startswith("SID"))
    on_bars = sorted(t.get_text() for t in sid.texts)
    assert on_bars == sorted(["81.42", "75.18", "45.14", "50"])
    legend = [t.get_text() for t in sid.get_legend().get_texts()]
    assert legend[:2] == [f"FBANK {fmt_value(lb.metric('sid', 'Acc').fbank)}", f"SOTA {fmt_value(lb.metric('sid', 'Acc').sota)}"]
    for text in legend + on_bars:
        assert not re.search(r"\.\d{3}", text), text


def test_layer_weight_heatmap_tasks_by_layers_on_a_unit_scale(tmp_path):
    col, board = _board(tmp_path)
    up = col.upstreams["hubert_base"]
    fig = layer_weights_figure(up, color=(1.0, 0.0, 0.0, 1.0))
    ax = fig.axes[0]
    img = ax.get_images()[0]
    assert img.get_array().shape == (2, 3)  # tasks as rows, layers as columns
    assert [t.get_text() for t in ax.get_yticklabels()] == ["PR", "SID"]
    assert img.get_clim() == (0.0, 1.0)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "softmax weight"  # the colour bar
    assert ax.title.get_bbox_patch().get_facecolor()[:3] == (1.0, 0.0, 0.0)
    written = sorted(p.name for p in write_plots(col, board, tmp_path / "plots"))
    assert written == ["layer_weights_fbank.png", "layer_weights_fbank_mini.png", "layer_weights_hubert_base.png",
                       "layer_weights_wav2vec2.png", "scores.png"]


# ---------------------------------------------------------------------------------------------
# training curves


def _write_log(folder, lr, dev_acc, every=50, steps=300, eval_every=100):
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in range(every, steps + 1, every):
        lines.append({"step": s, "loss": 2.0 * math.exp(-s / 100) + 0.1 * lr * 1e4, "lr": lr, "wall_s": s / 10})
        if s % eval_every == 0:
            lines.append({"step": s, "dev": {"accuracy": dev_acc[s // eval_every - 1], "loss": 1.0}, "wall_s": s / 10})
    (folder / "log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return lines


def _results(folder, best_step, **extra):
    data = {"task": "ks", "upstream": {"name": "hubert_base"}, "primary_metric": "accuracy",
            "higher_is_better": {"accuracy": True}, "best_step": best_step, **extra}
    (folder / "results.json").write_text(json.dumps(data))


def _axis(fig, ylabel):
    return next(ax for ax in fig.axes if ax.get_ylabel().startswith(ylabel))


def _curves(ax):
    return [ln for ln in ax.get_lines() if ln.get_marker() in ("None", "o") and ln.get_linestyle() == "-"]


def _stars(ax):
    return [ln for ln in ax.get_lines() if ln.get_marker() == "*"]


def test_training_curves_of_a_single_run(tmp_path):
    run = tmp_path / "run"
    lines = _write_log(run, 1e-4, [60.0, 72.5, 70.0])
    _results(run, best_step=200)
    path = write_training_curves(run)
    assert path == run / "training_curves.png" and path.read_bytes()[:8] == PNG
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    fig = training_curves_figure(run)
    loss, dev = _axis(fig, "training loss"), _axis(fig, "dev accuracy")
    assert dev.get_ylabel() == "dev accuracy ↑" and dev.get_xlabel() == "step"
    (curve,) = _curves(loss)
    assert list(curve.get_xdata()) == [x["step"] for x in lines if "loss" in x]
    assert list(curve.get_ydata()) == pytest.approx([x["loss"] for x in lines if "loss" in x])
    (dev_curve,) = _curves(dev)
    assert list(dev_curve.get_xdata()) == [100, 200, 300] and list(dev_curve.get_ydata()) == [60.0, 72.5, 70.0]
    (star,) = _stars(dev)
    assert list(star.get_xdata()) == [200] and list(star.get_ydata()) == [72.5]
    for ax in (loss, dev):  # the best step marked in both panels
        assert [list(ln.get_xdata()) for ln in ax.get_lines() if ln.get_linestyle() == "--"] == [[200, 200]]
    assert "best dev accuracy 72.5 at step 200" in fig.get_suptitle()
    assert _axis(fig, "learning rate").get_lines()[0].get_ydata()[0] == pytest.approx(1e-4)


def test_training_curves_of_a_learning_rate_sweep(tmp_path):
    run = tmp_path / "sweep"
    rates = [1e-3, 1e-4, 1e-5]
    devs = {1e-3: [50.0, 55.0, 52.0], 1e-4: [61.0, 64.0, 66.25], 1e-5: [40.0, 45.0, 48.0]}
    best = {1e-3: 200, 1e-4: 300, 1e-5: 300}
    for lr in rates:
        _write_log(run / f"lr{lr:g}", lr, devs[lr])
    _results(run, best_step=300, sweep={
        "rates": rates, "best_lr": 1e-4, "selected_by": "best dev accuracy",
        "members": [{"lr": lr, "dir": f"lr{lr:g}", "best_step": best[lr], "best_dev": max(devs[lr])} for lr in rates]})
    assert write_training_curves(run).read_bytes()[:8] == PNG
    fig = training_curves_figure(run)
    loss, dev = _axis(fig, "training loss"), _axis(fig, "dev accuracy")
    loss_lines, dev_lines = _curves(loss), _curves(dev)
    assert [ln.get_label() for ln in loss_lines] == ["lr 0.001", "lr 0.0001 (selected)", "lr 1e-05"]
    colours = [to_rgba(ln.get_color()) for ln in loss_lines]
    assert len(set(colours)) == 3  # one colour per rate, the same in both panels
    assert [to_rgba(ln.get_color()) for ln in dev_lines] == colours
    assert [list(ln.get_ydata()) for ln in dev_lines] == [devs[lr] for lr in rates]
    widths = [ln.get_linewidth() for ln in loss_lines]
    assert widths[1] > widths[0] == widths[2]  # the selected rate stands out
    stars = _stars(dev)
    assert [(s.get_xdata()[0], s.get_ydata()[0]) for s in stars] == [(200, 55.0), (300, 66.25), (300, 48.0)]
    assert stars[1].get_markersize() > stars[0].get_markersize()
    assert [list(ln.get_xdata()) for ln in dev.get_lines() if ln.get_linestyle() == "--"] == [[300, 300]]
    assert "(lr 0.0001)" in fig.get_suptitle()
    assert [t.get_text() for t in loss.get_legend().get_texts()] == [ln.get_label() for ln in loss_lines]


def test_training_curves_errors_name_the_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _results(run, best_step=100)
    with pytest.raises(ValueError, match=re.escape(str(run / "log.jsonl")) + ": missing"):
        write_training_curves(run)
    (run / "log.jsonl").write_text('{"step": 50, "loss": 1.0, "lr": 0.001, "wall_s": 1}\n{"step": 100, "los')
    with pytest.raises(ValueError, match=re.escape(str(run / "log.jsonl")) + ": line 2 "):
        write_training_curves(run)
    (run / "log.jsonl").write_text("")
    with pytest.raises(ValueError, match=re.escape(str(run / "log.jsonl")) + ": no training or dev lines"):
        write_training_curves(run)
    assert not (run / "training_curves.png").exists()
    # a sweep names the member folder whose log is missing
    sweep = tmp_path / "sweep"
    _write_log(sweep / "lr0.001", 1e-3, [1.0, 2.0, 3.0])
    _results(sweep, best_step=300, sweep={"rates": [1e-3, 1e-4], "best_lr": 1e-3, "members": [
        {"lr": 1e-3, "dir": "lr0.001", "best_step": 300}, {"lr": 1e-4, "dir": "lr0.0001", "best_step": 100}]})
    with pytest.raises(ValueError, match=re.escape(str(sweep / "lr0.0001" / "log.jsonl"))):
        write_training_curves(sweep)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "none" / "results.json"))):
        write_training_curves(tmp_path / "none")


def test_training_curves_of_a_cross_validated_run(tmp_path):
    run = tmp_path / "er"
    for k, acc in ((1, [50.0, 60.0, 55.0]), (2, [40.0, 45.0, 47.0])):
        _write_log(run / f"fold{k}", 1e-4, acc)
        _results(run / f"fold{k}", best_step=200 if k == 1 else 300)
    _results(run, best_step=None, folds={"1": {"best_step": 200}, "2": {"best_step": 300}})
    assert not (run / "log.jsonl").exists()
    fig = training_curves_figure(run)
    dev = _axis(fig, "dev accuracy")
    assert [ln.get_label() for ln in _curves(dev)] == ["fold 1", "fold 2"]
    assert [(s.get_xdata()[0], s.get_ydata()[0]) for s in _stars(dev)] == [(200, 60.0), (300, 47.0)]
    assert write_training_curves(run) == run / "training_curves.png"
