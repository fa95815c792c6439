"""Models and data of a grokjax user, as a user writes them: the tests name them both as
Python objects (`register_model`) and as 'tests/user_zoo.py:attr' references."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import grokjax


def clusters(n: int = 120, dims: int = 6, seed: int = 0):
    """Three noisy Gaussian clusters: float inputs [n, dims], labels 0..2."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centres = rng.normal(size=(3, dims)) * 1.5
    return (centres[labels] + rng.normal(size=(n, dims))).astype(np.float32), labels


task = grokjax.from_arrays(*clusters())


class LinenNet(nn.Module):
    """The flax examples' convention: BatchNorm and Dropout switched by `train`."""

    width: int = 16

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(self.width)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.Dropout(0.1, deterministic=not train)(nn.relu(x))
        return nn.Dense(3, name="unembed")(x)


class NnxNet(nnx.Module):
    """A Flax NNX module: its constructor takes the task's Spec and rngs."""

    def __init__(self, spec, rngs: nnx.Rngs, width: int = 16):
        self.hidden = nnx.Linear(spec.input_shape[0], width, rngs=rngs)
        self.norm = nnx.BatchNorm(width, momentum=0.9, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, rngs=rngs)
        self.unembed = nnx.Linear(width, spec.n_outputs, rngs=rngs)

    def __call__(self, x):
        return self.unembed(self.dropout(nnx.relu(self.norm(self.hidden(x)))))


def _pair_init(key):
    k1, k2 = jax.random.split(key)
    return {
        "hidden": jax.random.normal(k1, (6, 16)) / jnp.sqrt(6.0),
        "unembed": jax.random.normal(k2, (16, 3)) / 4.0,
    }


def _pair_apply(params, x):
    return jnp.tanh(x @ params["hidden"]) @ params["unembed"]


pair = grokjax.Model(_pair_init, _pair_apply)
