"""Ageing observables of the weights, on device: two-time displacement and overlap.

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
tau_rel ~ t_w, "simple ageing"). `grokjax.stats.ageing` analyses the recorded
curves (`ageing_index` summarises them as one number).

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
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

# Shape legend: W waiting times, N parameters.


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
    """A recorder for the static, distinct, non-negative `waiting_times` (none: an empty
    one), `params` being step 0's (a waiting time 0 is recorded now). Memory: W * N * 4
    bytes per member."""
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
    """Store `params` as the snapshot of t_w when `step == t_w` (updates taken so far);
    otherwise a no-op. Branch-free (a masked update, O(N)), so `step` may be traced."""
    hit_W = state.waiting_times == step
    idx = jnp.argmax(hit_W)  # distinct waiting times: at most one hit
    row_N = jnp.where(jnp.any(hit_W), flatten(params), state.snapshots[idx])
    snapshots = jax.lax.dynamic_update_index_in_dim(state.snapshots, row_N, idx, axis=0)
    return AgeingState(state.waiting_times, snapshots, state.taken | hit_W)


def observables(state: AgeingState, params: Any) -> dict[str, jax.Array]:
    """{"msd": [W], "overlap": [W]} of `params` (time t); NaN where theta(t_w) was not taken."""
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
