"""Every PNG grokjax draws: `to_matplotlib` draws a `grokjax.figures.FigureSpec`, and
each `*_figure` function builds one from the numbers its caller computed
(`grokjax.host.experiment`, `.compare`, `.sweep`, `.measure`, `grokjax.stats.ageing`),
draws it and, given a path, writes it there as PNG (atomically). Figures are
`matplotlib.figure.Figure` objects made outside pyplot: no backend or other global state
is touched. `describe_run` makes the title of a run.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.patheffects import withStroke
from matplotlib.ticker import FuncFormatter, NullFormatter

from grokjax.figures import (
    BAND_ALPHA,
    BAND_NAMES,
    LINE_DASHES,
    FigureSpec,
    Line,
    Panel,
    ageing_spec,
    colour,
    comparison_spec,
    ensemble_panel,
    ensemble_title,
    finite_range,
    landscape_spec,
    log_ticks,
    number_text,
    phase_spec,
    survival_spec,
    y_extent,
)
from grokjax.io import atomic_write_with


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

    >>> describe_run("default", {"modulus": 59, "learning_rate": 1e-3})
    'default (modulus=59, learning_rate=0.001)'
    """
    fields = ", ".join(f"{k}={_format_value(v)}" for k, v in changes.items())
    if preset and fields:
        return f"{preset} ({fields})"
    return preset or fields


# Drawing a FigureSpec.

LEGENDS = {
    "": {},
    "below": dict(loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False),
    "right": dict(loc="upper left", bbox_to_anchor=(1.01, 1.0)),
}


def _log_ticks(axis, low: float, high: float) -> None:
    """1-2-5 major ticks labelled as numbers (20, 500, 1e-4), minor ticks unlabelled."""
    ticks = log_ticks(low, high)
    axis.set_ticks(ticks, [number_text(t) for t in ticks])
    axis.set_minor_formatter(NullFormatter())


def _grid(fig: Figure, ax, g) -> list[Patch]:
    """Draw heat-map cells; return the legend patches of a categorical one."""
    z = np.ma.masked_invalid(np.asarray(g.z, float))
    if g.names:
        k = len(g.names)
        norm = BoundaryNorm(np.arange(k + 1) - 0.5, k)
        style = dict(cmap=ListedColormap(list(g.colours)), norm=norm, edgecolors="white", lw=1)
    else:
        style = dict(cmap=g.colours, vmin=g.z_range[0], vmax=g.z_range[1])
    mesh = ax.pcolormesh(g.x, g.y, z, shading="nearest", **style)
    for j, row in enumerate(g.text or []):
        for i, text in enumerate(row):
            ax.text(g.x[i], g.y[j], text, ha="center", va="center", fontsize=9)
    if not g.names:
        fig.colorbar(mesh, ax=ax, label=g.z_title)
        return []
    return [Patch(color=c, label=n) for n, c in zip(g.names, g.colours, strict=True)]


def _line(ax, ln: Line) -> None:
    style = dict(ls=LINE_DASHES[ln.dash], lw=1.6) if ln.dash else dict(ls="none", mew=1.5)
    if ln.marker:
        style.update(marker=ln.marker, ms=4 if ln.dash else 7)
    if ln.outline:
        style.update(lw=2, path_effects=[withStroke(linewidth=4.5, foreground=ln.outline)])
    step = dict(drawstyle="steps-post") if ln.step else {}
    ax.plot(ln.x, ln.y, color=ln.colour, label=ln.label, **style, **step)


def _size(spec: FigureSpec, width: float) -> tuple[float, float]:
    n, grid = max(len(spec.panels), 1), spec.panels[0].grid if spec.panels else None
    if grid is not None and grid.names:
        return 1.2 * len(grid.x) + 3.5, 0.8 * len(grid.y) + 2.2
    return (width if n == 1 else 5 * n), 4.2 + 0.3 * bool(spec.title)


