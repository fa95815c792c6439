"""WanD: Wang-Landau molecular dynamics as an optax gradient transformation.

Zhang et al. 2025 (section 5 of docs/paper-notes) turn the Wang-Landau MD sampler into
an optimizer. The collective variable is x = ln L_train, and a 1-D entropy estimate
S(x) on a grid starts from a quadratic bias that pushes toward low loss. Each step t:

    x = ln L,            g = dS/dx at bin(x)          (central finite difference)
    a = -g * grad(ln L) = -g * grad(L) / L
    v <- (1 - c_f) v + a dt + sqrt(c_f (2 - c_f) kT) xi,    xi ~ N(0, 1) per parameter
    theta <- theta + v dt                               (the update is v dt)
    S <- S + f(t) G(x),  f(t) = F min(t / t_WL, t_WL / t),  G a Gaussian kernel, sum 1
                         (only while x is on the grid, t counting those deposits)

with S_bias(x) = beta (x - L0)^2 for x > L0 and 0 below. The noise amplitude keeps the
stationary velocity variance at exactly kT (fluctuation-dissipation for the discrete
friction step). The learning rate is dt; temperature kT and friction c_f are the other
two numbers the paper tunes. There is no weight decay and no norm constraint.

kT and c_f may follow a schedule of the step count, or one started by a training-side
trigger (`grokjax.optim.schedules`; annealed WanD): each update reads them on the
state's clock. grokjax additions, each off by default so the defaults are the paper's update:
`force_cap` rescales the force a onto a maximum global norm, `slope_cap` bounds
|dS/dx| (see docs/results.md for what they do on x+y mod 67). Always on: L is floored at
exp(grid.x_min) before ln L and grad L / L are taken (and x at x_min), because a float32
cross-entropy can round to exactly 0 while its gradient does not.

The reading of S and the deposits are those of the WLMD sampler (`grokjax.wanglandau.entropy`'s
`slopes_at` and `deposited`: the kernel is mirrored at the grid's edges, above the grid
only the slope back onto it counts plus a soft wall), and the velocity step is
`grokjax.wanglandau.thermostat.langevin_step`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from grokjax.optim import schedules
from grokjax.section import Section
from grokjax.wanglandau.entropy import Grid, deposited, slopes_at
from grokjax.wanglandau.thermostat import langevin_step, thermal_velocity

WAND_FORCES = ("entropy", "loss")


@dataclasses.dataclass(frozen=True, kw_only=True)
class WandConfig(Section):
    """WanD's settings besides dt, kT and c_f (those are `Hparams`); defaults are the paper's.

    `bias_strength` (beta) and `loss_floor` (L0) of the initial bias
    S_bias = beta (x - L0)^2 above L0, `deposit` (F) and `t_wl` (t_WL) of the Wang-Landau
    rate, `sigma_bins` (kernel width in bins), the grid over x = ln L (`bin_width`,
    `x_min`, `x_max`), `edge_strength` (the soft wall beyond the grid's edges, per unit
    of x; `grokjax.wanglandau.entropy`), stabilisers `slope_cap` (bound on |dS/dx|) and `force_cap`
    (bound on the entropy force's global norm), inf = the paper's; `force` ('entropy',
    the paper's -dS/dx grad(ln L); 'loss', the ablation -`loss_force_scale` grad(L)).
    """

    PATH: ClassVar[str] = "optim.wand"
    UNBOUNDED: ClassVar[tuple[str, ...]] = ("slope_cap", "force_cap")

    bias_strength: float = 3000.0
    loss_floor: float = -8.0
    deposit: float = 3.0
    t_wl: float = 1000.0
    sigma_bins: float = 10.0
    bin_width: float = 0.02
    x_min: float = -20.0
    x_max: float = 10.0
    edge_strength: float = 100.0
    slope_cap: float = math.inf
    force_cap: float = math.inf
    force: str = "entropy"
    loss_force_scale: float = 13_500.0

    def __post_init__(self) -> None:
        self.check_finite()
        for field in ("bias_strength", "deposit"):
            if getattr(self, field) < 0:
                self.fail(field, "a number >= 0")
        for field, what in (
            ("t_wl", "a positive number of steps"),
            ("sigma_bins", "a positive number of bins"),
            ("bin_width", "a positive width"),
            ("edge_strength", "a positive number"),
            ("slope_cap", "a positive number or inf"),
            ("force_cap", "a positive number or inf"),
            ("loss_force_scale", "a positive number"),
        ):
            if not getattr(self, field) > 0:
                self.fail(field, what)
        if not self.x_max - self.x_min >= 4 * self.bin_width:
            self.fail("x_max", "at least 4 bins above optim.wand.x_min")
        self.one_of("force", WAND_FORCES)

    @property
    def n_bins(self) -> int:
        return int(round((self.x_max - self.x_min) / self.bin_width))


PAPER = WandConfig()  # the defaults, stated once, above
DEFAULT_GRID = Grid(PAPER.x_min, PAPER.bin_width, PAPER.n_bins)


class WandState(NamedTuple):
    """`count` the updates taken (optax's name for the step count; step t's noise is
    drawn with `fold_in(key, count)`), the velocity (like params), the Wang-Landau
    deposits over ln L, `n_deposits` the deposits made (the t of the 1/t rate: updates
    whose ln L was on the grid), the noise key, and the clock of the kT and c_f
    schedules (`grokjax.optim.schedules`).

    The entropy estimate is S = S_bias + deposits; the bias is evaluated from its
    formula, so small deposits are not lost to float32 round-off against a large bias.
    """

    count: jax.Array
    velocity: Any
    deposits: jax.Array
    n_deposits: jax.Array
    key: jax.Array
    clock: schedules.Clock


def legacy_wand_leaf(path: tuple[str, ...], saved: dict, step_path: tuple[str, ...]):
    """A `WandState` leaf of a checkpoint written before `count` was the step count (it
    counted the deposits, now `n_deposits`): the leaf at `path` of the new layout, read
    from the old leaves `saved` ({path: array}), the step count from `step_path`; None
    where nothing changed. (The noise key used to move on after a step off the grid; a
    run that never left it continues with exactly its old noise.)"""
    if not path or path[-1] not in ("count", "n_deposits"):
        return None
    parent = path[:-1]
    if parent + ("deposits",) not in saved or parent + ("n_deposits",) in saved:
        return None
    return saved[parent + ("count",)] if path[-1] == "n_deposits" else saved[step_path]


def as_key(key: jax.Array | int | None) -> jax.Array:
    """A typed PRNG key from a typed key, raw key data, an int seed (as optax's noise
    transforms take one, traced under `inject_hyperparams` too) or None (seed 0)."""
    if key is None:
        return jax.random.key(0)
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.shape == (2,) and key.dtype == jnp.uint32:  # jax.random.PRNGKey data
        return jax.random.wrap_key_data(key)
    if key.ndim == 0 and jnp.issubdtype(key.dtype, jnp.integer):
        return jax.random.key(key)
    raise ValueError(f"key={key!r} is not allowed: a PRNG key or an int seed")


def fingerprint(params) -> jax.Array:
    """A uint32 hash of every parameter's bits: members of a vmapped ensemble that start
    from different parameters get different fingerprints."""
    h = jnp.uint32(0x9E3779B9)
    for leaf in jax.tree.leaves(params):
        flat = jnp.ravel(leaf).astype(jnp.float32)
        bits = jax.lax.bitcast_convert_type(flat, jnp.uint32)
        weights = jnp.arange(flat.size, dtype=jnp.uint32) * jnp.uint32(2654435761) | 1
        h = h * jnp.uint32(31) + jnp.sum(bits * weights, dtype=jnp.uint32)  # wraps mod 2^32
    return h


def scale_by_wand(
    timestep,
    temperature,
    friction,
    *,
    key: jax.Array | int | None = None,
    per_member: bool = True,
    bias_strength=PAPER.bias_strength,
    loss_floor=PAPER.loss_floor,
    deposit=PAPER.deposit,
    t_wl=PAPER.t_wl,
    sigma_bins: float = PAPER.sigma_bins,
    grid: Grid = DEFAULT_GRID,
    edge_strength=PAPER.edge_strength,
    thermal_init: bool = True,
    slope_cap=PAPER.slope_cap,
    force_cap=PAPER.force_cap,
    force: str = PAPER.force,
    loss_force_scale=PAPER.loss_force_scale,
    trigger: schedules.Trigger | None = None,
) -> optax.GradientTransformationExtraArgs:
    """WanD's Langevin velocity with the Wang-Landau entropy force; returns v (not v dt).

    Expects `updates` = grad L and `value=` L, the scalar loss the gradient belongs to.
    An update whose loss or gradient is not finite (or whose loss is negative, when
    traced) is a zero update that leaves the state as it was but for `count`, as
    `optax.apply_if_finite` users expect; a concrete negative or non-scalar `value` is
    refused.

    Args:
        timestep: dt, the integration step of the force.
        temperature: kT, the stationary velocity variance per parameter: a number or a
            schedule of the step count (`grokjax.optim.schedules`; annealed WanD).
        friction: c_f in (0, 1], the velocity damping per step: a number or a schedule.
        key: the noise key: a typed key, an int seed (as `optax.add_noise` takes) or
            None (seed 0). It is kept in the state; step t draws from `fold_in` of it
            and the count.
        per_member: fold a fingerprint of the initial parameters into the key, so that
            the members of a vmapped ensemble, which start from different parameters,
            draw independent noise from one transform built outside `vmap` with one key
            (members that start from equal parameters share their noise). grokjax's
            trainer gives every member its own key and turns it off.
        bias_strength, loss_floor: beta and L0 of the initial bias S_bias.
        deposit, t_wl: F and t_WL of the Wang-Landau rate f(t).
        sigma_bins: width of the deposited Gaussian, in bins.
        grid: the bins over x = ln L.
        edge_strength: above the grid's top a soft wall edge_strength (x - x_max) is
            added to dS/dx (and nothing is deposited); x never falls below x_min.
        thermal_init: draw the initial velocity from N(0, kT) (else zeros).
        slope_cap: bound on |dS/dx| (a bias that turns linear far above L0); inf =
            the paper's unbounded quadratic bias.
        force_cap: bound on the global norm of the entropy force |a|; the force is
            rescaled, never reversed; inf = the paper's literal force.
        force: "entropy" (the paper's a = -dS/dx grad(ln L)) or "loss", the ablation
            a = -loss_force_scale grad(L): the same thermostat, noise and cap, with a
            constant in place of the entropy slope over L. (The default scale, 13,500,
            is the paper's dS/dx over L at the start of training on x+y mod 67:
            2 * 3000 * (ln ln 67 + 8) / ln 67.)
        trigger: starts the kT and c_f schedules' clock once a training-side signal has
            stayed past a level (`grokjax.optim.schedules.Trigger`); None runs them
            from step 0. The thermal initial velocity is drawn at kT(0).
    """
    if force not in ("entropy", "loss"):
        raise ValueError(f"force={force!r} is not allowed: 'entropy' or 'loss'")

    def init(params) -> WandState:
        base = as_key(key)
        if per_member:
            base = jax.random.fold_in(base, fingerprint(params))
        init_key, noise_key = jax.random.split(base)
        clock = schedules.clock_init(trigger)
        kT = schedules.read(temperature, clock)
        velocity = thermal_velocity(init_key, params, kT, thermal_init)
        deposits = jnp.zeros(grid.n_bins, jnp.float32)
        zero = jnp.zeros([], jnp.int32)
        return WandState(zero, velocity, deposits, zero, noise_key, clock)

    def update(updates, state: WandState, params=None, *, value=None, **extra_args):
        del params
        if value is None:
            raise ValueError("scale_by_wand needs the loss: call update(..., value=loss)")
        value = jnp.asarray(value, jnp.float32)
        if value.ndim != 0:
            raise ValueError(
                f"scale_by_wand: value is the scalar loss L; got an array of shape {value.shape}"
            )
        if not isinstance(value, jax.core.Tracer) and float(value) < 0:
            raise ValueError(f"scale_by_wand: value is the loss L >= 0; got {float(value)}")
        valid = jnp.isfinite(value) & (value >= 0) & jnp.isfinite(optax.tree.norm(updates))
        # A float32 loss can round to exactly 0 (softmax collapse) while its gradient
        # does not; flooring L at the grid's lower edge keeps grad(ln L) finite.
        value = jnp.maximum(jnp.where(valid, value, 1.0), jnp.exp(jnp.float32(grid.x_min)))
        updates = jax.tree.map(lambda g: jnp.where(valid, g, 0), updates)
        x = jnp.maximum(jnp.log(value), jnp.float32(grid.x_min))[None]
        (g,) = slopes_at(
            state.deposits,
            [grid],
            x,
            bias_strength=bias_strength,
            bias_floor=loss_floor,
            edge_strength=edge_strength,
        )
        g = jnp.clip(g, -slope_cap, slope_cap)
        if force == "loss":  # -g grad(L) / L = -scale grad(L)
            g = loss_force_scale * value
        # |a| = |g| |grad L| / L; one factor rescales the whole force onto the cap.
        force_norm = jnp.abs(g) * optax.tree.norm(updates) / value
        g = g * jnp.minimum(1.0, force_cap / force_norm)
        acceleration = jax.tree.map(lambda grad: -g * grad / value, updates)  # -dS/dx grad(ln L)
        step_key = jax.random.fold_in(state.key, state.count)
        kT = schedules.read(temperature, state.clock)
        c_f = schedules.read(friction, state.clock)
        velocity = langevin_step(state.velocity, acceleration, step_key, timestep, c_f, kT)
        add, _, inside = deposited(
            [grid], x, state.n_deposits, deposit=deposit, t_wl=t_wl, sigma_bins=sigma_bins
        )
        clock = schedules.tick(state.clock, trigger, {"value": value, **extra_args})

        def kept(new, old):  # a non-finite step changes nothing but the count
            return jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, old)

        new = WandState(
            state.count + 1,
            kept(velocity, state.velocity),
            kept(state.deposits + add, state.deposits),
            state.n_deposits + (inside & valid),
            state.key,
            kept(clock, state.clock),
        )
        return jax.tree.map(lambda v: jnp.where(valid, v, 0), velocity), new

    return optax.GradientTransformationExtraArgs(init, update)


def wand(
    learning_rate,
    temperature,
    friction,
    *,
    key: jax.Array | int | None = None,
    per_member: bool = True,
    bias_strength=PAPER.bias_strength,
    loss_floor=PAPER.loss_floor,
    deposit=PAPER.deposit,
    t_wl=PAPER.t_wl,
    sigma_bins: float = PAPER.sigma_bins,
    grid: Grid = DEFAULT_GRID,
    edge_strength=PAPER.edge_strength,
    thermal_init: bool = True,
    slope_cap=PAPER.slope_cap,
    force_cap=PAPER.force_cap,
    force: str = PAPER.force,
    loss_force_scale=PAPER.loss_force_scale,
    trigger: schedules.Trigger | None = None,
) -> optax.GradientTransformationExtraArgs:
    """WanD (Zhang et al. 2025): Wang-Landau MD as an optimizer; the update is v * dt.

    (The keyword list repeats `scale_by_wand`'s on purpose: `optax.inject_hyperparams`
    reads a factory's signature, so it must be explicit.)

    Example:
        >>> tx = wand(learning_rate=3e-3, temperature=0.5, friction=0.5, key=jax.random.key(0))
        >>> params = {"w": jnp.ones(3)}
        >>> state = tx.init(params)
        >>> loss = 0.5 * jnp.sum(params["w"] ** 2)
        >>> updates, state = tx.update({"w": params["w"]}, state, params, value=loss)

    Args are those of `scale_by_wand`, with `learning_rate` as dt.
    Reference: Zhang, Shang, Yang, Zhang, "Is Grokking a Computational Glass
    Relaxation?", arXiv 2505.11411 (2025).
    """
    args = dict(locals())  # every keyword above, passed on unchanged
    return optax.chain(
        scale_by_wand(timestep=args.pop("learning_rate"), **args), optax.scale(learning_rate)
    )
