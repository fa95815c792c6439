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

The log-time rule (`rule="log-time"`, `grokjax.stats.logtime`) reads the grokking area A
(decades between the train and test accuracy curves over log10 step) in place of the
delay, so it does not hang on one threshold:

    confusion      m censored
    memorisation   A censored: train and test accuracy have not met by the budget
    comprehension  A <= max_area (default 0.1 decades)
    grokking       A >  max_area

A cell (one hyperparameter setting, several seeds) takes the most common phase among
its seeds (a plurality, which need not be more than half); a tie goes to the slower
phase in the order comprehension < grokking < memorisation < confusion, so a cell is
never called faster than half its seeds are. The fraction of seeds in each phase is
reported with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from grokjax.config import EvalConfig, Hparams
from grokjax.stats import logtime
from grokjax.stats.summary import events

PHASES = ("comprehension", "grokking", "memorisation", "confusion")  # fastest to slowest
PHASE_COLORS = ("#4daf4a", "#377eb8", "#ff7f00", "#9e9e9e")
MIN_DELAY = 100
DELAY_FRACTION = 0.25
MAX_AREA = 0.1  # decades: the log-time rule's largest area still counted as comprehension
RULES = ("liu", "log-time")

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
    rule: str = "liu",
    area: float | None = None,
    max_area: float = MAX_AREA,
) -> str:
    """One seed's phase from its memorisation and generalisation steps (None/NaN =
    censored), or with `rule="log-time"` from m and its grokking `area` (None/NaN =
    censored; `generalise_step` is then not read).

    Example:
      >>> classify_seed(200, 5000), classify_seed(200, 250), classify_seed(200, None)
      ('grokking', 'comprehension', 'memorisation')
      >>> classify_seed(200, None, rule="log-time", area=0.04)
      'comprehension'
    """
    if rule not in RULES:
        raise ValueError(f"rule={rule!r} is not allowed: one of {', '.join(RULES)}")
    if pd.isna(memorise_step):
        return "confusion"
    if rule == "log-time":
        if area is None or pd.isna(area):
            return "memorisation"
        return "comprehension" if area <= max_area else "grokking"
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
    rule: str = "liu",
    areas: Sequence[float | None] | None = None,
    max_area: float = MAX_AREA,
) -> CellPhase:
    """A cell's phase: the most common seed phase, a tie going to the slower phase
    (`areas`, one per seed, for the log-time rule)."""
    if areas is None:
        areas = [None] * len(memorise_steps)
    phases = [
        classify_seed(
            m,
            g,
            min_delay=min_delay,
            delay_fraction=delay_fraction,
            rule=rule,
            area=a,
            max_area=max_area,
        )
        for m, g, a in zip(memorise_steps, generalise_steps, areas, strict=True)
    ]
    return vote(phases)


def vote(phases: Sequence[str]) -> CellPhase:
    """The cell phase of its seeds' phases: the most common, a tie going to the slower."""
    if not phases:
        raise ValueError("a cell needs at least one seed")
    counts = pd.Series(list(phases)).value_counts().reindex(PHASES, fill_value=0)
    slowest_of_the_most_common = counts[counts == counts.max()].index[-1]
    fractions = {p: float(c) / len(phases) for p, c in counts.items()}
    return CellPhase(slowest_of_the_most_common, fractions, len(phases))


def seed_steps(metrics: pd.DataFrame, cfg: EvalConfig = _EVAL) -> pd.DataFrame:
    """metrics.parquet rows -> one row per seed with its events (NaN = censored).

    Rows are grouped by the hyperparameter columns present, member and seed; the result
    keeps those columns and adds memorisation_step, generalisation_step, grokking_delay,
    the log-time measures (grokking_area, generalisation_ratio@<threshold>,
    test_acc_at_memorisation; `grokjax.stats.logtime`), budget_steps (the seed's last
    evaluated step) and diverged_step (NaN if it did not), at `cfg`'s thresholds
    (`grokjax.stats.summary.events`). Rows a run directory marks `diverged` do not count.
    """
    keys = [c for c in (*Hparams._fields, "member", "seed") if c in metrics.columns]
    rows = []
    for key, run in metrics.sort_values("step").groupby(keys, sort=True):
        steps_E = run["step"].to_numpy()
        diverged_E = run["diverged"].to_numpy(bool) if "diverged" in run else np.zeros(0, bool)
        history = {k: run[k].to_numpy() for k in ("train_acc", "test_acc")}
        e = events(steps_E, history, cfg, diverged_E)
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "memorisation_step": e.memorisation,
                "generalisation_step": e.generalisation,
                "grokking_delay": e.delay,
                "grokking_area": e.area,
                **{logtime.ratio_name(t): v for t, v in e.ratios.items()},
                "test_acc_at_memorisation": e.test_acc_at_memorisation,
                "budget_steps": int(steps_E[-1]),
                "diverged_step": None if e.diverged is None else steps_E[e.diverged],
            }
        )
    measures = ["memorisation_step", "generalisation_step", "grokking_delay", "grokking_area"]
    measures += [logtime.ratio_name(t) for t in logtime.RATIO_THRESHOLDS]
    measures += ["test_acc_at_memorisation", "diverged_step"]
    return pd.DataFrame(rows).astype(dict.fromkeys(measures, float))


def phase_table(
    seeds: pd.DataFrame,
    x: str,
    y: str,
    *,
    min_delay: float = MIN_DELAY,
    delay_fraction: float = DELAY_FRACTION,
    rule: str = "liu",
    max_area: float = MAX_AREA,
) -> pd.DataFrame:
    """One row per (x, y) cell of a per-seed table: phase, its fraction, n_seeds, fractions.

    `seeds` needs columns x, y, memorisation_step and generalisation_step (as
    `seed_steps` writes them; grokking_area too for the log-time rule). The output has
    one column per phase with its fraction.
    """
    rows = []
    for (x_value, y_value), cell in seeds.groupby([x, y], sort=True):
        result = classify_cell(
            cell["memorisation_step"].to_numpy(),
            cell["generalisation_step"].to_numpy(),
            min_delay=min_delay,
            delay_fraction=delay_fraction,
            rule=rule,
            areas=cell["grokking_area"].to_numpy() if rule == "log-time" else None,
            max_area=max_area,
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
