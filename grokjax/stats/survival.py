"""Kaplan-Meier statistics of time-to-event steps with right censoring.

A seed's memorisation or generalisation step is a time to an event; a seed that never
reaches the threshold within its budget is *right-censored* at its last step (see
`grokjax.stats.summary`). When every seed shares one budget, `summary.censored_stats`
already handles that; Kaplan-Meier also pools runs of different lengths and gives a
survival curve S(t) = P(event later than t) with a standard error.

Estimator (n_i at risk and d_i events at the i-th distinct time t_i):

    S(t)        = prod_{t_i <= t} (1 - d_i / n_i)
    Var S(t)    = S(t)^2 * sum_{t_i <= t} d_i / (n_i (n_i - d_i))      (Greenwood)

At a tie, events happen before censorings: a seed censored at t_i is still at risk at
t_i. Greenwood's variance is undefined once S reaches 0 (n_i = d_i); its standard error
is then NaN.

Median: the first time with S(t) <= 0.5 (the lower median; `summary.censored_stats`
interpolates instead), None when S never falls to 0.5, i.e. the median is censored.

Reference: Kaplan & Meier (1958), JASA 53:457.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

KM_COLUMNS = ("time", "at_risk", "events", "censored", "survival", "std_err")

# S is a float product, so a curve that is 1/2 in exact arithmetic may land a hair
# above it; comparisons with 0.5 allow this much.
_HALF_TOL = 1e-9


def from_censored_steps(
    steps: Sequence[int | float | None], budget: int | float
) -> tuple[np.ndarray, np.ndarray]:
    """Summary-style steps (None or NaN = censored) -> (times, observed), censored at `budget`.

    Example: `from_censored_steps([m["generalisation_step"] for m in s["members"]],
    s["budget_steps"])` for a `summary.json` dict `s`.
    """
    values = pd.Series(list(steps), dtype=float).to_numpy()
    censored = np.isnan(values)
    return np.where(censored, float(budget), values), ~censored


def kaplan_meier(times: Sequence[float], observed: Sequence[bool]) -> pd.DataFrame:
    """The Kaplan-Meier table: one row per distinct time, events or censorings.

    Args:
      times: [N] event or censoring time per subject (finite, >= 0).
      observed: [N] true where the event happened at `times`, false where censored.

    Returns:
      A DataFrame with columns time, at_risk, events, censored (subjects censored at
      that time), survival (S just after that time) and std_err (Greenwood), sorted by
      time. Empty input gives an empty table.

    Example:
      >>> kaplan_meier([3, 5, 5, 8], [1, 1, 0, 1])["survival"].round(3).tolist()
      [0.75, 0.5, 0.0]
    """
    times = np.asarray(times, dtype=float)
    observed = np.asarray(observed).astype(bool)
    if times.ndim != 1 or times.shape != observed.shape:
        raise ValueError(
            f"times and observed must be 1-D of one length, got {times.shape} and {observed.shape}"
        )
    if not np.all(np.isfinite(times)) or np.any(times < 0):
        raise ValueError("times must be finite and non-negative")

    counts = (
        pd.DataFrame({"time": times, "event": observed})
        .groupby("time", sort=True)["event"]
        .agg(events="sum", subjects="size")
    )
    events = counts["events"].astype(int)
    at_risk = counts["subjects"][::-1].cumsum()[::-1]
    survival = (1.0 - events / at_risk).cumprod()
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = (events / (at_risk * (at_risk - events))).cumsum()
        std_err = survival * np.sqrt(greenwood)
    return pd.DataFrame(
        {
            "time": counts.index.to_numpy(),
            "at_risk": at_risk.to_numpy(),
            "events": events.to_numpy(),
            "censored": (counts["subjects"] - events).to_numpy(),
            "survival": survival.to_numpy(),
            "std_err": std_err.where(survival > 0).to_numpy(),
        },
        columns=list(KM_COLUMNS),
    )


def median_survival(table: pd.DataFrame) -> float | None:
    """The first time with S(t) <= 0.5, or None when S never gets there (censored median)."""
    hit = np.flatnonzero(table["survival"].to_numpy() <= 0.5 + _HALF_TOL)
    return float(table["time"].iloc[hit[0]]) if hit.size else None


def survival_curve(times: Sequence[float], observed: Sequence[bool]) -> dict:
    """One group's Kaplan-Meier curve as plain arrays, the input of
    `grokjax.plots.kaplan_meier_figure`: time, survival, std_err, censored (each [K],
    from `kaplan_meier`), n (subjects) and median (`median_survival`)."""
    table = kaplan_meier(times, observed)
    return {
        "time": table["time"].to_numpy(float),
        "survival": table["survival"].to_numpy(float),
        "std_err": table["std_err"].to_numpy(float),
        "censored": table["censored"].to_numpy(int),
        "n": len(times),
        "median": median_survival(table),
    }
