"""Every figure grokjax draws, from arrays and plain data.

The modules that compute call these with the numbers: `grokjax.host.experiment` (ensemble
figures), `grokjax.host.compare` (comparison), `grokjax.stats.survival` (Kaplan-Meier curves),
`grokjax.stats.phases` (phase diagram), `grokjax.stats.landscape_analysis` (entropy map) and
`grokjax.stats.ageing` (ageing curves). Nothing here reads a run directory or estimates
anything; the estimates stay with their modules.

Figures are `matplotlib.figure.Figure` objects made outside pyplot, so drawing and
saving them touches no backend or other global state. Each drawing function returns its
Figure and, given a path, also writes it there as PNG (atomically).

`describe_run` makes the title of a run: its preset and the fields changed from it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

from grokjax import figures
from grokjax.figures import (
    BAND_ALPHA,
    BAND_NAMES,
    LINE_DASHES,
    PALETTE,
    FigureSpec,
    ageing_spec,
    comparison_spec,
    ensemble_panel,
    ensemble_title,
    finite_range,
    log_floor,  # noqa: F401  (where loss_figure draws 0)
    log_ticks,
    number_text,
    y_extent,
)
from grokjax.io import atomic_write_with

# The landscape's equilibrium curve: a dark line in a light outline reads on every
# colour of a colormap, from its darkest to its lightest.
EQUILIBRIUM_COLOUR = "black"
EQUILIBRIUM_OUTLINE = "white"

# Kaplan-Meier curves: one line style and marker per curve, and curves that coincide
# drawn this far apart (in S) so that none hides another.
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
COINCIDENT_OFFSET = 0.015


# Helpers.


def figure(**kwargs) -> Figure:
    """A figure outside pyplot: making and saving it touches no backend or other global
    state, so grokjax's figures leave a notebook's or program's matplotlib as it was."""
    return Figure(**kwargs)


def save_png(fig: Figure, path: Path, dpi: int = 120) -> Path:
    """Write `fig` to `path` as PNG, atomically; return the path."""
    path = Path(path)
    # "tight": a long legend or title grows the canvas instead of being cut off
    save = lambda tmp: fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")  # noqa: E731
    atomic_write_with(path, save)
    return path


def _finish(fig: Figure, path: Path | str | None, dpi: int = 120) -> Figure:
    if path is not None:
        save_png(fig, Path(path), dpi=dpi)
    return fig


def _format_value(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        short = f"{float(value):g}"
        if float(short) == float(value) or np.float32(short) == np.float32(value):
            return short  # a float32 sweep value (0.0010000000474974513) reads as 0.001
        return repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_format_value(v) for v in value) + ")"
    return str(value)


def describe_run(preset: str | None, changes: Mapping[str, Any]) -> str:
    """A run's title: the preset and the fields changed from it, in the order given.

    Example:
      >>> describe_run("default", {"modulus": 59, "learning_rate": 1e-3})
      'default (modulus=59, learning_rate=0.001)'
      >>> describe_run(None, {"modulus": 59}), describe_run("default", {})
      ('modulus=59', 'default')
      >>> describe_run(None, {})
      ''
    """
    fields = ", ".join(f"{k}={_format_value(v)}" for k, v in changes.items())
    if preset and fields:
        return f"{preset} ({fields})"
    return preset or fields


# Drawing a FigureSpec.


def _log_ticks(axis, low: float, high: float) -> None:
    """1-2-5 major ticks labelled as numbers (20, 500, 1e-4), minor ticks unlabelled."""
    ticks = log_ticks(low, high)
    axis.set_ticks(ticks, [number_text(t) for t in ticks])
    axis.set_minor_formatter(NullFormatter())


