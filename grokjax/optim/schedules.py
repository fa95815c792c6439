"""Schedules for the noise and friction knobs, and the training-side trigger that starts them.

A knob (WanD's temperature kT and friction c_f, SGLD's and `langevin_noise`'s
temperature, `parameter_noise`'s scale sigma) is one of

- a number (or an array: one value per vmapped member), held for the whole run;
- an optax-style schedule, a function of the step count t (any `optax.Schedule` works);
- such a schedule whose clock starts at a `Trigger`: a training-side signal that has
  stayed past a level for a number of consecutive updates. Before the trigger the knob
  holds schedule(0); from the update after it fires, it reads schedule(t - t_fired).

The annealing shapes (`anneal`), with tau = max(t - begin, 0) and v0 -> v1 the start and
the floor:

    constant      v(t) = v0
    exponential   v(t) = v1 + (v0 - v1) exp(-tau / steps)                 (time constant)
    cosine        v(t) = v1 + (v0 - v1) (1 + cos(pi min(tau, steps) / steps)) / 2
    linear        v(t) = v0 + (v1 - v0) min(tau / steps, 1)                (warm-down)

Every number in them (v0, v1, steps, begin) may be a traced array, so a vmapped sweep
gives each member its own schedule (`grokjax.config.Hparams` holds them); optax's own
schedule factories check their step counts in Python, which a traced value cannot pass.
For concrete numbers the shapes equal optax's (`exponential_decay`,
`cosine_decay_schedule`, `linear_schedule`; tests check it).

A trigger reads one extra argument of `update`, `train_accuracy` or `value` (the batch
loss), both passed by the grokjax trainer; nothing test-side reaches an optimizer there,
so a trigger cannot read test accuracy unless a caller's own loop passes it.

Under `optax.inject_hyperparams` a schedule given to the injector is evaluated on the
injector's own step count and handed to the transform as a number, so a trigger then
has nothing to start: give a triggered schedule to the transform itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from grokjax.section import Section

SHAPES = ("constant", "exponential", "cosine", "linear")
SIGNALS = {"train_accuracy": "train_accuracy", "train_loss": "value"}  # name -> update's arg


def anneal(shape: str, start, floor, steps, begin=0.0) -> Callable[[jax.Array], jax.Array]:
    """The schedule of `shape` (one of `SHAPES`, as in the table above) from `start` to
    `floor`.

    Example:
        >>> kT = anneal("cosine", 0.5, 0.01, steps=1000, begin=200)
        >>> [round(float(kT(t)), 4) for t in (0, 700, 5000)]
        [0.5, 0.255, 0.01]
    """
    if shape not in SHAPES:
        raise ValueError(f"shape={shape!r} is not allowed: one of {', '.join(SHAPES)}")

    def schedule(count):
        if shape == "constant":
            return jnp.asarray(start, jnp.float32)
        tau = jnp.maximum(jnp.asarray(count, jnp.float32) - begin, 0.0)
        if shape == "exponential":
            return floor + (start - floor) * jnp.exp(-tau / steps)
        if shape == "cosine":
            return floor + (start - floor) * 0.5 * (
                1.0 + jnp.cos(jnp.pi * (jnp.minimum(tau, steps) / steps))
            )
        return start + (floor - start) * jnp.minimum(tau / steps, 1.0)

    return schedule


class Trigger(NamedTuple):
    """Start the schedules' clock once `signal` ('train_accuracy': accuracy >= level;
    'train_loss': ln L <= level) has held for `steps` updates (level, steps may be traced)."""

    signal: str
    level: Any
    steps: Any


class Clock(NamedTuple):
    """A knob's clock: updates taken, the current run of updates past the trigger's
    level, and the update at which the trigger fired (-1: not yet; 0 without a trigger)."""

    count: jax.Array
    streak: jax.Array
    fired: jax.Array


def clock_init(trigger: Trigger | None) -> Clock:
    """A clock at update 0; without a trigger the schedules run from update 0."""
    if trigger is not None and trigger.signal not in SIGNALS:
        raise ValueError(
            f"trigger signal {trigger.signal!r} is not allowed: one of {', '.join(SIGNALS)}"
        )
    zero = jnp.zeros([], jnp.int32)
    return Clock(zero, zero, zero if trigger is None else jnp.full([], -1, jnp.int32))


def read(knob, clock: Clock):
    """The knob's value at this update: the number, or its schedule on the clock."""
    if not callable(knob):
        return knob
    started = clock.fired >= 0
    return knob(jnp.where(started, clock.count - jnp.maximum(clock.fired, 0), 0))


def tick(clock: Clock, trigger: Trigger | None, extra_args: dict) -> Clock:
    """The clock after this update, the trigger read from this update's `extra_args`."""
    count = clock.count + 1
    if trigger is None:
        return clock._replace(count=count)
    name = SIGNALS[trigger.signal]
    if name not in extra_args:
        raise ValueError(
            f"a {trigger.signal} trigger reads update(..., {name}=...); "
            f"got {sorted(extra_args) or 'no extra arguments'}"
        )
    reading = jnp.asarray(extra_args[name], jnp.float32)
    past = (
        reading >= trigger.level if name == "train_accuracy" else jnp.log(reading) <= trigger.level
    )
    streak = jnp.where(past, clock.streak + 1, 0)
    fires = (clock.fired < 0) & (streak >= trigger.steps)
    return Clock(count, streak, jnp.where(fires, count, clock.fired))


ANNEAL_TRIGGERS = ("step", "train_accuracy", "train_loss")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AnnealConfig(Section):
    """Schedules of the noise and friction knobs (`grokjax.optim.schedules`): the shape
    ('constant', 'exponential', 'cosine', 'linear') of `temperature` (WanD's and SGLD's
    kT), `friction` (WanD's c_f) and `noise` (the plain noise's sigma), and what starts
    their clock: `trigger` 'step' (step 0), 'train_accuracy' (the batch accuracy has
    stayed >= `Hparams.trigger_level` for `Hparams.trigger_steps` updates) or
    'train_loss' (ln L_batch <= the level for as long). The numbers are `Hparams`
    (`temperature_final`, `anneal_steps`, ...); no test-side signal can be chosen."""

    PATH: ClassVar[str] = "optim.anneal"

    temperature: str = "constant"
    friction: str = "constant"
    noise: str = "constant"
    trigger: str = "step"

    def __post_init__(self) -> None:
        for field in ("temperature", "friction", "noise"):
            self.one_of(field, SHAPES)
        self.one_of("trigger", ANNEAL_TRIGGERS)
