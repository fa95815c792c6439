"""WLMD: Wang-Landau molecular dynamics over a parameter pytree.

The paper's instrument (Zhang et al. 2025, section 4 of docs/paper-notes): walkers
move through parameter space under a Langevin thermostat and the force of an entropy
estimate S over collective variables c(theta) (one or two of them; for a network, x =
ln L_train and y = a smoothed test accuracy), and deposit into S where they are, so S
converges to kT times the log density of states. Per step t of a walker:

    c = cv(theta),  i = bin(c)
    a = -sum_k dS/dc_k(i) grad c_k(theta)      (central differences, held constant;
                                                one backward pass: a vjp of cv)
    v <- (1 - c_f) v + a dt + sqrt(c_f (2 - c_f) kT) xi,     xi ~ N(0, 1)
    theta <- theta + v dt,  then the finite volume: per-tensor reflective walls
             (theta > b: theta <- 2b - theta, v <- -v; the lower wall alike) or a fixed
             global norm
    S <- S + f(t) G(i),   f(t) = F min(t / t_WL, t_WL / t)   (only while c is on the
                         grid, t counting deposits; G mirrored at the grid's edges)

S is the quadratic bias on the first axis plus the deposits; its reading and depositing
(`slopes_at`, `deposited`) are `grokjax.wanglandau.entropy`'s and the thermostat is
`grokjax.wanglandau.thermostat`'s, the same as WanD's. At a
flat histogram the walkers' density over c is exp(-S / kT) times the density of states
Omega(c), so S / kT = ln Omega + const: `Sampler.entropy` returns that.

Walkers are vmapped. Two protocols (the paper's first): independent walkers, each with
its own estimate, averaged every K steps (`Sampler.average`; all continue from the
average), and a shared estimate that every walker deposits into at every step
(`Sampler.step_shared`).

Example (a 4-dimensional quadratic well, x = ln U; S should grow as 2 x):
    >>> grid = Grid(x_min=-3.0, bin_width=0.1, n_bins=40)
    >>> cv = lambda q: jnp.log(0.5 * jnp.sum(q["q"] ** 2))[None]
    >>> sampler = make_sampler(cv, [grid], timestep=0.01, friction=0.1)
    >>> walker, estimate = sampler.init({"q": jnp.ones(4)}, jax.random.key(0))
    >>> walker, estimate, c = jax.jit(sampler.step)(walker, estimate)
    >>> estimate.deposits.shape, c.shape
    ((40,), (1,))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from grokjax.wanglandau.entropy import Grid, deposited, quadratic_bias, slopes_at
from grokjax.wanglandau.thermostat import langevin_step, thermal_velocity


class Walker(NamedTuple):
    """One walker: its position, velocity, noise key and steps taken."""

    params: Any
    velocity: Any
    key: jax.Array
    step: jax.Array


class Estimate(NamedTuple):
    """The Wang-Landau deposits and visit histogram on the grid, and deposits made."""

    deposits: jax.Array
    histogram: jax.Array
    count: jax.Array


class Settings(NamedTuple):
    """The sampler's settings besides dt and c_f, with their defaults, stated once here
    (`make_sampler` and `grokjax.landscape.LandscapeConfig` both read them)."""

    temperature: float = 1.0
    deposit: float = 3.0
    t_wl: float = 1000.0
    sigma_bins: float = 10.0
    bias_strength: float = 0.0
    bias_floor: float = 0.0
    bias_power: float = 2.0
    edge_strength: float = 100.0


DEFAULTS = Settings()


class Sampler(NamedTuple):
    init: Callable[[Any, jax.Array], tuple[Walker, Estimate]]
    step: Callable[[Walker, Estimate], tuple[Walker, Estimate, jax.Array]]
    step_shared: Callable[[Walker, Estimate], tuple[Walker, Estimate, jax.Array]]
    average: Callable[[Estimate], Estimate]
    entropy: Callable[[Estimate], jax.Array]


def fan_in_walls(params, scale: float):
    """Per-tensor wall bounds scale / sqrt(n), n the fan-in (first axis; size for vectors)."""

    def bound(p):
        n = p.shape[0] if p.ndim >= 2 else p.size
        return jnp.float32(scale / n**0.5)

    return jax.tree.map(bound, params)


def reflect(params, velocity, walls):
    """Reflect every coordinate that left [-b, b] back inside and reverse its velocity."""

    def one(p, v, b):
        above, below = p > b, p < -b
        p = jnp.where(above, 2 * b - p, jnp.where(below, -2 * b - p, p))
        v = jnp.where(above | below, -v, v)
        return p, v

    pairs = jax.tree.map(one, params, velocity, walls)
    outer = jax.tree.structure(params)
    inner = jax.tree.structure((0, 0))
    return jax.tree.transpose(outer, inner, pairs)


def make_sampler(
    cv_fn: Callable[[Any], jax.Array],
    grids: Sequence[Grid],
    *,
    timestep: float,
    friction: float,
    temperature: float = DEFAULTS.temperature,
    deposit: float = DEFAULTS.deposit,
    t_wl: float = DEFAULTS.t_wl,
    sigma_bins: float = DEFAULTS.sigma_bins,
    bias_strength: float = DEFAULTS.bias_strength,
    bias_floor: float = DEFAULTS.bias_floor,
    bias_power: float = DEFAULTS.bias_power,
    walls: Any = None,
    fixed_norm: float | None = None,
    thermal_init: bool = True,
    edge_strength: float = DEFAULTS.edge_strength,
) -> Sampler:
    """Build the WLMD walker functions (module docstring); none of them jits itself.

    `cv_fn(params) -> [n_axes]` is differentiable, one `Grid` per axis (1 or 2);
    timestep, friction, temperature are dt, c_f, kT; deposit, t_wl, sigma_bins are F,
    t_WL and the kernel width in bins; bias_strength, bias_floor, bias_power are beta,
    L0 and the power of the bias on the first axis (1: a linear prior that pre-flattens
    a density of states ~ exp(beta x)); edge_strength the soft wall off the grid
    (`grokjax.wanglandau.entropy`). The finite volume is `walls` (per-tensor bounds like
    params, e.g. `fan_in_walls`) or `fixed_norm` (a global norm), or neither.
    """
    grids = tuple(grids)
    if not 1 <= len(grids) <= 2:
        raise ValueError(f"grids: 1 or 2 collective variables are allowed, got {len(grids)}")
    if walls is not None and fixed_norm is not None:
        raise ValueError("walls and fixed_norm are exclusive: choose one finite volume")
    shape = tuple(g.n_bins for g in grids)

    def init(params, key: jax.Array) -> tuple[Walker, Estimate]:
        init_key, noise_key = jax.random.split(key)
        velocity = thermal_velocity(init_key, params, temperature, thermal_init)
        walker = Walker(params, velocity, noise_key, jnp.zeros([], jnp.int32))
        zeros = jnp.zeros(shape, jnp.float32)
        return walker, Estimate(zeros, zeros, jnp.zeros([], jnp.int32))

    def move(walker: Walker, estimate: Estimate) -> tuple[Walker, jax.Array]:
        c, pullback = jax.vjp(cv_fn, walker.params)
        bias = dict(bias_strength=bias_strength, bias_floor=bias_floor, bias_power=bias_power)
        slopes = slopes_at(estimate.deposits, grids, c, **bias, edge_strength=edge_strength)
        (force,) = pullback(-slopes.astype(c.dtype))
        key = jax.random.fold_in(walker.key, walker.step)
        velocity = langevin_step(walker.velocity, force, key, timestep, friction, temperature)
        params = jax.tree.map(lambda p, v: p + v * timestep, walker.params, velocity)
        if walls is not None:
            params, velocity = reflect(params, velocity, walls)
        if fixed_norm is not None:
            params = jax.tree.map(lambda p: p * fixed_norm / optax.tree.norm(params), params)
        return walker._replace(params=params, velocity=velocity, step=walker.step + 1), c

    def deposit_at(estimate: Estimate, c: jax.Array):
        return deposited(
            grids, c, estimate.count, deposit=deposit, t_wl=t_wl, sigma_bins=sigma_bins
        )

    def step(walker: Walker, estimate: Estimate):
        """One step of one walker with its own estimate: (walker, estimate, c)."""
        walker, c = move(walker, estimate)
        add, visit, inside = deposit_at(estimate, c)
        estimate = Estimate(
            estimate.deposits + add, estimate.histogram + visit, estimate.count + inside
        )
        return walker, estimate, c

    def step_shared(walkers: Walker, estimate: Estimate):
        """One step of all walkers (leading axis) depositing into one shared estimate."""
        walkers, c = jax.vmap(move, in_axes=(0, None))(walkers, estimate)
        add, visit, inside = jax.vmap(deposit_at, in_axes=(None, 0))(estimate, c)
        estimate = Estimate(
            estimate.deposits + add.sum(0),
            estimate.histogram + visit.sum(0),
            estimate.count + jnp.any(inside),
        )
        return walkers, estimate, c

    def average(estimates: Estimate) -> Estimate:
        """The paper's protocol: every walker continues from the mean of their estimates."""
        mean = jax.tree.map(lambda x: jnp.broadcast_to(x.mean(0), x.shape), estimates)
        return mean._replace(histogram=estimates.histogram, count=estimates.count)

    def entropy(estimate: Estimate) -> jax.Array:
        """S / kT = (bias + deposits) / kT on the grid: ln Omega up to a constant."""
        bias = quadratic_bias(grids[0], bias_strength, bias_floor, bias_power)
        bias = bias.reshape(bias.shape + (1,) * (len(grids) - 1))
        return (estimate.deposits + jnp.broadcast_to(bias, shape)) / temperature

    return Sampler(init, step, step_shared, average, entropy)
