"""The four learning phases of Liu et al. (2022), per seed and per ensemble cell.

Liu et al., "Towards Understanding Grokking: An Effective Theory of Representation
Learning" (NeurIPS 2022), split a hyperparameter plane into comprehension, grokking,
memorisation and confusion. Here a seed is classified from two steps, computed as
`grokjax.stats.summary` computes them on the evaluation grid:

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

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from grokjax.config import EvalConfig, Hparams
from grokjax.plots import phase_figure
from grokjax.stats.summary import first_crossing

PHASES = ("comprehension", "grokking", "memorisation", "confusion")  # fastest to slowest
PHASE_COLORS = ("#4daf4a", "#377eb8", "#ff7f00", "#9e9e9e")
MIN_DELAY = 100
DELAY_FRACTION = 0.25

_EVAL = EvalConfig()


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
    memorise_threshold: float = _EVAL.memorise_threshold,
    generalise_threshold: float = _EVAL.generalise_threshold,
) -> pd.DataFrame:
    """metrics.parquet rows -> one row per seed with its m and g (NaN = censored).

    Rows are grouped by the hyperparameter columns present, member and seed; the result
    keeps those columns and adds memorisation_step, generalisation_step, budget_steps
    (the seed's last evaluated step) and diverged_step (NaN if it did not). Rows a run
    directory marks `diverged` do not count, as in `grokjax.stats.summary`.
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


def phase_diagram(
    frame: pd.DataFrame,
    x: str,
    y: str,
    path: Path,
    title: str,
    *,
    memorise_threshold: float = _EVAL.memorise_threshold,
    generalise_threshold: float = _EVAL.generalise_threshold,
    min_delay: float = MIN_DELAY,
    delay_fraction: float = DELAY_FRACTION,
) -> pd.DataFrame:
    """Classify each (x, y) cell and draw its phase as a categorical heat map
    (`grokjax.plots.phase_figure`); return `phase_table`.

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
    phase_figure(
        cells[x].to_numpy(),
        cells[y].to_numpy(),
        cells["phase"].tolist(),
        cells["fraction"].to_numpy(float),
        Path(path),
        title,
        categories=PHASES,
        colours=PHASE_COLORS,
        xlabel=x,
        ylabel=y,
    )
    return cells
