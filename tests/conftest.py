"""Shared test settings: strict rank promotion, so silent broadcasting bugs fail loudly.

Dtype promotion stays "standard": optax itself raises `beta ** count` (float ** int32)
under "strict".
"""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def tiny_cfg():
    """A config small enough to train in a second or two on a CPU."""
    from grokjax.config import Config

    return Config(modulus=11, d_model=32, n_heads=4, d_mlp=64, steps=30, eval_every=10)
