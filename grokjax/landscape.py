"""The landscape program: WLMD over a network's S(ln L_train, A_test), pure JAX.

`LandscapeConfig` describes the network (`model`, a `Config`: task, modulus, widths,
data split), the grid and the sampler; the functions here build the sampler over two
collective variables,

    x = ln L_train   (the recorded loss on the full training set: cross-entropy, or
                      the task's hinge or MSE)
    y = A_test       (the paper's smoothed test accuracy, mean sigmoid(s * margin); for
                      a regression its analogue, `grokjax.problem.metrics`)

with the WLMD sampler of `grokjax.wanglandau.wlmd`: walkers start from independent
initialisations on one data split, move under the Langevin thermostat and the entropy
force, and deposit into S. With `protocol="average"` (the paper's) each walker keeps its
own estimate and all continue from their mean every `average_every` steps; with
`"shared"` every walker deposits into one estimate at every step. `make_chunk` is one
compiled chunk of `chunk_steps` steps; `combined` and `convergence_row` read the
estimates after it. `grokjax.host.measure.run_landscape` drives the chunks through the host
loop (checkpoints, exact resume) and writes the run directory.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from grokjax.config import Config, Section
from grokjax.optim import rescale_to_norm
from grokjax.problem import data as data_lib
from grokjax.problem.checks import check_inputs
from grokjax.problem.metrics import make_objective
from grokjax.problem.models import make_network
from grokjax.wanglandau.entropy import Grid
from grokjax.wanglandau.wlmd import DEFAULTS as SAMPLER
from grokjax.wanglandau.wlmd import Estimate, Sampler, Walker, fan_in_walls, make_sampler

PROTOCOLS = ("average", "shared")
STARTS = ("random", "descent")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LandscapeConfig(Section):
    """A WLMD landscape run: the network and data (`model`), the grid, the sampler.

    Grid: x = ln L_train in [x_min, x_max) with bins of `x_bin`; y = smoothed test
    accuracy in [0, 1] with `y_bins` bins. Sampler: `timestep` dt, `friction` c_f,
    `temperature` kT, Wang-Landau `deposit` F and `t_wl`, kernel `sigma_bins`, the
    bias (`bias_strength` beta (x - L0)^`bias_power` above `bias_floor` L0 on x; power 2
    is the paper's, 1 a linear prior), and the finite
    volume: per-tensor reflective walls at `wall_scale` / sqrt(fan-in), or the global
    norm held at `fixed_norm` (then `wall_scale` is ignored). `walkers` walkers,
    `protocol` 'average' (every `average_every` steps) or 'shared'; `steps` per walker,
    in chunks of `chunk_steps`; positions recorded every `record_every` steps.

    Windows: with `windows` W > 1 the walkers are split into W equal groups, each
    confined to one of W
    x-windows that overlap their neighbours by the fraction `window_overlap`; each group
    learns S on its window only (beyond the window's edges a walker meets a soft wall of
    `edge_strength` per unit of c), and the windows are stitched by their mean difference
    over the bins both visited (windowed Wang-Landau, Vogel et al. 2013). A wide loss range
    then converges in the time a narrow one takes. `start`: 'random' (the model's
    initialisation, clipped into the walls) or 'descent' (from there, Adam on ln L_train,
    clipped into the walls, until each walker reaches its own target, spread evenly over
    its window; at most `descent_steps` steps).
    """

    model: Config = Config()
    x_min: float = -12.0
    x_max: float = 3.0
    x_bin: float = 0.05
    y_bins: int = 50
    timestep: float = 1e-3
    friction: float = 0.01
    temperature: float = SAMPLER.temperature
    deposit: float = SAMPLER.deposit
    t_wl: float = SAMPLER.t_wl
    sigma_bins: float = SAMPLER.sigma_bins
    bias_strength: float = SAMPLER.bias_strength
    bias_floor: float = SAMPLER.bias_floor
    bias_power: float = SAMPLER.bias_power
    wall_scale: float = 3.0
    fixed_norm: float | None = None
    walkers: int = 8
    protocol: str = "average"
    average_every: int = 1000
    steps: int = 100_000
    chunk_steps: int = 10_000
    record_every: int = 100
    seed: int = 0
    windows: int = 1
    window_overlap: float = 0.5
    edge_strength: float = SAMPLER.edge_strength
    start: str = "random"
    descent_steps: int = 20_000
    descent_rate: float = 3e-3

    def __post_init__(self) -> None:
        def check(names: str, ok: Callable[[Any], bool], allowed: str) -> None:
            for name in names.split():
                if not ok(getattr(self, name)):
                    self.fail(name, allowed)

        def positive(value) -> bool:
            return value > 0

        check("model", lambda v: isinstance(v, Config), "a grokjax Config")
        self.check_finite()
        bins = "at least 4 bins of x_bin > 0 above x_min"
        check("x_max", lambda v: v - self.x_min >= 4 * self.x_bin > 0, bins)
        check("y_bins", lambda v: isinstance(v, int) and v >= 4, "an integer >= 4")
        check("bias_power timestep temperature t_wl sigma_bins", positive, "a positive number")
        check("friction", lambda v: 0 < v <= 1, "a number in (0, 1]")
        check("deposit bias_strength wall_scale", lambda v: not v < 0, "a number >= 0")
        check("fixed_norm", lambda v: v is None or v > 0, "a positive number or None")
        check("start", lambda v: v in STARTS, f"one of {', '.join(STARTS)}")
        check("window_overlap", lambda v: 0 <= v < 1, "a fraction in [0, 1)")
        check("edge_strength descent_rate", positive, "a positive number")
        check("protocol", lambda v: v in PROTOCOLS, f"one of {', '.join(PROTOCOLS)}")
        counts = "walkers steps chunk_steps record_every average_every windows descent_steps"
        check(counts, lambda v: isinstance(v, int) and v >= 1, "a positive integer")
        check("windows", lambda v: not self.walkers % v, f"a divisor of walkers={self.walkers}")
        if self.windows > 1:
            starts, m = self.window_starts, self.window_bins
            shared = min(m - (b - a) for a, b in zip(starts, starts[1:], strict=False))
            if m < 4 or shared < 3:
                self.fail(
                    "windows",
                    f"few enough (or window_overlap={self.window_overlap} large enough) "
                    f"that windows have 4 x bins and share 3 with each neighbour "
                    f"(now {m} and {shared})",
                )
        check("chunk_steps", lambda v: not self.steps % v, f"a divisor of steps={self.steps}")
        per_chunk = f"a divisor of chunk_steps={self.chunk_steps}"
        check("record_every", lambda v: not self.chunk_steps % v, per_chunk)
        averaged = self.protocol == "average"
        check("average_every", lambda v: not (averaged and self.chunk_steps % v), per_chunk)

    @property
    def grids(self) -> tuple[Grid, Grid]:
        n_x = int(round((self.x_max - self.x_min) / self.x_bin))
        return Grid(self.x_min, self.x_bin, n_x), Grid(0.0, 1.0 / self.y_bins, self.y_bins)

    @property
    def window_bins(self) -> int:
        """x bins per window: W windows of m bins, neighbours sharing `window_overlap` m."""
        n = self.grids[0].n_bins
        return int(np.ceil(n / (self.windows - (self.windows - 1) * self.window_overlap)))

    @property
    def window_starts(self) -> list[int]:
        """The first global x bin of each window (the last window ends at the grid's end)."""
        n, m = self.grids[0].n_bins, min(self.window_bins, self.grids[0].n_bins)
        return [int(round(k * (n - m) / max(self.windows - 1, 1))) for k in range(self.windows)]

    def window_grids(self) -> list[tuple[Grid, Grid]]:
        """The (x, y) grids of each window; one window is the whole grid."""
        x, y = self.grids
        if self.windows == 1:
            return [(x, y)]
        m = self.window_bins
        return [(Grid(x.x_min + a * x.bin_width, x.bin_width, m), y) for a in self.window_starts]


def collective_variables(lcfg: LandscapeConfig):
    """(cv_fn, init_fn): params -> [ln L_train, smoothed A_test], and key -> params."""
    cfg = lcfg.model
    spec = cfg.data.spec
    net = make_network(cfg.model, spec)
    check_inputs(cfg, net)
    objective = make_objective(cfg.loss, spec.kind, cfg.eval)
    ds = data_lib.make(jax.random.key(cfg.data.split_seed or 0), cfg.data)
    # A network's state besides its parameters (BatchNorm's running averages) is not
    # sampled: every walker evaluates with the state the network starts with.
    model_state = net.init(jax.random.key(0))[1] if net.stateful else None

    def apply(params, inputs):
        return net.apply(params, model_state, inputs)

    def cv_fn(params) -> jax.Array:
        loss = objective.loss(apply(params, ds.train_inputs), ds.train_labels)
        test = objective.smoothed_accuracy(apply(params, ds.test_inputs), ds.test_labels)
        return jnp.stack([jnp.log(loss), test])

    def init_params(key):
        return net.init(key)[0]

    return cv_fn, init_params


def make_landscape_sampler(
    lcfg: LandscapeConfig, grids: tuple[Grid, Grid] | None = None
) -> tuple[Sampler, Any]:
    """The WLMD sampler for `lcfg` on `grids` (default the whole grid) and the model's
    init function."""
    cv_fn, init_params = collective_variables(lcfg)
    walls = None
    if lcfg.fixed_norm is None:
        walls = fan_in_walls(jax.eval_shape(init_params, jax.random.key(0)), lcfg.wall_scale)
    names = "timestep friction temperature deposit t_wl sigma_bins bias_strength bias_floor"
    names += " bias_power fixed_norm edge_strength"
    settings = {k: getattr(lcfg, k) for k in names.split()}
    return make_sampler(cv_fn, grids or lcfg.grids, walls=walls, **settings), init_params


def confine(lcfg: LandscapeConfig, params):
    """`params` inside the finite volume: held at `fixed_norm`, or clipped into the walls."""
    if lcfg.fixed_norm is not None:
        return rescale_to_norm(params, lcfg.fixed_norm)
    bounds = fan_in_walls(params, lcfg.wall_scale)
    return jax.tree.map(lambda x, b: jnp.clip(x, -b, b), params, bounds)


def descend(lcfg: LandscapeConfig, params, target: jax.Array):
    """Adam on ln L_train from `params`, kept inside the finite volume, until ln L_train
    <= target or `lcfg.descent_steps` steps: a start for walkers far below chance loss."""
    cv_fn, _ = collective_variables(lcfg)
    optimizer = optax.adam(lcfg.descent_rate)

    def above(carry):
        p, _, n = carry
        return (cv_fn(p)[0] > target) & (n < lcfg.descent_steps)

    def body(carry):
        p, state, n = carry
        grad = jax.grad(lambda q: cv_fn(q)[0])(p)
        updates, state = optimizer.update(grad, state, p)
        return confine(lcfg, optax.apply_updates(p, updates)), state, n + 1

    params = confine(lcfg, params)
    params, _, _ = jax.lax.while_loop(above, body, (params, optimizer.init(params), 0))
    return params


def init_walkers(
    lcfg: LandscapeConfig, sampler: Sampler, init_params, window: int = 0
) -> tuple[Walker, Estimate]:
    """The walkers of one window from independent initialisations (one key each), inside
    the finite volume; with start='descent' each first descends to its own target."""
    per_window = lcfg.walkers // lcfg.windows
    keys = jax.random.split(jax.random.key(lcfg.seed), lcfg.walkers)
    keys = keys[window * per_window : (window + 1) * per_window]
    x_grid = lcfg.window_grids()[window][0]
    targets = x_grid.x_min + x_grid.bin_width * x_grid.n_bins * (
        (jnp.arange(per_window) + 0.5) / per_window
    )

    def one(key, target):
        param_key, walker_key = jax.random.split(key)
        params = init_params(param_key)
        params = descend(lcfg, params, target) if lcfg.start == "descent" else confine(lcfg, params)
        return sampler.init(params, walker_key)

    walkers, estimates = jax.vmap(one)(keys, targets)
    if lcfg.protocol == "shared":
        estimates = jax.tree.map(lambda x: x[0], estimates)
    return walkers, estimates


def make_chunk(lcfg: LandscapeConfig, sampler: Sampler, report=None):
    """chunk(walkers, estimates) -> (walkers, estimates, positions [records, walkers, 2])
    for the walkers of one window; `report`, if given, is called from the program
    (`jax.debug.callback`) with the steps its walkers took after each record."""
    n_records = lcfg.chunk_steps // lcfg.record_every
    per_window = lcfg.walkers // lcfg.windows

    if lcfg.protocol == "shared":
        advance = sampler.step_shared
    else:
        vstep = jax.vmap(sampler.step)

        def advance(walkers, estimates):
            # Average before the step, so the estimates a chunk ends with still show
            # how far the walkers drifted apart since the last average.
            due = (walkers.step[0] > 0) & (walkers.step[0] % lcfg.average_every == 0)
            averaged = sampler.average(estimates)
            estimates = jax.tree.map(lambda a, b: jnp.where(due, a, b), averaged, estimates)
            return vstep(walkers, estimates)

    def record(carry, _):
        def body(carry, _):
            walkers, estimates, _ = carry
            return advance(walkers, estimates), None

        first = advance(*carry[:2])
        carry, _ = jax.lax.scan(body, first, length=lcfg.record_every - 1)
        if report is not None:
            jax.debug.callback(report, jnp.full(per_window, lcfg.record_every))
        return carry, carry[2]

    def chunk(walkers, estimates):
        c0 = jnp.zeros((per_window, 2), jnp.float32)
        (walkers, estimates, _), positions = jax.lax.scan(
            record, (walkers, estimates, c0), length=n_records
        )
        return walkers, estimates, positions

    return chunk


def stitch(entropies, histograms, starts: list[int], n_x: int) -> tuple[np.ndarray, np.ndarray]:
    """One S and histogram on the global grid from window estimates [W, m, n_y].

    Window k's S is shifted by the mean difference to the windows before it over the
    bins both visited, then the shifted estimates are averaged bin by bin. The first and
    last x column of a window (its edge bins: a soft wall pushes S up there) are left
    out unless they are the edge of the whole grid, so neighbours must share at least 3
    x columns; a window that shares no visited bin with those before it is not shifted.
    Unvisited bins are NaN in S.
    """
    entropies, histograms = np.asarray(entropies, np.float64), np.asarray(histograms)
    n_windows, m, n_y = entropies.shape
    total = np.zeros((n_x, n_y))
    weight = np.zeros((n_x, n_y))
    visits = np.zeros((n_x, n_y), histograms.dtype)
    for k, a in enumerate(starts):
        s, h = entropies[k], histograms[k]
        visits[a : a + m] += h
        use = h > 0
        if n_windows > 1:
            use[0] &= a == 0
            use[-1] &= a + m == n_x
        mean = np.divide(
            total[a : a + m],
            weight[a : a + m],
            out=np.zeros((m, n_y)),
            where=weight[a : a + m] > 0,
        )
        both = use & (weight[a : a + m] > 0)
        shift = float(np.mean(mean[both] - s[both])) if both.any() else 0.0
        total[a : a + m] += np.where(use, s + shift, 0.0)
        weight[a : a + m] += use
    out = np.full((n_x, n_y), np.nan)
    np.divide(total, weight, out=out, where=weight > 0)
    return out.astype(np.float32), visits


def combined(
    lcfg: LandscapeConfig, samplers: list[Sampler], estimates: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The landscape's S/kT, histogram and per-walker S/kT [walkers per window, ...]
    (None for a shared estimate): the windows stitched, each the walkers' mean."""
    n_x = lcfg.grids[0].n_bins
    starts = lcfg.window_starts if lcfg.windows > 1 else [0]
    if lcfg.protocol == "shared":
        s = np.stack([np.asarray(sm.entropy(e)) for sm, e in zip(samplers, estimates, strict=True)])
        h = np.stack([np.asarray(e.histogram) for e in estimates])
        return (*stitch(s, h, starts, n_x), None)
    mean = [jax.tree.map(lambda x: x.mean(0), e) for e in estimates]
    s = np.stack([np.asarray(sm.entropy(e)) for sm, e in zip(samplers, mean, strict=True)])
    h = np.stack([np.asarray(e.histogram.sum(0)) for e in estimates])
    entropy, histogram = stitch(s, h, starts, n_x)
    own = np.stack(
        [np.asarray(jax.vmap(sm.entropy)(e)) for sm, e in zip(samplers, estimates, strict=True)]
    )
    per_walker = np.stack([stitch(own[:, j], h, starts, n_x)[0] for j in range(own.shape[1])])
    return entropy, histogram, per_walker


def convergence_row(lcfg, samplers, estimates, previous: np.ndarray | None) -> dict:
    """How much the estimate still moves, and how far the walkers disagree.

    Over the bins with an estimate (S is defined up to a constant, so values are
    centred first): `rms_change` of S since the last chunk and `walker_spread`, the rms
    spread of the walkers' own estimates (average protocol; walker j of every window
    stitched into one landscape; None for a shared estimate), both with S centred over
    the whole grid. The analysis uses S across test accuracy at fixed loss, so the same
    two are also given with each loss column centred on its own
    (`rms_change_in_y`, `walker_spread_in_y`); `structure_in_y` is the rms of S itself
    so centred (what the analysis reads) and `relative_change_in_y` the change over it.
    `equilibrium_change` is the mean absolute move of the equilibrium curve (test
    accuracy at max S per loss column) since the last chunk.
    """
    entropy, histogram, per_walker = combined(lcfg, samplers, estimates)
    known = np.isfinite(entropy)
    row: dict[str, Any] = {"visited_bins": int((histogram > 0).sum())}
    if previous is not None:
        known = known & np.isfinite(previous)

    def centred(s):
        return s[known] - s[known].mean()

    def in_y(s):
        masked = np.where(known, s, np.nan)
        with warnings.catch_warnings():  # columns without an estimate stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            return (masked - np.nanmean(masked, axis=1, keepdims=True))[known]

    def rms(a):
        return float(np.sqrt(np.mean(a**2)))

    row["rms_change"] = row["rms_change_in_y"] = row["equilibrium_change"] = None
    row["relative_change_in_y"] = None
    row["structure_in_y"] = rms(in_y(entropy)) if known.any() else None
    if previous is not None and known.any():
        row["rms_change"] = rms(centred(entropy) - centred(previous))
        row["rms_change_in_y"] = rms(in_y(entropy) - in_y(previous))
        if row["structure_in_y"] > 0:
            row["relative_change_in_y"] = row["rms_change_in_y"] / row["structure_in_y"]
        y = np.asarray(lcfg.grids[1].centres)
        now = np.where(known, entropy, -np.inf).argmax(1)
        before = np.where(known, previous, -np.inf).argmax(1)
        cols = known.any(1)
        row["equilibrium_change"] = float(np.mean(np.abs(y[now] - y[before])[cols]))
    row["walker_spread"] = row["walker_spread_in_y"] = None
    if per_walker is not None and known.any() and np.isfinite(per_walker[:, known]).all():
        row["walker_spread"] = rms(np.stack([centred(s) for s in per_walker]).std(0))
        row["walker_spread_in_y"] = rms(np.stack([in_y(s) for s in per_walker]).std(0))
    return row, entropy