def to_matplotlib(spec: FigureSpec, path: Path | str | None = None, width: float = 7) -> Figure:
    """Draw `spec`'s panels side by side (x shared between log-step panels; hidden
    lines, the interactive view's seeds, left out); write PNG to `path` if given."""
    n = max(len(spec.panels), 1)
    fig = figure(figsize=(width if n == 1 else 5 * n, 4.2 + 0.3 * bool(spec.title)))
    shared = n > 1 and all(p.log_x for p in spec.panels)
    axes = np.atleast_1d(fig.subplots(1, n, sharex=shared))
    for ax, p in zip(axes, spec.panels, strict=False):
        for b in p.bands:
            ax.fill_between(b.x, b.low, b.high, color=b.colour, alpha=BAND_ALPHA[b.kind], lw=0)
        for ln in (ln for ln in p.lines if not ln.hidden):
            style = dict(ls="none", marker=ln.marker, ms=5) if ln.marker else {}
            style = style or dict(ls=LINE_DASHES[ln.dash], lw=1.6)
            ax.plot(ln.x, ln.y, color=ln.colour, label=ln.label, **style)
        for k, step in enumerate(p.marks):
            label = p.mark_label if k == 0 else None
            ax.axvline(step, color="k", lw=0.8, ls=":", alpha=0.7, label=label)
        x_range = p.x_range or finite_range(*[ln.x for ln in p.lines], positive=p.log_x)
        if p.log_x and x_range:
            ax.set_xscale("log")
            _log_ticks(ax.xaxis, *x_range)
        if x_range and x_range[0] < x_range[1]:
            ax.set_xlim(*x_range)
        y_range = y_extent(p, positive=p.log_y)
        if p.log_y and y_range:
            ax.set_yscale("log")
            _log_ticks(ax.yaxis, *y_range)
            if y_range[0] < y_range[1]:
                ax.set_ylim(*y_range)
        else:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: number_text(v)))
        if p.y_range:
            ax.set_ylim(*p.y_range)
        if p.note:
            ax.text(0.98, 0.03, p.note, transform=ax.transAxes, ha="right", va="bottom", fontsize=8)
        handles, _ = ax.get_legend_handles_labels()
        kinds = [k for k in BAND_NAMES if any(b.kind == k for b in p.bands)]
        grey = [Patch(color="0.35", alpha=BAND_ALPHA[k], label=BAND_NAMES[k]) for k in kinds]
        if handles or grey:
            ax.legend(handles=handles + grey, fontsize=8)
        ax.set(xlabel=p.x_title, ylabel=p.y_title, title=p.title)
        ax.grid(alpha=0.3)
    if spec.title:
        fig.suptitle(textwrap.fill(spec.title, 120), fontsize=10)
    fig.tight_layout()
    return _finish(fig, path)


# Ensemble figures: median over members with quartile and min-max bands.

# The PNGs a run writes: file -> panel of `grokjax.problem.metrics.PANELS`.
ENSEMBLE_PNGS = {"accuracy.png": "accuracy", "loss.png": "loss", "weight_norm.png": "norms"}


def panel_figure(
    panel: str,
    histories: Mapping[str, np.ndarray],
    steps_E: np.ndarray,
    title: str,
    diverged_steps: Sequence[int] = (),
    path: Path | str | None = None,
    note: str = "",
) -> Figure:
    """PANELS[panel] of an ensemble (`grokjax.figures.ensemble_panel`): every metric of
    that panel as median, quartiles and range over members against step, on a log axis
    (step 0 left out); `title` is the caller's (see `describe_run`), the seed count is
    added to it, `note` (the grokking area, say) goes in the lower right corner. On a
    log-y panel (loss) a value <= 0 (float32 cross-entropy rounds to 0 once every
    example is certain) is drawn at `log_floor`, the smallest positive value, with a
    triangle where a member has one and a legend note."""
    drawn = ensemble_panel(panel, steps_E, histories, diverged_steps, note=note)
    panels = (drawn,) if drawn is not None else ()
    return to_matplotlib(FigureSpec(ensemble_title(histories, title), panels), path)


def ensemble_figures(
    histories: Mapping[str, np.ndarray],
    steps_E: np.ndarray,
    out_dir: Path,
    title: str,
    diverged_steps: Sequence[int] = (),
    accuracy_note: str = "",
) -> list[Path]:
    """Write the `ENSEMBLE_PNGS` (accuracy.png with `accuracy_note`, loss.png,
    weight_norm.png); return their paths.

    `histories` maps metric -> [members, evaluations], NaN where a member has no value
    (the run directory gives NaN from a member's divergence on, so each member is drawn
    up to the step it diverged; `diverged_steps` are marked by dotted lines). Every
    panel has the same step range.
    """
    paths = []
    for name, panel in ENSEMBLE_PNGS.items():
        paths.append(Path(out_dir) / name)
        note = accuracy_note if panel == "accuracy" else ""
        panel_figure(panel, histories, steps_E, title, diverged_steps, paths[-1], note)
    return paths


