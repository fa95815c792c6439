"""Optimizers chosen by config: ordinary optax transformations.

The AdamW baseline matches the paper: betas (0.9, 0.98), a linear warm-up from 0
over the first 10 updates, decoupled weight decay (as PyTorch's AdamW: the decay is
scaled by the learning rate). The fixed-norm mode (Liu et al. 2023; the paper's
norm-30 baseline) rescales all parameters to a fixed global norm after each update.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from grokjax.config import Config, Hparams
from grokjax.errors import ConfigError


def warmup(learning_rate, warmup_steps: int) -> optax.Schedule:
    """Linear ramp from 0 to `learning_rate` over `warmup_steps` updates, then constant."""
    return optax.linear_schedule(0.0, learning_rate, warmup_steps)


def project_to_global_norm(norm: float) -> optax.GradientTransformation:
    """Make the update land on the sphere of global norm `norm`.

    new_params = (params + u) * norm / ||params + u||, returned as the update
    new_params - params, so it goes last in an optax chain.
    """

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("project_to_global_norm needs params")
        moved = optax.apply_updates(params, updates)
        scale = norm / optax.tree.norm(moved)
        return jax.tree.map(lambda m, p: m * scale - p, moved, params), state

    return optax.GradientTransformation(init, update)


def rescale_to_norm(params, norm: float):
    """params scaled so that their global norm equals `norm`."""
    scale = norm / optax.tree.norm(params)
    return jax.tree.map(lambda p: p * scale, params)


def make_optimizer(cfg: Config, hparams: Hparams, key: jax.Array) -> optax.GradientTransformation:
    """The optax transformation for `cfg.optimizer` with the (possibly traced) `hparams`.

    Built inside the vmapped training function so each member gets its own numbers
    (and, for stochastic optimizers, its own key).
    """
    del key  # the deterministic optimizers draw no noise
    schedule = warmup(hparams.learning_rate, cfg.warmup_steps)
    if cfg.optimizer == "adamw":
        tx = optax.adamw(schedule, b1=cfg.beta1, b2=cfg.beta2, weight_decay=hparams.weight_decay)
    elif cfg.optimizer == "adam":
        tx = optax.adam(schedule, b1=cfg.beta1, b2=cfg.beta2)
    else:  # "sgd": heavy-ball momentum with coupled L2 weight decay
        tx = optax.chain(
            optax.add_decayed_weights(hparams.weight_decay),
            optax.sgd(schedule, momentum=cfg.momentum),
        )
    if cfg.fixed_norm is not None:
        tx = optax.chain(tx, project_to_global_norm(cfg.fixed_norm))
    return tx


def validate_hparams(hparams: Hparams) -> None:
    """Clear errors for swept numbers outside their range, before any compute."""
    lr = jnp.asarray(hparams.learning_rate)
    wd = jnp.asarray(hparams.weight_decay)
    if not bool(jnp.all(lr > 0)):
        raise ConfigError(f"learning_rate={hparams.learning_rate!r} is not allowed: positive")
    if not bool(jnp.all(wd >= 0)):
        raise ConfigError(f"weight_decay={hparams.weight_decay!r} is not allowed: >= 0")
