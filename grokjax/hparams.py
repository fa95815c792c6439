"""`Hparams`: the numbers a vmapped sweep may vary per ensemble member.

They never change the compiled program (the static config does), so one compilation
serves a whole grid of learning rates, weight decays, temperatures, ...
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from grokjax.errors import ConfigError


class Hparams(NamedTuple):
    """Numbers a vmapped sweep may vary per member (scalars or arrays with a leading axis).

    `temperature` (kT) is WanD's and SGLD's; `friction` (c_f) is WanD's; other
    optimizers ignore them. WanD ignores `weight_decay` (it has none, as in the paper).
    `init_scale` multiplies every initial parameter (Liu et al. 2022's alpha; 1 = the
    model's own initialisation). `noise_scale` is sigma of the plain parameter noise
    (`optim.noise='gaussian'`).

    The schedules of `optim.anneal` (`grokjax.optim.schedules`) take a knob from its value
    above to `temperature_final`, `friction_final` or `noise_final`, over `anneal_steps`
    (the time constant of the exponential shape) from `anneal_begin` steps after their
    clock starts: at step 0, or when the trigger fires, which is when the training-side
    signal has been past `trigger_level` for `trigger_steps` consecutive updates.
    """

    learning_rate: Any = 1e-3
    weight_decay: Any = 1.0
    temperature: Any = 0.5
    friction: Any = 0.5
    init_scale: Any = 1.0
    noise_scale: Any = 0.0
    temperature_final: Any = 0.0
    friction_final: Any = 0.5
    noise_final: Any = 0.0
    anneal_steps: Any = 1000.0
    anneal_begin: Any = 0.0
    trigger_level: Any = 0.99
    trigger_steps: Any = 100.0

    def axes(self) -> Hparams:
        """vmap `in_axes` for these numbers: 0 for a field with one value per member, else None.

        Example: `jax.vmap(train, in_axes=(None, grid.axes()))(key, grid)`.
        """
        return Hparams(*(0 if np.ndim(v) else None for v in self))


HPARAM_RULES = {
    "learning_rate": (lambda v: v > 0, "positive"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "temperature": (lambda v: v >= 0, ">= 0"),
    "friction": (lambda v: (v > 0) & (v <= 1), "in (0, 1]"),
    "init_scale": (lambda v: v > 0, "positive"),
    "noise_scale": (lambda v: v >= 0, ">= 0"),
    "temperature_final": (lambda v: v >= 0, ">= 0"),
    "friction_final": (lambda v: (v > 0) & (v <= 1), "in (0, 1]"),
    "noise_final": (lambda v: v >= 0, ">= 0"),
    "anneal_steps": (lambda v: v > 0, "a positive number of steps"),
    "anneal_begin": (lambda v: v >= 0, "a number of steps >= 0"),
    "trigger_level": (lambda v: v == v, "a level of the trigger's signal"),
    "trigger_steps": (lambda v: v >= 1, "a number of updates >= 1"),
}


def validate_hparams(hparams: Hparams) -> None:
    """Clear errors for swept numbers outside their range (any shape), before any compute."""
    for name, (ok, allowed) in HPARAM_RULES.items():
        value = getattr(hparams, name)
        array = np.asarray(value, np.float64)
        if not bool(np.all(np.isfinite(array) & ok(array))):
            raise ConfigError(f"{name}={value!r} is not allowed: a finite number, {allowed}")
