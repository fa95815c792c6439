"""Metrics computed on device: losses, accuracies, the smoothed accuracy, weight norms,
and the share of float-saturated softmax outputs on the training set.

Shapes: B examples, C classes. Smoothed accuracy (paper section 3): for each example
    A_i = sigmoid(s * (logit[correct] - max over wrong classes of logit)),   s = 7,
and A = mean_i A_i. Unlike the 0/1 accuracy it is differentiable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

METRIC_NAMES = (
    "train_loss",
    "test_loss",
    "ln_train_loss",
    "train_acc",
    "test_acc",
    "smoothed_test_acc",
    "weight_norm",
    "last_layer_norm",
    "saturated_fraction",
)


def cross_entropy(logits_BxC: jax.Array, labels_B: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy over the batch."""
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxC, labels_B).mean()


def accuracy(logits_BxC: jax.Array, labels_B: jax.Array) -> jax.Array:
    return (jnp.argmax(logits_BxC, axis=-1) == labels_B).mean()


def margin(logits_BxC: jax.Array, labels_B: jax.Array) -> jax.Array:
    """logit of the correct class minus the largest wrong-class logit, per example."""
    correct_B = jnp.take_along_axis(logits_BxC, labels_B[:, None], axis=-1)[:, 0]
    is_label_BxC = jnp.arange(logits_BxC.shape[-1])[None, :] == labels_B[:, None]
    wrong_B = jnp.max(jnp.where(is_label_BxC, -jnp.inf, logits_BxC), axis=-1)
    return correct_B - wrong_B


def smoothed_accuracy(logits_BxC: jax.Array, labels_B: jax.Array, slope: float) -> jax.Array:
    """The paper's differentiable accuracy: mean sigmoid(slope * margin)."""
    return jax.nn.sigmoid(slope * margin(logits_BxC, labels_B)).mean()


def weight_norm(params) -> jax.Array:
    """Global L2 norm over every parameter."""
    return optax.tree.norm(params)


def evaluate(
    apply: Callable,
    params,
    train_inputs: jax.Array,
    train_labels: jax.Array,
    test_inputs: jax.Array,
    test_labels: jax.Array,
    smooth_slope: float,
) -> dict[str, jax.Array]:
    """Every metric of `METRIC_NAMES` on the full train and test sets, as scalars."""
    train_logits = apply(params, train_inputs)
    test_logits = apply(params, test_inputs)
    train_loss = cross_entropy(train_logits, train_labels)
    return {
        "train_loss": train_loss,
        "test_loss": cross_entropy(test_logits, test_labels),
        "ln_train_loss": jnp.log(train_loss),
        "train_acc": accuracy(train_logits, train_labels),
        "test_acc": accuracy(test_logits, test_labels),
        "smoothed_test_acc": smoothed_accuracy(test_logits, test_labels, smooth_slope),
        "weight_norm": weight_norm(params),
        "last_layer_norm": last_layer_norm(params),
        "saturated_fraction": saturated_fraction(train_logits),
    }


def last_layer_norm(params: Any, name: str = "unembed") -> jax.Array:
    """L2 norm of the leaves with a key equal to `name` on their path (jointly, if several).

    Matching is per path component (a dict key, attribute name or index), so "embed"
    does not select "unembed"; a flax module named `name` contributes its kernel and
    bias together. Raises KeyError when nothing matches.
    """
    matched = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
        if name in keys:
            matched.append(leaf)
    if not matched:
        paths = [
            jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]
        ]
        raise KeyError(f"no parameter leaf has {name!r} on its path; leaves: {paths}")
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in matched))


def saturated_fraction(logits_BxC: jax.Array, threshold: float = 0.0) -> jax.Array:
    """Share of the B * C softmax probabilities that are float32-saturated.

    The probabilities are p = `jax.nn.softmax(logits.astype(float32))` over the last
    axis, and an entry counts when p <= threshold or p >= 1 - threshold (both evaluated
    in float32). With the default threshold 0 that is exactly p == 0.0 (exp underflowed:
    a logit gap beyond about 87-104, depending on whether the backend flushes denormals)
    or p == 1.0 (the other terms of the normaliser vanish against 1 in float32: gap
    beyond about 17). Saturation at 1 is Prieto et al.'s softmax collapse: the
    example's gradient through that class is exactly zero. Every class of every row
    counts, whether or not it is the label; the result is a float32 scalar in [0, 1].
    """
    p_BxC = jax.nn.softmax(logits_BxC.astype(jnp.float32), axis=-1)
    thr = jnp.float32(threshold)
    saturated = (p_BxC <= thr) | (p_BxC >= jnp.float32(1.0) - thr)
    return jnp.mean(saturated.astype(jnp.float32))
