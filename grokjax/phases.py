"""The four learning phases of Liu et al. (2022), per seed and per ensemble cell.

Liu et al., "Towards Understanding Grokking: An Effective Theory of Representation
Learning" (NeurIPS 2022), split a hyperparameter plane into comprehension, grokking,
memorisation and confusion. Here a seed is classified from two steps, computed as
`grokjax.summary` computes them on the evaluation grid:

    m = first evaluated step with train accuracy >= memorise_threshold (default 0.99)
    g = first evaluated step with test accuracy  >= generalise_threshold (default 0.99)

either of which is censored (None or NaN) when the run never gets there within its
budget. The rules, checked in this order:

    confusion      m censored: the seed does not even memorise (whatever g is)
    memorisation   g censored: it memorises but does not generalise within the budget
    comprehension  g - m <= tolerance(m): it generalises without a delay
    grokking       g - m >  tolerance(m): it generalises late

    tolerance(m) = max(min_delay, delay_fraction * m)    (defaults 100 steps and 0.25)

so a generalisation that lags memorisation by at most 100 steps, or by at most a
quarter of the time memorisation took, is not grokking; g <= m is comprehension. The
steps are only as fine as the evaluation grid, so a min_delay below the evaluation
interval cannot tell the two apart.

A cell (one hyperparameter setting, several seeds) takes the most common phase among
its seeds (a plurality, which need not be more than half); a tie goes to the slower
phase in the order comprehension < grokking < memorisation < confusion, so a cell is
never called faster than half its seeds are. The fraction of seeds in each phase is
reported with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.patches import Patch

from grokjax.config import Config, Hparams
from grokjax.plots import figure, save_png
from grokjax.summary import first_crossing

PHASES = ("comprehension", "grokking", "memorisation", "confusion")  # fastest to slowest
PHASE_COLORS = ("#4daf4a", "#377eb8", "#ff7f00", "#9e9e9e")
MIN_DELAY = 100
DELAY_FRACTION = 0.25

_CONFIG_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Config)}


class CellPhase(NamedTuple):
    phase: str  # the cell's phase: the most common over seeds, ties to the slower
    fractions: dict[str, float]  # phase -> fraction of seeds, every phase present
    n_seeds: int


def delay_tolerance(
    memorise_step: float, *, min_delay: float = MIN_DELAY, delay_fraction: float = DELAY_FRACTION
) -> float:
    """The largest g - m still counted as comprehension: max(min_delay, delay_fraction * m)."""
    return max(min_delay, delay_fraction * memorise_step)


def classify_seed(
    memorise_step: float | None,
    generalise_step: float | None,
    *,
    min_delay: float = MIN_DELAY,
    delay_fraction: float = DELAY_FRACTION,
) -> str:
    """One seed's phase from its memorisation and generalisation steps (None/NaN = censored).

    Example:
      >>> classify_seed(200, 5000), classify_seed(200, 250), classify_seed(200, None)
      ('grokking', 'comprehension', 'memorisation')
    """
    if pd.isna(memorise_step):
        return "confusion"
    if pd.isna(generalise_step):
        return "memorisation"
    tolerance = delay_tolerance(memorise_step, min_delay=min_delay, delay_fraction=delay_fraction)
    return "comprehension" if generalise_step - memorise_step <= tolerance else "grokking"


def classify_cell(
    memorise_steps: Sequence[float | None],
    generalise_steps: Sequence[float | None],
    *,
    min_delay: float = MIN_DELAY,
    delay_fraction: float = DELAY_FRACTION,
) -> CellPhase:
    """A cell's phase: the most common seed phase, a tie going to the slower phase."""
    phases = [
        classify_seed(m, g, min_delay=min_delay, delay_fraction=delay_fraction)
        for m, g in zip(memorise_steps, generalise_steps, strict=True)
    ]
    if not phases:
        raise ValueError("a cell needs at least one seed")
    counts = pd.Series(phases).value_counts().reindex(PHASES, fill_value=0)
    slowest_of_the_most_common = counts[counts == counts.max()].index[-1]
    fractions = {p: float(c) / len(phases) for p, c in counts.items()}
    return CellPhase(slowest_of_the_most_common, fractions, len(phases))


