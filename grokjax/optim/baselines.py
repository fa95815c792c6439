"""Known ways to speed up or remove grokking: optax transformations and one loss.

- `grokfast_ema`, `grokfast_ma` (Lee, Kang, Kim, Lee 2024, "Grokfast: Accelerated
  Grokking by Amplifying Slow Gradients", arXiv 2405.20233) amplify the slow part of the
  gradient; `orthogonal_gradient`, "perpendicular Grad" (Prieto, Barsbey, Mediano, Birdal
  2025, "Grokking at the Edge of Numerical Stability", arXiv 2501.04697), drops its part
  along the weights. These filters go first: `optax.chain(grokfast_ema(), optax.adamw(...))`.
- StableMax (the same 2025 paper) is a loss: `grokjax.problem.metrics.stablemax_cross_entropy`
  (re-exported here).
- `langevin_noise` (SGLD, Welling and Teh 2011, "Bayesian Learning via Stochastic
  Gradient Langevin Dynamics") and `parameter_noise` (the plain-noise baseline: isotropic,
  of a fixed or scheduled scale, without WanD's thermostat or force) go last, after the
  learning rate is applied. Their knobs (T, sigma) take a number or a schedule
  (`grokjax.optim.schedules`).

Adam without weight decay is `optax.adam`; no wrapper here. Every number (alpha, lamb,
eps, learning_rate, temperature) may be a traced array, so a vmapped `train` gives each
ensemble member its own; `grokfast_ma`'s `window` shapes the state and is static.
Outputs keep each update leaf's dtype.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from grokjax.optim import schedules
from grokjax.optim.schedules import Trigger
from grokjax.problem.metrics import stablemax_cross_entropy  # noqa: F401 (re-export)
from grokjax.section import Section
from grokjax.wanglandau.thermostat import normal_like


class GrokfastEmaState(NamedTuple):
    """EMA of the gradients (like params) and updates taken (0: mu not yet seeded)."""

    mu: Any
    count: jax.Array


class GrokfastMaState(NamedTuple):
    """Ring buffer of the last `window` gradients (leading axis) and updates taken."""

    buffer: Any
    count: jax.Array


class AddedNoiseState(NamedTuple):
    """The schedules' clock (its count is the noise stream's step index) and the noise key."""

    clock: schedules.Clock
    key: jax.Array


def grokfast_ema(alpha=0.98, lamb=2.0) -> optax.GradientTransformation:
    """Grokfast-EMA: add back an amplified exponential moving average of the gradient,

        mu_1 = g_1,  mu_t = alpha mu_{t-1} + (1 - alpha) g_t (t > 1),  g_t <- g_t + lamb mu_t

    (mu seeded with the first gradient as in the authors' code, so step 1 returns
    (1 + lamb) g); alpha in [0, 1) is the decay, lamb the amplification.

    Example:
        >>> tx = optax.chain(grokfast_ema(0.98, 2.0), optax.adamw(1e-3, weight_decay=0.005))
    """

    def leaf(g, mu, count):
        mu = jnp.where(count == 0, g, mu)  # seeded with the first gradient
        mu = (alpha * mu + (1.0 - alpha) * g).astype(mu.dtype)
        return (g + lamb * mu).astype(g.dtype), mu

    return _slow_filter(GrokfastEmaState, jnp.zeros_like, leaf)


def grokfast_ma(window: int = 100, lamb=5.0) -> optax.GradientTransformation:
    """Grokfast-MA: add back an amplified mean of the last `window` gradients,

        g_t <- g_t + lamb (1 / window) sum_{k=0}^{window-1} g_{t-k}   once t >= window,

    g_t unchanged before (as in the authors' code). The state holds `window` copies of
    the parameters (mind the memory for large windows times ensemble members).

    Example:
        >>> tx = optax.chain(grokfast_ma(100, 5.0), optax.adamw(1e-3, weight_decay=0.01))
    """
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"grokfast_ma: window={window!r} must be a positive int")

    def leaf(g, buf, count):
        buf = buf.at[count % window].set(g.astype(buf.dtype))
        full = count + 1 >= window  # this gradient fills the last empty slot
        return jnp.where(full, g + lamb * jnp.mean(buf, axis=0), g).astype(g.dtype), buf

    return _slow_filter(GrokfastMaState, lambda p: jnp.zeros((window, *p.shape), p.dtype), leaf)


def _slow_filter(state_type, init_memory, leaf) -> optax.GradientTransformation:
    """Per tensor, (g, memory) <- leaf(g, memory, updates taken); the memory starts as
    init_memory(param)."""

    def init(params):
        return state_type(jax.tree.map(init_memory, params), jnp.zeros([], jnp.int32))

    def update(updates, state, params=None):
        del params
        pairs = jax.tree.map(lambda g, m: leaf(g, m, state.count), updates, state[0])
        treedef = jax.tree.structure(updates)  # split the (g, memory) leaves into two trees
        flat = treedef.flatten_up_to(pairs)
        memory = jax.tree.unflatten(treedef, [m for _, m in flat])
        return jax.tree.unflatten(treedef, [g for g, _ in flat]), state_type(
            memory, state.count + 1
        )

    return optax.GradientTransformation(init, update)


def orthogonal_gradient(eps=1e-15) -> optax.GradientTransformation:
    """Perpendicular Grad: per tensor, drop the gradient's component along the weights,

        g_perp = g - (g.w / (w.w + eps)) w,    g <- g_perp ||g|| / ||g_perp||,

    so the loss cannot be lowered by scaling the weights up; the rescaling to the
    original norm is the authors' public implementation. eps guards w.w = 0 (a zero
    tensor, such as a fresh bias, keeps its gradient); a zero g_perp gives a zero update.
    Dot products are elementwise sums (`dot` may run in reduced precision on
    accelerators). Needs `params`.

    Example:
        >>> tx = orthogonal_gradient()
        >>> params = {"w": jnp.array([1.0, 0.0])}
        >>> g_perp, _ = tx.update({"w": jnp.array([1.0, 1.0])}, tx.init(params), params)
        >>> g_perp["w"]  # [0, sqrt 2]
        Array([0.       , 1.4142135], dtype=float32)
    """

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("orthogonal_gradient needs params: call update(grads, state, params)")

        def leaf(g, w):
            w = w.astype(g.dtype)
            g_perp = g - (jnp.sum(g * w) / (jnp.sum(w * w) + eps)) * w
            norm, norm_perp = jnp.sqrt(jnp.sum(g * g)), jnp.sqrt(jnp.sum(g_perp * g_perp))
            nonzero = norm_perp > 0
            scale = jnp.where(nonzero, norm / jnp.where(nonzero, norm_perp, 1.0), 0.0)
            return (g_perp * scale).astype(g.dtype)

        return jax.tree.map(leaf, updates, params), state

    return optax.GradientTransformation(init, update)


def langevin_noise(
    learning_rate, temperature, key: jax.Array, *, trigger: Trigger | None = None
) -> optax.GradientTransformationExtraArgs:
    """SGLD noise on the final update: u <- u + sqrt(2 lr T) xi, xi ~ N(0, 1) per parameter.

    After plain SGD the step is theta <- theta - lr g + sqrt(2 lr T) xi (stationary
    density exp(-L / T) in the small-lr limit). (`optax.add_noise` adds its noise to the
    gradient before the learning-rate scaling, so its std scales with lr, not sqrt(lr).)

    Args:
        learning_rate: lr, a number, an array (may be traced) or an optax schedule of the
            step count (use the optimizer's own schedule).
        temperature: T >= 0 (0 leaves the update unchanged), a number or a schedule.
        key: the noise key, kept in the state (step t draws from `fold_in(key, t)`, so
            the stream does not depend on how the loop is chunked); build the
            transformation from the member's own key inside the vmapped `train`.
        trigger: starts the schedule's clock (`grokjax.optim.schedules.Trigger`); None
            runs it from step 0.

    Example:
        >>> lr, T = 1e-3, 1e-4
        >>> tx = optax.chain(optax.sgd(lr), langevin_noise(lr, T, key=jax.random.key(0)))
    """

    def std(clock: schedules.Clock):
        lr = learning_rate(clock.count) if callable(learning_rate) else learning_rate
        return jnp.sqrt(2.0 * lr * schedules.read(temperature, clock))

    return _added_noise(std, key, trigger)


def parameter_noise(
    scale, key: jax.Array, *, trigger: Trigger | None = None
) -> optax.GradientTransformationExtraArgs:
    """Isotropic Gaussian noise after any optimizer: u <- u + sigma xi, xi ~ N(0, 1) per
    parameter and step; `scale` (sigma >= 0), `key` and `trigger` as in `langevin_noise`.

    Example:
        >>> tx = optax.chain(optax.adamw(1e-3), parameter_noise(1e-2, jax.random.key(0)))
    """
    return _added_noise(lambda clock: schedules.read(scale, clock), key, trigger)


def _added_noise(std_at, key: jax.Array, trigger: Trigger | None):
    """u <- u + std_at(clock) xi, xi from `fold_in(key, step)`."""

    def init(params) -> AddedNoiseState:
        del params
        return AddedNoiseState(schedules.clock_init(trigger), key)

    def update(updates, state: AddedNoiseState, params=None, **extra_args):
        del params
        std = std_at(state.clock)
        noise = normal_like(jax.random.fold_in(state.key, state.clock.count), updates)
        noisy = jax.tree.map(lambda u, xi: (u + std * xi).astype(u.dtype), updates, noise)
        return noisy, AddedNoiseState(schedules.tick(state.clock, trigger, extra_args), state.key)

    return optax.GradientTransformationExtraArgs(init, update)


GRADIENT_FILTERS = ("none", "grokfast-ema", "grokfast-ma", "orthogonal")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FilterConfig(Section):
    """A gradient filter before the optimizer (`grokjax.optim.baselines`): `name` 'none',
    'grokfast-ema' (decay `alpha`, amplification `lamb`), 'grokfast-ma' (`window`,
    `lamb`) or 'orthogonal' (the gradient without its component along the weights);
    `equal_lr` divides a Grokfast output by 1 + lamb (equal effective learning rate)."""

    PATH: ClassVar[str] = "optim.filter"

    name: str = "none"
    alpha: float = 0.98
    lamb: float = 2.0
    window: int = 100
    equal_lr: bool = False

    def __post_init__(self) -> None:
        self.check_finite()
        self.one_of("name", GRADIENT_FILTERS)
        self.in_range("alpha", 0.0, 1.0, "a decay in [0, 1)")
        if self.lamb < 0:
            self.fail("lamb", "a number >= 0")
        self.positive_int("window")