def comparison_figure(
    arms: Mapping[str, Mapping[str, Any]], path: Path | str | None, title: str
) -> Figure:
    """Accuracies and weight norm against step (log axis), one colour per arm.

    `arms` maps an arm's name to {"steps": [E], "train_acc", "test_acc", "weight_norm":
    [3, E] (lower quartile, median, upper quartile over seeds, NaN where no seed has a
    value), "n_seeds": int, and optionally "area": the grokking area as text, shown in
    the legend}; `grokjax.host.compare.comparison_curves` makes it from runs.
    Step 0 is left out of the log axis. `title` is the caller's (see `describe_run`).
    """
    return to_matplotlib(comparison_spec(arms, title), path)


# Kaplan-Meier curves.


def _coincident_groups(curves: list[tuple[np.ndarray, np.ndarray]]) -> list[int]:
    """For each curve, the index of the first curve it coincides with (itself if none)."""
    first = []
    for i, (x, s) in enumerate(curves):
        same = next(
            (
                j
                for j in range(i)
                if first[j] == j
                and curves[j][0].shape == x.shape
                and np.array_equal(curves[j][0], x)
                and np.allclose(curves[j][1], s, rtol=0, atol=1e-12)
            ),
            i,
        )
        first.append(same)
    return first


def kaplan_meier_figure(
    curves: Mapping[str, Mapping[str, Any]],
    path: Path | str | None,
    title: str,
    xlabel: str = "step",
) -> Figure:
    """Kaplan-Meier step curves, one per group, with censoring ticks and Greenwood bands.

    `curves` maps a label to {"time": [K] distinct times, "survival": [K] S just after
    each, "std_err": [K] (NaN where undefined), "censored": [K] subjects censored at
    each, "n": subjects, "median": the median or None when censored}, as
    `grokjax.stats.survival.survival_curve` gives them. Each curve starts at S = 1 at time 0;
    a tick marks each time where subjects were censored; the shaded band is S -+ 1.96 SE.
    The legend gives each group's size and median (">" the last time when censored).

    Every curve has its own line style and marker; curves that coincide exactly (same
    times, same S) are drawn `COINCIDENT_OFFSET` apart, the first at its true S and
    each further one lower, and the legend says which curve each repeats.
    """
    fig = figure(figsize=(7, 4.2))
    ax = fig.subplots()
    steps = []
    for c in curves.values():
        x = np.concatenate([[0.0], np.asarray(c["time"], float)])
        s = np.concatenate([[1.0], np.asarray(c["survival"], float)])
        steps.append((x, s))
    first = _coincident_groups(steps)
    labels = list(curves)
    depth = [first[:i].count(first[i]) for i in range(len(first))]  # 0 for a group's first
    for i, (label, c) in enumerate(curves.items()):
        colour = figures.colour(i)
        x, s = steps[i]
        offset = -COINCIDENT_OFFSET * depth[i]
        se = np.concatenate([[0.0], np.nan_to_num(np.asarray(c["std_err"], float), nan=0.0)])
        time = np.asarray(c["time"], float)
        last = time[-1] if time.size else 0.0
        med = f"{c['median']:g}" if c["median"] is not None else f">{last:g}"
        text = f"{label} (n={c['n']}, median {med})"
        if depth[i]:
            text += f"; same curve as {labels[first[i]]}, drawn {-offset:g} lower"
        ax.step(
            x,
            s + offset,
            where="post",
            color=colour,
            lw=1.6,
            ls=LINE_STYLES[i % len(LINE_STYLES)],
            marker=MARKERS[i % len(MARKERS)],
            ms=4,
            label=text,
        )
        band = np.clip(s - 1.96 * se, 0, 1) + offset, np.clip(s + 1.96 * se, 0, 1) + offset
        ax.fill_between(x, *band, step="post", color=colour, alpha=0.1, lw=0)
        cens = np.asarray(c["censored"]) > 0
        ax.plot(time[cens], s[1:][cens] + offset, "|", color=colour, ms=10, mew=1.5)
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    low = -0.02 - COINCIDENT_OFFSET * max(depth, default=0)
    ax.set(xlabel=xlabel, ylabel="fraction not yet reached", ylim=(low, 1.02), title=title)
    # below the axes, inside the (tightly saved) figure: the curves stay visible
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    ax.grid(alpha=0.3)
    return _finish(fig, path)


