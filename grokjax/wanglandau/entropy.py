"""The Wang-Landau entropy estimate on a grid over collective variables.

Shared by WanD (one axis, x = ln L_train) and the WLMD sampler (one or two axes, x and
the test accuracy y). An estimate is an array of values on the bins of its axes:

    S <- S + f(t) G,   f(t) = F min(t / t_WL, t_WL / t)      (the 1/t Wang-Landau rate)

with G a Gaussian kernel around the current bin (cut at 4 sigma, normalised to sum 1,
folded back at the grid's edges), deposited only while the walker is on the grid (t
counts those deposits). The force on a walker reads the central finite difference of S
at its bin (one-sided in the edge bins); off the grid it keeps only the part of the
edge bin's slope that points back onto the grid, plus a soft wall edge_strength
(c - edge). The initial quadratic bias S_bias(x) = beta (x - L0)^2 for x > L0 (0 below)
pushes walkers toward low loss along the first axis; it is evaluated from its formula
rather than stored, so small deposits are not lost to float32 round-off against a large
bias. `slopes_at` (the reading) and `deposited` (the writing) are the two functions
both WanD and WLMD call.
(Zhang et al. 2025, section 4 of docs/paper-notes.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Grid(NamedTuple):
    """A uniform axis: `n_bins` bins of width `bin_width` from `x_min`."""

    x_min: float = -20.0
    bin_width: float = 0.02
    n_bins: int = 1500

    @property
    def x_max(self) -> float:
        return self.x_min + self.bin_width * self.n_bins

    def centre(self, i: jax.Array) -> jax.Array:
        return self.x_min + self.bin_width * (i + 0.5)

    @property
    def centres(self) -> jax.Array:
        return self.centre(jnp.arange(self.n_bins))

    def bin(self, x: jax.Array) -> jax.Array:
        """The bin of x, clipped onto the grid."""
        i = jnp.floor((x - self.x_min) / self.bin_width).astype(jnp.int32)
        return jnp.clip(i, 0, self.n_bins - 1)

    def contains(self, x: jax.Array) -> jax.Array:
        return (x >= self.x_min) & (x < self.x_max)


def quadratic_bias(grid: Grid, strength, loss_floor, power: float = 2) -> jax.Array:
    """S_bias(x) = strength (x - L0)^power for x > L0, else 0, on the bin centres.

    power 2 is the paper's quadratic bias; power 1 is a linear prior (a d-parameter
    network's density of states grows roughly as exp(d x / 2) in x = ln L).
    """
    return _bias(grid.centres, strength, loss_floor, power)


def _bias(x, strength, loss_floor, power):
    return strength * jnp.maximum(x - loss_floor, 0.0) ** power


def entropy_at(
    deposits: jax.Array, grid: Grid, x: jax.Array, *, bias_strength, bias_floor, power: float = 2
) -> jax.Array:
    """S(x) = S_bias + deposits at x's bin (clipped onto the grid), S_bias at the bin
    centre as in `quadratic_bias`: the 1-D estimate a walker at x reads."""
    i = grid.bin(x)
    return _bias(grid.centre(i), bias_strength, bias_floor, power) + deposits[i]


def wang_landau_rate(t, deposit, t_wl) -> jax.Array:
    """f(t) = F min(t / t_WL, t_WL / t): a linear ramp, then the 1/t decay."""
    t = jnp.asarray(t, jnp.float32)
    return deposit * jnp.minimum(t / t_wl, t_wl / t)


def gaussian_kernel(grid: Grid, centre: jax.Array, sigma_bins: float, mirror: bool = False):
    """A Gaussian over the bins around bin `centre`, cut at 4 sigma, normalised to sum 1.

    With `mirror` the parts that fall off the grid are folded back in, reflected at the
    grid's outer edges (the reflecting boundary of metadynamics): a flat histogram then
    deposits evenly up to the edge bins, so they are estimates like the rest. Without
    it the cut Gaussian is renormalised (bins near an edge get less in total).
    """
    j = jnp.arange(grid.n_bins)

    def bump(d):
        d = d / sigma_bins
        return jnp.where(jnp.abs(d) <= 4.0, jnp.exp(-0.5 * d**2), 0.0)

    kernel = bump(j - centre)
    if mirror:
        kernel = kernel + bump(-1 - j - centre) + bump(2 * grid.n_bins - 1 - j - centre)
    return kernel / kernel.sum()


def kernel(
    grids: Sequence[Grid], index: jax.Array, sigma_bins: float, mirror: bool = False
) -> jax.Array:
    """The product of per-axis Gaussians around the bin `index` ([n_axes]); sums to 1."""
    out = gaussian_kernel(grids[0], index[0], sigma_bins, mirror)
    for axis, grid in enumerate(grids[1:], start=1):
        along = gaussian_kernel(grid, index[axis], sigma_bins, mirror)
        out = out[..., None] * along.reshape((1,) * out.ndim + along.shape)
    return out


def slope(values: jax.Array, grid: Grid, i: jax.Array) -> jax.Array:
    """d(values)/dx at bin i of a 1-D array: central difference, one-sided at the edges."""
    lo, hi = jnp.maximum(i - 1, 0), jnp.minimum(i + 1, grid.n_bins - 1)
    return (values[hi] - values[lo]) / ((hi - lo) * grid.bin_width)


def gradient(values: jax.Array, grids: Sequence[Grid], index: jax.Array) -> jax.Array:
    """[n_axes] slopes (`slope`) of an n-D array at the bin `index` ([n_axes])."""
    n = len(grids)
    lines = [
        values[tuple(slice(None) if k == axis else index[k] for k in range(n))] for axis in range(n)
    ]
    pairs = enumerate(zip(lines, grids, strict=True))
    return jnp.stack([slope(line, grid, index[a]) for a, (line, grid) in pairs])


def bins(grids: Sequence[Grid], c: jax.Array) -> jax.Array:
    """[n_axes] bins of the point c ([n_axes]), each clipped onto its grid."""
    return jnp.stack([g.bin(c[k]) for k, g in enumerate(grids)])


def slopes_at(
    deposits: jax.Array,
    grids: Sequence[Grid],
    c: jax.Array,
    *,
    bias_strength,
    bias_floor,
    bias_power: float = 2.0,
    edge_strength=100.0,
) -> jax.Array:
    """[n_axes] slopes dS/dc_k of S = S_bias + deposits at the point c ([n_axes]): the
    deposits' `gradient` at c's bin plus, along the first axis, the bias's central
    difference from its formula; off the grid as the module docstring says."""
    grids = tuple(grids)
    i = bins(grids, c)
    slopes = gradient(deposits, grids, i)
    g = grids[0]
    lo_hi = _bias(g.centre(jnp.stack([i[0] - 1, i[0] + 1])), bias_strength, bias_floor, bias_power)
    slopes = slopes.at[0].add((lo_hi[1] - lo_hi[0]) / (2.0 * g.bin_width))
    lo = jnp.array([g.x_min for g in grids], jnp.float32)
    hi = jnp.array([g.x_max for g in grids], jnp.float32)
    above, below = c >= hi, c < lo
    slopes = jnp.where(above, jnp.maximum(slopes, 0.0), slopes)
    slopes = jnp.where(below, jnp.minimum(slopes, 0.0), slopes)
    wall = jnp.maximum(c - hi, 0.0) + jnp.minimum(c - lo, 0.0)
    return slopes + edge_strength * wall


class Deposit(NamedTuple):
    """What one walker adds to the deposits and the histogram; the count advances if inside."""

    amount: jax.Array
    visit: jax.Array
    inside: jax.Array


def deposited(
    grids: Sequence[Grid], c: jax.Array, count, *, deposit, t_wl, sigma_bins: float
) -> Deposit:
    """What a walker at c ([n_axes]) deposits after `count` deposits: on the grid
    f(count + 1) times the mirrored `kernel` around c's bin and a visit of it; off the
    grid nothing (the soft wall of `slopes_at` alone brings the walker back)."""
    grids = tuple(grids)
    i = bins(grids, c)
    inside = jnp.all(jnp.stack([g.contains(c[k]) for k, g in enumerate(grids)]))
    rate = jnp.where(inside, wang_landau_rate(count + 1, deposit, t_wl), 0.0)
    shape = tuple(g.n_bins for g in grids)
    visit = jnp.zeros(shape, jnp.float32).at[tuple(i)].set(inside.astype(jnp.float32))
    return Deposit(rate * kernel(grids, i, sigma_bins, mirror=True), visit, inside)