def seed_steps(
    metrics: pd.DataFrame,
    *,
    memorise_threshold: float = _CONFIG_DEFAULTS["memorise_threshold"],
    generalise_threshold: float = _CONFIG_DEFAULTS["generalise_threshold"],
) -> pd.DataFrame:
    """metrics.parquet rows -> one row per seed with its m and g (NaN = censored).

    Rows are grouped by the hyperparameter columns present, member and seed; the result
    keeps those columns and adds memorisation_step, generalisation_step, budget_steps
    (the seed's last evaluated step) and diverged_step (NaN if it did not). Rows a run
    directory marks `diverged` do not count, as in `grokjax.summary`.
    """
    keys = [c for c in (*Hparams._fields, "member", "seed") if c in metrics.columns]
    rows = []
    for key, run in metrics.sort_values("step").groupby(keys, sort=True):
        steps_E = run["step"].to_numpy()
        diverged_E = run["diverged"].to_numpy(bool) if "diverged" in run else np.zeros(0, bool)
        sane = ~diverged_E if diverged_E.size else slice(None)
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "memorisation_step": first_crossing(
                    run["train_acc"].to_numpy()[sane], steps_E[sane], memorise_threshold
                ),
                "generalisation_step": first_crossing(
                    run["test_acc"].to_numpy()[sane], steps_E[sane], generalise_threshold
                ),
                "budget_steps": int(steps_E[-1]),
                "diverged_step": steps_E[diverged_E][0] if diverged_E.any() else None,
            }
        )
    return pd.DataFrame(rows).astype(
        {"memorisation_step": float, "generalisation_step": float, "diverged_step": float}
    )


def phase_table(
    seeds: pd.DataFrame,
    x: str,
    y: str,
    *,
    min_delay: float = MIN_DELAY,
    delay_fraction: float = DELAY_FRACTION,
) -> pd.DataFrame:
    """One row per (x, y) cell of a per-seed table: phase, its fraction, n_seeds, fractions.

    `seeds` needs columns x, y, memorisation_step and generalisation_step (as
    `seed_steps` writes them). The output has one column per phase with its fraction.
    """
    rows = []
    for (x_value, y_value), cell in seeds.groupby([x, y], sort=True):
        result = classify_cell(
            cell["memorisation_step"].to_numpy(),
            cell["generalisation_step"].to_numpy(),
            min_delay=min_delay,
            delay_fraction=delay_fraction,
        )
        rows.append(
            {
                x: x_value,
                y: y_value,
                "phase": result.phase,
                "fraction": result.fractions[result.phase],
                "n_seeds": result.n_seeds,
                **result.fractions,
            }
        )
    return pd.DataFrame(rows)


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


def phase_diagram(
    frame: pd.DataFrame,
    x: str,
    y: str,
    path: Path,
    title: str,
    *,
    memorise_threshold: float = _CONFIG_DEFAULTS["memorise_threshold"],
    generalise_threshold: float = _CONFIG_DEFAULTS["generalise_threshold"],
    min_delay: float = MIN_DELAY,
    delay_fraction: float = DELAY_FRACTION,
) -> pd.DataFrame:
    """Draw the phase of each (x, y) cell as a categorical heat map; return `phase_table`.

    `frame` is either metrics.parquet rows (they have a train_acc column; reduced per
    seed with `seed_steps` at the given thresholds) or a per-seed table as `seed_steps`
    returns it. An axis is logarithmic when its values are positive and span at least
    10x. Each cell is coloured by its phase and labelled with the fraction of seeds in
    that phase; cells with no seeds stay blank. Written atomically as PNG.

    Example (run_dirs: runs of one sweep):
      metrics = pd.concat(pd.read_parquet(f"{d}/metrics.parquet") for d in run_dirs)
      phase_diagram(metrics, "learning_rate", "weight_decay", "phases.png", "sweep")
    """
    if "train_acc" in frame.columns:
        frame = seed_steps(
            frame, memorise_threshold=memorise_threshold, generalise_threshold=generalise_threshold
        )
    cells = phase_table(frame, x, y, min_delay=min_delay, delay_fraction=delay_fraction)
    x_axis, y_axis = _axis(cells[x]), _axis(cells[y])
    grid_YX = np.full((y_axis.size, x_axis.size), np.nan)
    grid_YX[y_axis.index, x_axis.index] = [PHASES.index(p) for p in cells["phase"]]

    fig = figure(figsize=(1.2 * x_axis.size + 3.5, 0.8 * y_axis.size + 2.2))
    ax = fig.subplots()
    ax.pcolormesh(
        x_axis.edges,
        y_axis.edges,
        np.ma.masked_invalid(grid_YX),
        cmap=ListedColormap(PHASE_COLORS),
        norm=BoundaryNorm(np.arange(len(PHASES) + 1) - 0.5, len(PHASES)),
        edgecolors="white",
        linewidth=1.0,
    )
    for px, py, fraction in zip(x_axis.position, y_axis.position, cells["fraction"], strict=True):
        ax.text(px, py, f"{fraction:.2f}", ha="center", va="center", fontsize=9)
    ax.set(xscale="log" if x_axis.log else "linear", yscale="log" if y_axis.log else "linear")
    ax.set_xticks(x_axis.ticks, x_axis.labels, minor=False)
    ax.set_yticks(y_axis.ticks, y_axis.labels, minor=False)
    ax.minorticks_off()
    ax.set(xlabel=x, ylabel=y, title=title)
    handles = [Patch(color=c, label=p) for p, c in zip(PHASES, PHASE_COLORS, strict=True)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    save_png(fig, Path(path))
    return cells