# Phase diagram.


def _spans_a_decade(values: np.ndarray) -> bool:
    return bool(np.all(values > 0) and values.max() >= 9.99 * values.min())


def _cell_edges(centres: np.ndarray, log: bool) -> np.ndarray:
    # Edges halfway between neighbouring values (in log space on a log axis), so each
    # value sits inside its own cell; a lone value gets a cell of its own scale.
    v = np.log10(centres) if log else centres.astype(float)
    if v.size == 1:
        half = 0.5 if log or v[0] == 0 else 0.5 * abs(v[0])
        edges = np.array([v[0] - half, v[0] + half])
    else:
        mids = (v[1:] + v[:-1]) / 2
        edges = np.concatenate([[2 * v[0] - mids[0]], mids, [2 * v[-1] - mids[-1]]])
    return 10**edges if log else edges


class _Axis(NamedTuple):
    size: int
    index: np.ndarray  # each cell's column on the axis
    position: np.ndarray  # each cell's coordinate
    edges: np.ndarray
    ticks: np.ndarray
    labels: list[str]
    log: bool


def _axis(column: pd.Series) -> _Axis:
    """A numeric axis (log when it spans a decade) or, for any other values (optimizer
    names, 'full' batches), a categorical one in order of first appearance."""
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().all():
        values = np.sort(numeric.unique())
        log = _spans_a_decade(values)
        index = np.searchsorted(values, numeric)
        return _Axis(
            values.size,
            index,
            numeric.to_numpy(float),
            _cell_edges(values, log),
            values,
            [f"{v:g}" for v in values],
            log,
        )
    labels = [str(v) for v in pd.unique(column.astype(str))]
    index = np.array([labels.index(str(v)) for v in column])
    return _Axis(
        len(labels),
        index,
        index.astype(float),
        np.arange(len(labels) + 1) - 0.5,
        np.arange(len(labels)),
        labels,
        False,
    )


