"""Ageing diagnostics of the weights: two-time displacement and overlap against waiting time.

A glass never reaches equilibrium: how it moves from time t_w onwards depends on how
long it has already been relaxing ("ageing"). The observables are two-time functions
of the flattened parameters theta in R^N, measured at t = t_w + tau:

    MSD(t_w, t) = |theta(t) - theta(t_w)|^2 / N                    (mean-squared displacement)
    C(t_w, t)   = theta(t_w) . theta(t) / (|theta(t_w)| |theta(t)|)   (overlap, a cosine)

C(t_w, t_w) = 1 and |C| <= 1. The other common overlap normalises by the snapshot only,
q(t_w, t) = theta(t_w) . theta(t) / |theta(t_w)|^2, which also moves when the weight norm
shrinks or grows (weight decay); the cosine measures rotation alone, so norm changes,
which grokjax records separately (`weight_norm`), do not enter it.

In equilibrium, and in any time-translation-invariant process (a random walk, a drift),
both depend on tau = t - t_w only: curves for different t_w collapse. Ageing is the
failure of that collapse at equal tau, typically slower motion the older the system
(MSD(t_w, t_w + tau) decreasing in t_w, relaxation time growing with t_w, often
tau_rel ~ t_w, "simple ageing"). `ageing_index` summarises it as one number.

Device side, an `(init, update)` pair over the parameter pytree, pure and unjitted so it
sits in a trainer's carry inside the jitted, vmapped `lax.scan` (W waiting times):

    ageing = ageing_init(params, (0, 100, 1000))  # at step 0; records t_w = 0 now
    ageing = ageing_update(ageing, params, step)  # after each update, step = updates taken
    obs = observables(ageing, params)  # at evaluations: {"msd": [W], "overlap": [W]}

`observables` is NaN for a t_w not yet reached. Calling `ageing_update` only at
evaluations works too, provided every t_w is an evaluation step.

Example:
    >>> params = {"w": jnp.ones(3)}
    >>> ageing = ageing_init(params, (0, 2, 5))
    >>> for step in (1, 2, 3):
    ...     params = {"w": params["w"] + 1.0}
    ...     ageing = ageing_update(ageing, params, step)
    >>> observables(ageing, params)["msd"]  # theta(3) = 4 against theta(0) = 1, theta(2) = 3
    Array([ 9.,  1., nan], dtype=float32)

Host side (NumPy/pandas) on a long table with columns step, t_w, msd, overlap
(`ageing_table` builds it from the recorded arrays): `relaxation_time(s)`,
`ageing_index`, `ageing_figure`. One-time companions: `weight_norm`, `last_layer_norm`,
and `saturated_fraction`, the share of float32-saturated softmax outputs ("softmax
collapse", Prieto et al. 2025).

References:
    J.-P. Bouchaud, L. F. Cugliandolo, J. Kurchan, M. Mezard, "Out of equilibrium
    dynamics in spin-glasses and other glassy systems", in Spin Glasses and Random
    Fields (World Scientific, 1998), arXiv:cond-mat/9702070.
    M. Baity-Jesi, L. Sagun, M. Geiger, S. Spigler, G. Ben Arous, C. Cammarota, Y. LeCun,
    M. Wyart, G. Biroli, "Comparing dynamics: deep neural networks versus glassy
    systems", ICML 2018 (MSD and overlap of network weights against t_w).
    L. Prieto, M. Barsbey, P. A. M. Mediano, T. Birdal, "Grokking at the edge of numerical
    stability", ICLR 2025 (softmax collapse).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from grokjax.problem.metrics import last_layer_norm, saturated_fraction, weight_norm

__all__ = [
    "AgeingState",
    "ageing_figure",
    "ageing_index",
    "ageing_init",
    "ageing_table",
    "ageing_update",
    "flatten",
    "last_layer_norm",
    "observables",
    "relaxation_time",
    "relaxation_times",
    "saturated_fraction",
    "weight_norm",
]

# Shape legend: W waiting times, N parameters, E evaluations, M members, B examples,
# C classes.


class AgeingState(NamedTuple):
    """Snapshots of the parameters at each waiting time.

    waiting_times: int32 [W], sorted and distinct.
    snapshots: float32 [W, N], theta(t_w) flattened (zeros until taken).
    taken: bool [W], whether the snapshot of t_w has been stored.
    """

    waiting_times: jax.Array
    snapshots: jax.Array
    taken: jax.Array


def flatten(params: Any) -> jax.Array:
    """Every leaf raveled and concatenated in `jax.tree.leaves` order, as float32 [N]."""
    return jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in jax.tree.leaves(params)])


def ageing_init(params: Any, waiting_times: Sequence[int]) -> AgeingState:
    """An empty recorder for `waiting_times`, taking `params` as the step-0 parameters.

    Args:
        params: the parameter pytree at step 0 (sets N; a waiting time 0 is recorded
            from it straight away, so the usual integration, init here and then
            `ageing_update` after every update, misses no waiting time).
        waiting_times: static, distinct non-negative ints (sorted here); W of them
            (none gives an empty recorder).
    Returns:
        `AgeingState` with snapshots float32 [W, N]. Memory is W * N * 4 bytes per member.
    """
    tws = tuple(int(t) for t in waiting_times)
    if not tws:  # nothing to record: an empty state, so a TrainState always has one
        return AgeingState(
            jnp.zeros(0, jnp.int32), jnp.zeros((0, 0), jnp.float32), jnp.zeros(0, bool)
        )
    if len(set(tws)) != len(tws) or min(tws) < 0:
        raise ValueError(f"waiting_times must be distinct non-negative ints, got {tws}")
    tws = tuple(sorted(tws))
    flat_N = flatten(params)
    state = AgeingState(
        waiting_times=jnp.asarray(tws, jnp.int32),
        snapshots=jnp.zeros((len(tws), flat_N.size), jnp.float32),
        taken=jnp.zeros(len(tws), bool),
    )
    return ageing_update(state, params, 0)


def ageing_update(state: AgeingState, params: Any, step: jax.Array | int) -> AgeingState:
    """Store `params` as the snapshot of t_w when `step == t_w`; otherwise a no-op.

    Branch-free (a masked `dynamic_update_index_in_dim`, O(N) per call), so `step` may be
    traced and the call may sit inside `jit`, `vmap` and `lax.scan`. Call it after each
    optimizer update with `step` = updates taken so far, so theta(t_w) is the parameter
    vector after t_w updates.
    """
    hit_W = state.waiting_times == step
    idx = jnp.argmax(hit_W)  # distinct waiting times: at most one hit
    row_N = jnp.where(jnp.any(hit_W), flatten(params), state.snapshots[idx])
    snapshots = jax.lax.dynamic_update_index_in_dim(state.snapshots, row_N, idx, axis=0)
    return AgeingState(state.waiting_times, snapshots, state.taken | hit_W)


def observables(state: AgeingState, params: Any) -> dict[str, jax.Array]:
    """MSD(t_w, t) and the cosine overlap C(t_w, t) of `params` (time t) per waiting time.

    Returns:
        {"msd": float32 [W], "overlap": float32 [W]}; NaN where theta(t_w) has not been
        taken (t < t_w, or the step t_w was never passed to `ageing_update`). Under a
        member vmap and a scan over E evaluations they come out [M, E, W].
    """
    theta_N = flatten(params)
    diff_WxN = theta_N[None, :] - state.snapshots
    msd_W = jnp.sum(diff_WxN * diff_WxN, axis=1) / theta_N.size
    dot_W = state.snapshots @ theta_N
    norms_W = jnp.linalg.norm(state.snapshots, axis=1) * jnp.linalg.norm(theta_N)
    nan = jnp.float32(jnp.nan)
    return {
        "msd": jnp.where(state.taken, msd_W, nan),
        "overlap": jnp.where(state.taken, dot_W / norms_W, nan),
    }


# Host side.


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


def ageing_figure(table: pd.DataFrame, path: Path | str) -> Path:
    """Write a PNG of MSD (log-log) and C (log-x) against tau = t - t_w, one line per t_w.

    Members are averaged first; the ageing index goes in the title; the lines are drawn
    by `grokjax.plots.ageing_curves_figure` (coloured by t_w, tau = 0 left out of the
    log axis). Written atomically; returns the path.
    """
    from grokjax.plots import ageing_curves_figure  # matplotlib only when drawing

    curves = {
        t_w: {k: c[k].to_numpy() for k in ("tau", "msd", "overlap")}
        for t_w, c in _curves(table).items()
    }
    ageing_curves_figure(curves, Path(path), ageing_index=ageing_index(table))
    return Path(path)
