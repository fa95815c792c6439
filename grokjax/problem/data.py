"""Datasets: the train/test split of all pairs of a modular-arithmetic task.

Sequences are the paper's tokens `x, y, =` with '=' the token id p, so the
vocabulary holds p + 1 tokens; the label is the result of the operation.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from grokjax.config import DataConfig
from grokjax.problem.tasks import all_pairs


class Dataset(NamedTuple):
    """Token sequences [N, 3] (x, y, '=') and integer labels [N] for both splits."""

    train_inputs: jax.Array
    train_labels: jax.Array
    test_inputs: jax.Array
    test_labels: jax.Array
    clean_train_labels: jax.Array  # the true labels of the training set, before label noise


def make(key: jax.Array, cfg: DataConfig) -> Dataset:
    """Split all pairs of `cfg.task` modulo `cfg.modulus` with `key`.

    A random permutation of the pairs gives the first `cfg.n_train` to training and
    the rest to test. With `cfg.label_noise > 0`, that fraction of training labels is
    replaced by a uniformly drawn *wrong* label; the test labels stay clean.

    Args:
        key: the split key (pass the same key to reuse a split across seeds).
        cfg: the task and split (`Config.data`).
    Returns:
        A `Dataset`; shapes depend only on `cfg`, so `make` traces under jit and vmap.

    Example:
        >>> ds = make(jax.random.key(0), DataConfig(task="x+y", modulus=7, train_fraction=0.5))
        >>> ds.train_inputs.shape
        (24, 3)
    """
    pairs, labels = all_pairs(cfg.task, cfg.modulus)
    equals = jnp.full((pairs.shape[0], 1), cfg.modulus, dtype=jnp.int32)
    inputs = jnp.concatenate([jnp.asarray(pairs), equals], axis=1)
    labels = jnp.asarray(labels)

    perm_key, noise_key = jax.random.split(key)
    order = jax.random.permutation(perm_key, pairs.shape[0])
    train_idx, test_idx = order[: cfg.n_train], order[cfg.n_train :]
    clean = labels[train_idx]
    noisy = _corrupt(noise_key, clean, cfg.modulus, cfg.label_noise)
    return Dataset(inputs[train_idx], noisy, inputs[test_idx], labels[test_idx], clean)


def _corrupt(key: jax.Array, labels: jax.Array, p: int, fraction: float) -> jax.Array:
    n_noisy = int(round(fraction * labels.shape[0]))
    if n_noisy == 0:
        return labels
    pick_key, shift_key = jax.random.split(key)
    which = jax.random.permutation(pick_key, labels.shape[0])[:n_noisy]
    # A shift in 1..p-1 guarantees the new label differs from the true one.
    shift = jax.random.randint(shift_key, (n_noisy,), 1, p)
    return labels.at[which].set((labels[which] + shift) % p)
