"""Reading a landscape S(x = ln L_train, y = A_test): the paper's analysis products.

All functions take the grid arrays of `landscape.npz` (`entropy` [n_x, n_y] as S/kT,
`histogram` of visits, bin centres `x` and `y`); only visited bins carry an estimate.

* `equilibrium_curve`: for each x, the y that maximises S (the most numerous states at
  that training loss): the network "at equilibrium".
* `barrier`: along y at fixed low loss, from the memorising end (lowest visited y) to
  the generalising end (highest visited y), the largest dip of S below the smaller of
  its two ends; zero means entropy never decreases on the way (no barrier).
* `high_entropy_advantage`: for the points of a training trajectory (x(t), y(t)), how
  much entropy and test accuracy the equilibrium state at the same loss has over them.
* `convergence_verdict`: whether the run's convergence rows say S stopped moving.
* `analysis`: all of it, as analysis.json holds it (`grokjax.host.measure` writes it and
  draws the map).
"""

from __future__ import annotations

import warnings

import numpy as np


def known(entropy, histogram) -> np.ndarray:
    """The bins with an estimate: visited, and not left out (NaN) by window stitching."""
    return (np.asarray(histogram) > 0) & np.isfinite(entropy)


def equilibrium_curve(entropy, histogram, y) -> tuple[np.ndarray, np.ndarray]:
    """(y_eq, S_eq) per x column: argmax of S over the known y bins (NaN if none)."""
    visited = known(entropy, histogram)
    masked = np.where(visited, entropy, -np.inf)
    best = masked.argmax(axis=1)
    has = visited.any(axis=1)
    y_eq = np.where(has, np.asarray(y)[best], np.nan)
    s_eq = np.where(has, masked[np.arange(masked.shape[0]), best], np.nan)
    return y_eq, s_eq


def barrier(entropy, histogram, x, y, x_band: tuple[float, float]) -> dict:
    """The entropy dip along y within the low-loss band x_band = (lo, hi).

    S is averaged over the band's x columns, using each column's visited bins relative to
    its own mean (S is known up to a constant per column only through the walkers'
    connection; averaging the visited bins keeps the profile comparable). Returns the
    profile, the memorising and generalising ends and the dip (>= 0).
    """
    x = np.asarray(x)
    cols = (x >= x_band[0]) & (x < x_band[1])
    visited = known(entropy, histogram)[cols]
    if not visited.any():
        return {"dip": None, "profile": None, "y_memorising": None, "y_generalising": None}
    band = np.where(visited, np.asarray(entropy)[cols], np.nan)
    with warnings.catch_warnings():  # y bins nobody visited in the band stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        profile = np.nanmean(band, axis=0)
    seen = np.flatnonzero(np.isfinite(profile))
    lo, hi = seen[0], seen[-1]
    path = profile[lo : hi + 1]
    path = np.interp(
        np.arange(path.size), np.flatnonzero(np.isfinite(path)), path[np.isfinite(path)]
    )
    dip = max(0.0, float(min(path[0], path[-1]) - path.min()))
    return {
        "dip": dip,
        "profile": profile,
        "y_memorising": float(np.asarray(y)[lo]),
        "y_generalising": float(np.asarray(y)[hi]),
    }


def barrier_with_spread(landscape: dict, x_band: tuple[float, float]) -> dict:
    """`barrier` of the mean estimate, and its mean and spread over the walkers' own."""
    hist, x, y = landscape["histogram"], landscape["x"], landscape["y"]
    out = barrier(landscape["entropy"], hist, x, y, x_band)
    if "walker_entropy" in landscape:
        dips = [barrier(s, hist, x, y, x_band)["dip"] for s in landscape["walker_entropy"]]
        dips = np.array([d for d in dips if d is not None], float)
        out["walker_dips_mean"] = float(dips.mean()) if dips.size else None
        out["walker_dips_std"] = float(dips.std(ddof=1)) if dips.size > 1 else None
    return out


def high_entropy_advantage(entropy, histogram, x, y, traj_x, traj_y) -> dict:
    """S(equilibrium) - S(trajectory) and y_eq - y(t) at each trajectory point on the
    visited grid; medians over those points."""
    x, y = np.asarray(x), np.asarray(y)
    finite = np.isfinite(traj_x) & np.isfinite(traj_y)
    traj_x, traj_y = np.asarray(traj_x)[finite], np.asarray(traj_y)[finite]
    y_eq, s_eq = equilibrium_curve(entropy, histogram, y)
    dx, dy = x[1] - x[0], y[1] - y[0]
    i = np.floor((np.asarray(traj_x) - (x[0] - dx / 2)) / dx).astype(int)
    j = np.floor((np.asarray(traj_y) - (y[0] - dy / 2)) / dy).astype(int)
    inside = (i >= 0) & (i < x.size) & (j >= 0) & (j < y.size)
    i, j = i[inside], j[inside]
    on = known(entropy, histogram)[i, j]
    i, j = i[on], j[on]
    d_s = s_eq[i] - np.asarray(entropy)[i, j]
    d_y = y_eq[i] - np.asarray(traj_y)[inside][on]
    return {
        "points": int(i.size),
        "entropy_gap": d_s,
        "accuracy_gap": d_y,
        "median_entropy_gap": float(np.median(d_s)) if d_s.size else None,
        "median_accuracy_gap": float(np.median(d_y)) if d_y.size else None,
    }