def phase_figure(
    x_values: Sequence,
    y_values: Sequence,
    phases: Sequence[str],
    fractions: Sequence[float],
    path: Path | str | None,
    title: str,
    *,
    categories: Sequence[str],
    colours: Sequence[str],
    xlabel: str,
    ylabel: str,
) -> Figure:
    """A categorical heat map: one cell per (x, y), coloured by its phase and labelled
    with a fraction (of seeds in that phase).

    One entry per cell in `x_values`, `y_values`, `phases` and `fractions`; `categories`
    are every phase in legend order and `colours` their colours. An axis is logarithmic
    when its values are positive and span at least 10x, categorical when they are not
    all numbers (in order of first appearance); cells not given stay blank. A category
    of `grokjax.figures.PHASE_COLOURS` is drawn in its colour there.
    """
    # a phase takes its colour of the one phase palette, whatever the caller's
    colours = [
        figures.PHASE_COLOURS.get(c, given) for c, given in zip(categories, colours, strict=True)
    ]
    x_axis = _axis(pd.Series(np.asarray(x_values)))
    y_axis = _axis(pd.Series(np.asarray(y_values)))
    grid_YX = np.full((y_axis.size, x_axis.size), np.nan)
    grid_YX[y_axis.index, x_axis.index] = [list(categories).index(p) for p in phases]

    fig = figure(figsize=(1.2 * x_axis.size + 3.5, 0.8 * y_axis.size + 2.2))
    ax = fig.subplots()
    ax.pcolormesh(
        x_axis.edges,
        y_axis.edges,
        np.ma.masked_invalid(grid_YX),
        cmap=ListedColormap(list(colours)),
        norm=BoundaryNorm(np.arange(len(categories) + 1) - 0.5, len(categories)),
        edgecolors="white",
        linewidth=1.0,
    )
    for px, py, fraction in zip(x_axis.position, y_axis.position, fractions, strict=True):
        ax.text(px, py, f"{fraction:.2f}", ha="center", va="center", fontsize=9)
    ax.set(xscale="log" if x_axis.log else "linear", yscale="log" if y_axis.log else "linear")
    ax.set_xticks(x_axis.ticks, x_axis.labels, minor=False)
    ax.set_yticks(y_axis.ticks, y_axis.labels, minor=False)
    ax.minorticks_off()
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    handles = [Patch(color=c, label=p) for p, c in zip(categories, colours, strict=True)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return _finish(fig, path)


# Landscape map.


def landscape_map_figure(
    x: np.ndarray,
    y: np.ndarray,
    relative_entropy: np.ndarray,
    y_eq: np.ndarray,
    path: Path | str | None = None,
    trajectories: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    title: str = "",
    cmap: str = "viridis",
) -> Figure:
    """Heat map of S/kT relative to its maximum at each loss over the visited bins, with
    the equilibrium curve and trajectories on top.

    `relative_entropy` is [n_x, n_y] on the bin centres `x` (ln L_train) and `y` (test
    accuracy), NaN where unknown, 0 on the equilibrium curve; `y_eq` [n_x] is the
    equilibrium curve (NaN where a column has no estimate); `trajectories` maps a name
    to (x(t), y(t)). The colour scale runs from the 5th percentile to 0. The
    equilibrium curve is a dark line in a light outline, visible on every colour of
    the map.
    """
    x, y = np.asarray(x), np.asarray(y)
    shown = np.asarray(relative_entropy, float)
    fig = figure(figsize=(7, 4.8))
    ax = fig.subplots()
    low = float(np.nanpercentile(shown, 5)) if np.isfinite(shown).any() else -1.0
    mesh = ax.pcolormesh(x, y, shown.T, shading="nearest", cmap=cmap, vmin=low, vmax=0.0)
    fig.colorbar(mesh, ax=ax, label="S / kT minus its maximum at that ln L")
    ax.plot(
        x,
        y_eq,
        color=EQUILIBRIUM_COLOUR,
        lw=2,
        path_effects=[patheffects.withStroke(linewidth=4.5, foreground=EQUILIBRIUM_OUTLINE)],
        label="equilibrium (max S at each loss)",
    )
    for colour, (name, (tx, ty)) in zip(PALETTE[1:], (trajectories or {}).items(), strict=False):
        ax.plot(tx, ty, color=colour, lw=1.5, label=name)
    ax.set(
        xlabel="ln L_train",
        ylabel="smoothed test accuracy",
        title=title,
        xlim=(x[0], x[-1]),
        ylim=(0, 1),
    )
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return _finish(fig, path)


# Ageing.


def ageing_curves_figure(
    curves: Mapping[int, Mapping[str, np.ndarray]],
    path: Path | str | None = None,
    ageing_index: float = float("nan"),
) -> Figure:
    """MSD (log-log) and C (log-x) against tau = t - t_w, one line per t_w
    (`grokjax.figures.ageing_spec`); `ageing_index` goes in the figure's title."""
    return to_matplotlib(ageing_spec(curves, f"ageing (ageing index {ageing_index:.3g})"), path)


def indicator_figure(
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    path: Path | str | None = None,
    *,
    xlabel: str = "step - generalisation step",
    log_y: Sequence[str] = (),
    dpi: int = 110,
) -> Figure:
    """One panel per entry of `panels` (title -> {line label -> (x, y)}), side by side,
    with a dashed line at x = 0; the panels named in `log_y` get a log y axis. The
    first panel carries the legend."""
    fig = figure(figsize=(4 * max(len(panels), 1), 3.6))
    axes = np.atleast_1d(fig.subplots(1, max(len(panels), 1)))
    for ax, (name, lines) in zip(axes, panels.items(), strict=False):
        for i, (label, (x, y)) in enumerate(lines.items()):
            ax.plot(x, y, lw=1, label=label, color=figures.colour(i))
        ax.axvline(0, color="k", lw=0.8, ls="--")
        ax.set(xlabel=xlabel, title=name)
        if name in log_y:
            ax.set_yscale("log")
    if panels and any(next(iter(panels.values()), {})):
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _finish(fig, path, dpi=dpi)
