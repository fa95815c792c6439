"""Ageing analysis on the host: relaxation times and the ageing index from the two-time
curves that `grokjax.problem.ageing` records on device (MSD and overlap since each
waiting time t_w; see there for the definitions).

Host side (NumPy/pandas) on a long table with columns step, t_w, msd, overlap
(`ageing_table` builds it from the recorded arrays): `relaxation_time(s)`,
`ageing_index`, `ageing_curves` (what `grokjax.plots.ageing_curves_figure` draws).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# Shape legend: W waiting times, E evaluations, M members.


def ageing_table(
    steps_E: np.ndarray, waiting_times: Sequence[int], msd: np.ndarray, overlap: np.ndarray
) -> pd.DataFrame:
    """The long table of recorded observables: columns [member,] step, t_w, msd, overlap.

    Args:
        steps_E: the step of each evaluation, [E].
        waiting_times: the W waiting times, in the recorder's (sorted) order.
        msd, overlap: `observables` stacked over evaluations, [E, W], or [M, E, W] with a
            leading member axis (then a `member` column is added).
    Returns:
        One row per (member,) evaluation and waiting time; rows where msd is NaN (before
        t_w) are dropped.
    """
    msd, overlap = np.asarray(msd, np.float64), np.asarray(overlap, np.float64)
    if msd.ndim == 2:
        msd, overlap, members = msd[None], overlap[None], False
    else:
        members = True
    n_m, n_e, n_w = msd.shape
    member, step, t_w = np.meshgrid(
        np.arange(n_m), np.asarray(steps_E), np.asarray(waiting_times), indexing="ij"
    )
    table = pd.DataFrame(
        {
            "member": member.ravel(),
            "step": step.ravel().astype(np.int64),
            "t_w": t_w.ravel().astype(np.int64),
            "msd": msd.ravel(),
            "overlap": overlap.ravel(),
        }
    )
    table = table[np.isfinite(table["msd"])].reset_index(drop=True)
    return table if members else table.drop(columns="member")


def _curves(table: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """Per t_w: columns tau, msd, overlap sorted by tau, averaged over repeated rows (members)."""
    mean = table.groupby(["t_w", "step"], as_index=False)[["msd", "overlap"]].mean()
    mean["tau"] = mean["step"] - mean["t_w"]
    mean = mean[mean["tau"] >= 0]
    return {
        int(t_w): g.sort_values("tau")[["tau", "msd", "overlap"]].reset_index(drop=True)
        for t_w, g in mean.groupby("t_w")
    }


def relaxation_time(
    tau: np.ndarray, overlap: np.ndarray, level: float = float(np.exp(-1))
) -> float:
    """First lag at which the overlap C(t_w, t_w + tau) falls to `level`: tau_rel(t_w).

    C(t_w, t_w) = 1 by definition, so the curve is anchored at (tau = 0, C = 1) whether
    or not that sample is given (an overlap with another value at tau = 0, such as an
    unnormalised dot product, should be divided by it first). After sorting by tau and
    dropping NaNs, the crossing is placed by linear interpolation in tau between the last
    sample above `level` and the first one at or below it. Returns NaN when C stays
    above `level` over every sample: the relaxation time is then censored (longer than
    the largest lag), not absent. For C = exp(-tau / tau_0), the default level 1/e gives
    tau_0 up to the interpolation error of the sampling.
    """
    tau, overlap = np.asarray(tau, np.float64), np.asarray(overlap, np.float64)
    keep = np.isfinite(tau) & np.isfinite(overlap) & (tau > 0)
    order = np.argsort(tau[keep], kind="stable")
    tau = np.concatenate([[0.0], tau[keep][order]])
    c = np.concatenate([[1.0], overlap[keep][order]])
    below = np.flatnonzero(c <= level)
    if below.size == 0:
        return float("nan")
    i = int(below[0])
    if i == 0:  # level >= 1: relaxed at once
        return 0.0
    t0, t1, c0, c1 = tau[i - 1], tau[i], c[i - 1], c[i]
    return float(t0 + (t1 - t0) * (c0 - level) / (c0 - c1))


def relaxation_times(table: pd.DataFrame, level: float = float(np.exp(-1))) -> pd.Series:
    """`relaxation_time` of each t_w's curve (members averaged first), indexed by t_w.

    Growth with t_w (often tau_rel ~ t_w) is the classic signature of ageing.
    """
    curves = _curves(table)
    times = {t_w: relaxation_time(c["tau"], c["overlap"], level) for t_w, c in curves.items()}
    return pd.Series(times, name="tau_rel", dtype=float).rename_axis("t_w")


def ageing_index(table: pd.DataFrame) -> float:
    """How much MSD(t_w, t_w + tau) depends on t_w at equal tau: 0 without ageing.

    For each t_w, ln MSD is interpolated linearly in ln tau (tau > 0; members averaged
    first) onto the lags every t_w's curve spans, the union of their sampled lags within
    [max over t_w of the smallest lag, min over t_w of the largest]; at each lag, the
    range (max - min) over t_w is taken, and the index is the median of those ranges.
    It is in natural-log units: 0.69 means the curves differ by a factor 2 at a typical
    common lag. Any time-translation-invariant process (equilibrium, a random walk, a
    steady drift) gives 0 up to sampling noise; ageing makes it grow with the spread of
    the waiting times. NaN with fewer than two t_w or no common lag.
    """
    curves = [c[(c["tau"] > 0) & (c["msd"] > 0)] for c in _curves(table).values()]
    curves = [c for c in curves if len(c)]
    if len(curves) < 2:
        return float("nan")
    lo = max(c["tau"].min() for c in curves)
    hi = min(c["tau"].max() for c in curves)
    lags = np.unique(np.concatenate([c["tau"].to_numpy() for c in curves]))
    lags = lags[(lags >= lo) & (lags <= hi)]
    if lags.size == 0:
        return float("nan")
    log_msd_WxL = np.stack(
        [
            np.interp(np.log(lags), np.log(c["tau"].to_numpy()), np.log(c["msd"].to_numpy()))
            for c in curves
        ]
    )
    return float(np.median(log_msd_WxL.max(axis=0) - log_msd_WxL.min(axis=0)))


def ageing_curves(table: pd.DataFrame) -> dict[int, dict[str, np.ndarray]]:
    """Per t_w, tau, msd and overlap (members averaged): the input of
    `grokjax.plots.ageing_curves_figure`."""
    return {
        t_w: {k: c[k].to_numpy() for k in ("tau", "msd", "overlap")}
        for t_w, c in _curves(table).items()
    }
