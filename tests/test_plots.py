"""The figures of grokjax.plots, checked on the drawn Figure objects."""

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from grokjax import plots
from grokjax.stats.survival import survival_curve


def _luminance(rgb) -> float:
    """WCAG relative luminance of an sRGB colour."""
    c = np.asarray(rgb[:3], float)
    linear = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(linear @ [0.2126, 0.7152, 0.0722])


def _contrast(a, b) -> float:
    """WCAG contrast ratio: 1 (same luminance) to 21 (black on white)."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _landscape():
    x = np.linspace(-6.0, 3.0, 13)
    y = np.linspace(0.05, 0.95, 10)
    y_eq = np.full(x.size, 0.65)
    relative = -20.0 * (y[None, :] - y_eq[:, None]) ** 2  # 0 on the curve, light there
    relative[:, :2] = np.nan  # bins nobody visited
    return x, y, relative, y_eq


def test_equilibrium_curve_shows_on_every_colour_of_the_map():
    x, y, relative, y_eq = _landscape()
    fig = plots.landscape_map_figure(
        x, y, relative, y_eq, trajectories={"AdamW": ([0, -3], [0.1, 0.9])}
    )
    ax = fig.axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("equilibrium")]
    np.testing.assert_array_equal(line.get_ydata(), y_eq)
    colour = to_rgb(line.get_color())
    assert colour != (1.0, 1.0, 1.0)
    cmap = ax.collections[0].get_cmap()
    palette = cmap(np.linspace(0.0, 1.0, 256))[:, :3]
    lightest = palette[np.argmax([_luminance(c) for c in palette])]
    assert not np.allclose(colour, lightest)
    assert _contrast(colour, lightest) >= 4.5
    # where the line itself is dark on dark, its light outline stands out
    (outline,) = [to_rgb(e._gc["foreground"]) for e in line.get_path_effects()]
    worst = min(max(_contrast(colour, c), _contrast(outline, c)) for c in palette)
    assert worst >= 3.0
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "equilibrium (max S at each loss)" in legend


def test_landscape_figure_draws_the_equilibrium_curve_it_computes():
    from grokjax.host.measure import equilibrium_curve, landscape_figure

    rng = np.random.default_rng(0)
    entropy = rng.normal(size=(13, 10))
    histogram = np.ones((13, 10))
    x, y = np.linspace(-6.0, 3.0, 13), np.linspace(0.05, 0.95, 10)
    fig = landscape_figure({"entropy": entropy, "histogram": histogram, "x": x, "y": y}, None)
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("equilibrium")]
    np.testing.assert_array_equal(line.get_ydata(), equilibrium_curve(entropy, histogram, y)[0])


def test_coinciding_survival_curves_are_all_visible():
    same = ([100, 200, 300, 400], [1, 1, 1, 0])
    curves = {
        "a": survival_curve(*same),
        "b": survival_curve(*same),
        "c": survival_curve(*same),
        "d": survival_curve([150, 250], [1, 1]),
    }
    fig = plots.kaplan_meier_figure(curves, None, "time to generalise")
    ax = fig.axes[0]
    steps = [ln for ln in ax.get_lines() if ln.get_drawstyle() == "steps-post"]
    assert len(steps) == 4
    assert len({ln.get_linestyle() for ln in steps}) == 4
    assert len({ln.get_marker() for ln in steps}) == 4
    a, b, c = (np.asarray(ln.get_ydata()) for ln in steps[:3])
    assert not np.allclose(a, b) and not np.allclose(b, c) and not np.allclose(a, c)
    np.testing.assert_allclose(a, [1.0, 0.75, 0.5, 0.25, 0.25])  # the first is drawn true
    assert np.all(np.abs(np.diff([a, b, c], axis=0)) >= 0.01)  # a fixed, visible gap
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "same curve as" not in legend[0] and "same curve as" not in legend[3]
    assert "same curve as a" in legend[1] and "same curve as a" in legend[2]
    low, _ = ax.get_ylim()
    assert low < min(b.min(), c.min())  # the shifted curves stay inside the axes


@pytest.mark.parametrize(
    ("preset", "changes", "title"),
    [
        (
            "default",
            {"data.modulus": 59, "learning_rate": 1e-3},
            "default (data.modulus=59, learning_rate=0.001)",
        ),
        (None, {"data.modulus": 59, "learning_rate": 1e-3}, "data.modulus=59, learning_rate=0.001"),
        ("default", {}, "default"),
        (None, {}, ""),
    ],
)
def test_describe_run(preset, changes, title):
    assert plots.describe_run(preset, changes) == title


def test_describe_run_formats_values_exactly():
    changes = {"learning_rate": 0.1234567, "weight_decay": 1e-5, "waiting_times": (0, 50)}
    assert plots.describe_run("p", changes) == (
        "p (learning_rate=0.1234567, weight_decay=1e-05, waiting_times=(0, 50))"
    )


def _histories(train_loss):
    n, e = train_loss.shape
    acc = np.tile(np.linspace(0.1, 1.0, e, dtype=np.float32), (n, 1))
    return {
        "train_acc": acc,
        "test_acc": acc,
        "smoothed_test_acc": acc,
        "train_loss": train_loss,
        "test_loss": np.full((n, e), 2.0, np.float32),
        "weight_norm": np.full((n, e), 30.0, np.float32),
    }


def test_zero_train_loss_is_drawn_at_a_floor_on_the_log_axis():
    steps = np.array([0, 10, 20, 30, 40])
    train_loss = np.array(
        [[4.0, 0.1, 0.0, 0.0, 0.0], [4.0, 0.05, 3e-7, 0.0, 0.0]], dtype=np.float32
    )
    fig = plots.panel_figure("loss", _histories(train_loss), steps, "default (modulus=59)")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "train (median)"]
    y = np.asarray(line.get_ydata())
    assert y.size == 4 and np.all(np.isfinite(y)) and np.all(y > 0)
    floor = float(np.float32(3e-7))
    assert y.min() == pytest.approx(floor)  # the smallest positive loss drawn
    (marks,) = [ln for ln in ax.get_lines() if "0 drawn at floor" in ln.get_label()]
    assert marks.get_label().startswith("train: 0 drawn")
    np.testing.assert_array_equal(marks.get_xdata(), [20, 30, 40])  # where a member has 0
    np.testing.assert_allclose(marks.get_ydata(), floor)
    assert marks.get_marker() not in ("", "None", None)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("0 drawn at floor" in t for t in legend)
    ymin, _ = ax.get_ylim()
    assert 0 < ymin <= floor
    assert fig.get_suptitle().startswith("default (modulus=59)")


def test_all_zero_loss_still_gets_a_positive_floor():
    steps = np.array([0, 10, 20])
    fig = plots.panel_figure("loss", _histories(np.zeros((2, 3), np.float32)), steps, "t")
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "train (median)"]
    assert np.all(np.asarray(line.get_ydata()) > 0)
    assert fig.axes[0].get_yscale() == "log"


def test_ensemble_figures_write_three_pngs_with_the_callers_title(tmp_path):
    steps = np.array([0, 10, 20])
    histories = _histories(np.array([[2.0, 0.5, 0.0], [2.0, 0.4, 0.1]], np.float32))
    paths = plots.ensemble_figures(histories, steps, tmp_path, "default (modulus=59)")
    assert [p.name for p in paths] == ["accuracy.png", "loss.png", "weight_norm.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    title = plots.panel_figure("accuracy", histories, steps, "default (modulus=59)").get_suptitle()
    assert title == "default (modulus=59) (2 seeds: median, quartiles, range)"


def test_comparison_figure_takes_the_callers_title(tmp_path):
    steps = np.array([0, 10, 20])
    band = np.array([[0.1, 0.2, 0.3], [0.2, 0.3, 0.4], [0.3, 0.4, 0.5]])
    arms = {
        name: {
            "steps": steps,
            "train_acc": band,
            "test_acc": band,
            "weight_norm": band * 10,
            "n_seeds": 4,
        }
        for name in ("adamw", "wand")
    }
    title = "adamw (modulus=59) vs wand (modulus=59)"
    fig = plots.comparison_figure(arms, tmp_path / "c.png", title)
    assert fig.get_suptitle() == title
    assert "4 seeds" in fig.axes[0].get_title()
    assert fig.axes[0].get_shared_x_axes().joined(fig.axes[0], fig.axes[1])  # aligned steps
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_describes_each_arm_by_its_changes_from_the_preset():
    from grokjax.host.compare import Arm, arm_changes
    from grokjax.presets import get_preset

    preset = get_preset("default")
    arm = Arm(
        "default",
        preset.config.replace(**{"data.modulus": 59}),
        preset.hparams._replace(learning_rate=1e-3),
    )
    changes = arm_changes(arm)
    assert plots.describe_run(arm.name, changes) == "default (data.modulus=59, learning_rate=0.001)"
    assert arm_changes(Arm("default", preset.config, preset.hparams)) == {}
    assert arm_changes(Arm("mine", preset.config, preset.hparams)) == {}


def test_indicator_figure_has_one_panel_per_indicator():
    t = np.arange(-5, 5)
    panels = {
        "weight_norm": {"seed 0": (t, 30 - t), "seed 1": (t, 31 - t)},
        "d MSD / dt": {"seed 0": (t, np.exp(-t)), "seed 1": (t, np.exp(-t / 2))},
    }
    fig = plots.indicator_figure(panels, log_y=("d MSD / dt",))
    assert [ax.get_title() for ax in fig.axes] == list(panels)
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "log"]


# One description, two renderers: ticks, number format, band legend, the metric table.


def _run(steps, n=3):
    rng = np.random.default_rng(0)
    e = steps.size
    acc = np.clip(np.linspace(0.0, 1.0, e) + 0.05 * rng.normal(size=(n, e)), 0, 1)
    loss = np.geomspace(2.0, 1e-4, e) * (1 + 0.1 * rng.random((n, e)))
    return {
        "train_acc": acc,
        "test_acc": acc * 0.9,
        "smoothed_test_acc": acc,
        "train_loss": loss,
        "test_loss": loss * 3,
        "weight_norm": np.full((n, e), 30.0),
    }


def _plotly_panel(name, steps, histories):
    pytest.importorskip("plotly")
    from grokjax.figures import FigureSpec, ensemble_panel
    from grokjax.report.views import to_plotly

    return to_plotly(FigureSpec("", (ensemble_panel(name, steps, histories),)))


def _labels(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text()]


def test_log_step_axes_have_1_2_5_ticks_in_both_renderers():
    steps = np.arange(0, 601, 10)
    fig = plots.panel_figure("accuracy", _run(steps), steps, "t")
    ax = fig.axes[0]
    labels = _labels(ax.xaxis)
    assert {"10", "20", "50", "100", "200", "500"} <= set(labels)
    assert "6" not in labels
    assert not [t.label1.get_text() for t in ax.xaxis.get_minor_ticks() if t.label1.get_text()]
    assert ax.get_xlim() == (10, 600)  # the run's step range
    xaxis = _plotly_panel("accuracy", steps, _run(steps)).layout.xaxis
    assert list(xaxis.tickvals) == [10, 20, 50, 100, 200, 500]
    assert list(xaxis.ticktext) == ["10", "20", "50", "100", "200", "500"]
    np.testing.assert_allclose(xaxis.range, np.log10([10, 600]))


@pytest.mark.parametrize(
    ("value", "text"),
    [(1e-4, "1e-4"), (2e-4, "2e-4"), (0.05, "0.05"), (1.0, "1"), (600, "600"), (2e6, "2e6")],
)
def test_numbers_read_as_1e_minus_4_not_si(value, text):
    from grokjax.figures import number_text

    assert number_text(value) == text


def test_small_losses_are_written_1e_minus_4_in_both_renderers():
    steps = np.arange(0, 601, 10)
    histories = _run(steps)
    ax = plots.panel_figure("loss", histories, steps, "t").axes[0]
    assert "1e-4" in _labels(ax.yaxis) and not any("u" in t for t in _labels(ax.yaxis))
    yaxis = _plotly_panel("loss", steps, histories).layout.yaxis
    assert yaxis.type == "log" and yaxis.exponentformat == "e"
    assert "1e-4" in yaxis.ticktext and "1" in yaxis.ticktext


def test_bands_have_legend_entries_in_both_renderers():
    from grokjax.figures import BAND_NAMES

    names = [BAND_NAMES[k] for k in ("quartiles", "range")]
    steps = np.arange(0, 601, 10)
    ax = plots.panel_figure("accuracy", _run(steps), steps, "t").axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(names) <= set(legend)
    fig = _plotly_panel("accuracy", steps, _run(steps))
    shown = [t.name for t in fig.data if t.showlegend is not False]
    assert all(shown.count(name) == 1 for name in names)
    fills = [t for t in fig.data if t.fill == "tonexty"]
    assert {t.legendgroup for t in fills} == {"quartiles", "range"}  # one entry: its kind


def test_a_metric_with_a_panel_is_drawn_by_both_renderers(monkeypatch, tmp_path):
    pytest.importorskip("plotly")
    from grokjax.host.rundata import RunData
    from grokjax.problem.metrics import METRICS, Metric
    from grokjax.report.views import run_figures

    monkeypatch.setitem(METRICS, "head_norm", Metric("a new norm", "norms", "head norm"))
    steps = np.arange(0, 601, 10)
    histories = {**_run(steps), "head_norm": np.full((3, steps.size), 5.0)}
    paths = plots.ensemble_figures(histories, steps, tmp_path, "t")
    fig = plots.panel_figure("norms", histories, steps, "t")
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert "head norm (median)" in labels and "weight norm (median)" in labels
    assert paths[-1].name == "weight_norm.png"
    data = RunData(tmp_path, "finished", steps, histories, [0, 1, 2], {}, None)
    figures = run_figures(data)
    assert "head norm (median)" in [t.name for t in figures["norms"].data]
    colours = {t.name: t.line.color for t in figures["norms"].data if "median" in t.name}
    assert colours["head norm (median)"] != colours["weight norm (median)"]
    # every step panel of a run has the same x range, whatever its metrics cover
    ranges = {name: tuple(f.layout.xaxis.range) for name, f in figures.items()}
    assert len(set(ranges.values())) == 1