def convergence_verdict(
    rows: list[dict], y_bin: float, *, last: int = 3, tolerance: float = 0.05
) -> dict:
    """Whether the landscape stopped moving, from the convergence rows of a run.

    Converged when, in each of the last `last` chunks, (1) no bin was visited for the
    first time, (2) S across test accuracy changed by at most `tolerance` of its own
    structure (`relative_change_in_y`), (3) the walkers' own estimates disagreed by at
    most `tolerance` of that structure, and (4) the equilibrium curve moved on average
    by at most half a y bin. Returns the verdict and the worst value of each measure.
    """
    tail = rows[-last:]
    if len(rows) < last + 1 or any(r.get("relative_change_in_y") is None for r in tail):
        return {"converged": False, "reason": f"fewer than {last + 1} chunks to compare"}
    spreads = [
        r["walker_spread_in_y"] / r["structure_in_y"]
        for r in tail
        if r.get("walker_spread_in_y") is not None and r["structure_in_y"]
    ]
    worst = {
        "new_bins": rows[-1]["visited_bins"] - rows[-last - 1]["visited_bins"],
        "relative_change_in_y": max(r["relative_change_in_y"] for r in tail),
        "relative_walker_spread_in_y": max(spreads, default=None),
        "equilibrium_change_in_bins": max(r["equilibrium_change"] for r in tail) / y_bin,
    }
    spread = worst["relative_walker_spread_in_y"]
    passed = {
        "new_bins": worst["new_bins"] == 0,
        "relative_change_in_y": worst["relative_change_in_y"] <= tolerance,
        "relative_walker_spread_in_y": spread is None or spread <= tolerance,
        "equilibrium_change_in_bins": worst["equilibrium_change_in_bins"] <= 0.5,
    }
    failed = [k for k, ok in passed.items() if not ok]
    return {
        "converged": not failed,
        "reason": "all criteria met" if not failed else "not met: " + ", ".join(failed),
        "last_chunks": last,
        "tolerance": tolerance,
        **worst,
    }


def default_band(landscape: dict, width: float = 1.0) -> tuple[float, float]:
    """The lowest-loss band of the visited grid, `width` wide in ln L."""
    visited_x = landscape["x"][landscape["histogram"].sum(1) > 0]
    lo = float(visited_x.min()) if visited_x.size else float(landscape["x"][0])
    return lo, lo + width


def analysis(
    landscape: dict,
    x_band: tuple[float, float] | None = None,
    convergence: list[dict] | None = None,
    trajectories: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict:
    """What analysis.json holds: the band, visited bins, equilibrium curve, barrier, the
    `convergence_verdict` of the convergence rows (if given) and, per trajectory name ->
    (x(t), y(t)), its `high_entropy_advantage` medians."""
    x_band = x_band or default_band(landscape)
    y_eq, _ = equilibrium_curve(landscape["entropy"], landscape["histogram"], landscape["y"])
    found = barrier_with_spread(landscape, x_band)
    result = {
        "x_band": list(x_band),
        "visited_bins": int((landscape["histogram"] > 0).sum()),
        "equilibrium_curve": {
            "x": landscape["x"][np.isfinite(y_eq)].tolist(),
            "y": y_eq[np.isfinite(y_eq)].tolist(),
        },
        "barrier": {
            k: (v.tolist() if isinstance(v, np.ndarray) else v)
            for k, v in found.items()
            if k != "profile"
        },
        "trajectories": {},
    }
    if convergence is not None:
        y_bin = float(landscape["y"][1] - landscape["y"][0])
        result["convergence"] = convergence_verdict(convergence, y_bin)
    for name, (tx, ty) in (trajectories or {}).items():
        gap = high_entropy_advantage(
            landscape["entropy"], landscape["histogram"], landscape["x"], landscape["y"], tx, ty
        )
        result["trajectories"][name] = {
            "points_on_grid": gap["points"],
            "median_entropy_gap": gap["median_entropy_gap"],
            "median_accuracy_gap": gap["median_accuracy_gap"],
        }
    return result