def to_matplotlib(
    spec: FigureSpec, path: Path | str | None = None, width: float = 7, dpi: int = 120
) -> Figure:
    """Draw `spec`'s panels side by side (x shared between log-step panels; hidden
    lines, the interactive view's seeds, left out); write PNG to `path` if given
    ("tight": a long legend or title grows the canvas instead of being cut off)."""
    fig = Figure(figsize=_size(spec, width))
    n = max(len(spec.panels), 1)
    shared = n > 1 and all(p.log_x for p in spec.panels)
    axes = np.atleast_1d(fig.subplots(1, n, sharex=shared))
    for ax, p in zip(axes, spec.panels, strict=False):
        patches = _grid(fig, ax, p.grid) if p.grid is not None else []
        for b in p.bands:
            step = dict(step="post") if b.step else {}
            alpha = BAND_ALPHA[b.kind]
            ax.fill_between(b.x, b.low, b.high, color=b.colour, alpha=alpha, lw=0, **step)
        for ln in p.lines:
            if not ln.hidden:
                _line(ax, ln)
        for k, step in enumerate(p.marks):
            label = p.mark_label if k == 0 else None
            ax.axvline(step, color="k", lw=0.8, ls=":", alpha=0.7, label=label)
        for y in p.hlines:
            ax.axhline(y, color="k", lw=0.8, ls=":")
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
        elif not p.y_labels:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: number_text(v)))
        if p.y_range:
            ax.set_ylim(*p.y_range)
        if p.x_labels:
            ax.set_xticks(range(len(p.x_labels)), p.x_labels)
        if p.y_labels:
            ax.set_yticks(range(len(p.y_labels)), p.y_labels)
        if p.note:
            ax.text(0.98, 0.03, p.note, transform=ax.transAxes, ha="right", va="bottom", fontsize=8)
        handles, _ = ax.get_legend_handles_labels()
        kinds = [k for k in BAND_NAMES if any(b.kind == k for b in p.bands)]
        grey = [Patch(color="0.35", alpha=BAND_ALPHA[k], label=BAND_NAMES[k]) for k in kinds]
        if (handles or grey or patches) and p.legend != "none":
            ax.legend(handles=handles + grey + patches, fontsize=8, **LEGENDS[p.legend])
        ax.set(xlabel=p.x_title, ylabel=p.y_title, title=p.title)
        if p.grid is None:
            ax.grid(alpha=0.3)
    if spec.title:
        fig.suptitle(textwrap.fill(spec.title, 120), fontsize=10)
    fig.tight_layout()
    if path is not None:
        save = lambda tmp: fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")  # noqa: E731
        atomic_write_with(Path(path), save)
    return fig


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
    """PANELS[panel] of an ensemble (`grokjax.figures.ensemble_panel`); the seed count is
    added to `title` (see `describe_run`), `note` goes in the lower right corner."""
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
    """Write the `ENSEMBLE_PNGS` (`panel_figure`, accuracy.png with `accuracy_note`);
    return their paths."""
    paths = [Path(out_dir) / name for name in ENSEMBLE_PNGS]
    for path, panel in zip(paths, ENSEMBLE_PNGS.values(), strict=True):
        note = accuracy_note if panel == "accuracy" else ""
        panel_figure(panel, histories, steps_E, title, diverged_steps, path, note)
    return paths


def comparison_figure(
    arms: Mapping[str, Mapping[str, Any]], path: Path | str | None, title: str
) -> Figure:
    """Accuracies and weight norm against step, one colour per arm
    (`grokjax.figures.comparison_spec`, where `arms` is described)."""
    return to_matplotlib(comparison_spec(arms, title), path)


def kaplan_meier_figure(
    curves: Mapping[str, Mapping[str, Any]],
    path: Path | str | None,
    title: str,
    xlabel: str = "step",
) -> Figure:
    """Kaplan-Meier curves (`grokjax.figures.survival_spec`); `curves` maps a label to
    `grokjax.stats.survival.survival_curve`'s dict."""
    return to_matplotlib(survival_spec(curves, title, xlabel), path)


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
    """A phase diagram (`grokjax.figures.phase_spec`): one cell per (x, y), coloured by
    its phase, labelled with the fraction of seeds in it."""
    spec = phase_spec(
        x_values, y_values, phases, fractions, title,
        categories=categories, colours=colours, x_title=xlabel, y_title=ylabel,
    )  # fmt: skip
    return to_matplotlib(spec, path)


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
    """The entropy map (`grokjax.figures.landscape_spec`): `relative_entropy` [n_x, n_y]
    on the bin centres `x` (ln L_train) and `y` (test accuracy), 0 on the equilibrium
    curve `y_eq` [n_x] (NaN where a column has no estimate)."""
    spec = landscape_spec(x, y, relative_entropy, (x, y_eq), trajectories, title, cmap)
    return to_matplotlib(spec, path)


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
    with a dotted line at x = 0; the panels named in `log_y` get a log y axis. The
    first panel carries the legend."""
    drawn = tuple(
        Panel(
            name,
            "",
            tuple(
                Line(np.asarray(x, float), np.asarray(y, float), label, colour(i))
                for i, (label, (x, y)) in enumerate(lines.items())
            ),
            x_title=xlabel,
            log_x=False,
            log_y=name in log_y,
            marks=(0,),
            legend="" if k == 0 else "none",
        )
        for k, (name, lines) in enumerate(panels.items())
    )
    return to_matplotlib(FigureSpec("", drawn), path, width=4, dpi=dpi)
