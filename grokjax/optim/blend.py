"""A mixture of two optimizers whose weight follows an observable of the run.

Zhang et al. 2025 mix WanD and AdamW as

    update = alpha * WanD + (1 - alpha) * AdamW,    alpha = (2 A_test - 1)^2,

with A_test the **test** accuracy. A weight read from test accuracy feeds test labels
into training: the run is no longer a measurement of generalisation, and the reported
test numbers are biased upward. `blend` therefore reads the observable from a named extra
argument of `update`, and grokjax's trainer passes only training-side ones (`value`, the
training loss, and `train_accuracy`). The observable is smoothed by an EMA before the
weight is read, because WanD's training loss fluctuates from step to step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from grokjax.section import Section


class BlendState(NamedTuple):
    """The two inner states, the smoothed observable and the last weight used."""

    first: Any
    second: Any
    observable: jax.Array
    weight: jax.Array


def paper_weight(accuracy: jax.Array) -> jax.Array:
    """The paper's alpha = (2 A - 1)^2 (it reads the test accuracy A)."""
    return (2.0 * accuracy - 1.0) ** 2


def ramp_weight(low, high) -> Callable[[jax.Array], jax.Array]:
    """alpha = 1 at or above `high`, 0 at or below `low`, linear in between: on ln L
    (low < high) the first optimizer leads while the loss is high; on an accuracy with
    low > high, until the accuracy rises."""

    def weight(observable: jax.Array) -> jax.Array:
        return jnp.clip((observable - low) / (high - low), 0.0, 1.0)

    return weight


def blend(
    first: optax.GradientTransformation,
    second: optax.GradientTransformation,
    weight: Callable[[jax.Array], jax.Array],
    *,
    observable: str = "value",
    transform: Callable[[jax.Array], jax.Array] | None = None,
    smoothing=0.9,
    initial=None,
) -> optax.GradientTransformationExtraArgs:
    """alpha * first + (1 - alpha) * second, with alpha = weight(EMA of the observable).

    `first` and `second` (plain or extra-args) both see every gradient and extra argument
    and keep their own state. `weight` maps the smoothed observable to alpha (clipped to
    [0, 1]); `observable` names the extra argument read, `transform` is applied to it
    before smoothing (e.g. `jnp.log` for ln L), `smoothing` is the EMA's decay in [0, 1)
    (0: the current value only) and `initial` its start (None: the first reading).

    Example:
        >>> tx = blend(optax.sgd(0.1), optax.adam(0.1), ramp_weight(-3.0, 0.0),
        ...            transform=jnp.log, smoothing=0.0)
        >>> params = {"w": jnp.ones(2)}
        >>> state = tx.init(params)
        >>> updates, state = tx.update(params, state, params, value=jnp.float32(1.0))
        >>> float(state.weight)  # ln 1 = 0 is at the top of the ramp: all SGD
        1.0
    """
    first = optax.with_extra_args_support(first)
    second = optax.with_extra_args_support(second)
    read = transform if transform is not None else (lambda x: x)

    def init(params) -> BlendState:
        start = jnp.nan if initial is None else initial
        return BlendState(
            first.init(params),
            second.init(params),
            jnp.asarray(start, jnp.float32),
            jnp.asarray(jnp.nan, jnp.float32),
        )

    def update(updates, state: BlendState, params=None, **extra_args):
        if observable not in extra_args:
            raise ValueError(
                f"blend reads the observable {observable!r}: pass it to update() as "
                f"{observable}=...; got {sorted(extra_args) or 'no extra arguments'}"
            )
        reading = read(jnp.asarray(extra_args[observable], jnp.float32))
        previous = jnp.where(jnp.isnan(state.observable), reading, state.observable)
        smoothed = smoothing * previous + (1.0 - smoothing) * reading
        alpha = jnp.clip(weight(smoothed), 0.0, 1.0)
        u1, s1 = first.update(updates, state.first, params, **extra_args)
        u2, s2 = second.update(updates, state.second, params, **extra_args)
        mixed = jax.tree.map(lambda a, b: alpha * a + (1.0 - alpha) * b, u1, u2)
        return mixed, BlendState(s1, s2, smoothed, alpha)

    return optax.GradientTransformationExtraArgs(init, update)


BLEND_SIGNALS = ("train_loss", "train_accuracy")


@dataclasses.dataclass(frozen=True, kw_only=True)
class BlendConfig(Section):
    """The blend alpha WanD + (1 - alpha) AdamW (`grokjax.optim.blend`): alpha read from a
    training-side `signal` ('train_loss': ln L of the batch; 'train_accuracy'), smoothed
    by an EMA of decay `smoothing`, and ramped linearly from 0 at `low` to 1 at `high`
    (for accuracy, low > high hands over to AdamW as accuracy rises)."""

    PATH: ClassVar[str] = "optim.blend"

    signal: str = "train_loss"
    low: float = -3.0
    high: float = 0.0
    smoothing: float = 0.9

    def __post_init__(self) -> None:
        self.check_finite()
        self.one_of("signal", BLEND_SIGNALS)
        if self.low == self.high:
            self.fail("high", f"a number other than optim.blend.low={self.low}")
        self.in_range("smoothing", 0.0, 1.0, "a decay in [0, 1)")
