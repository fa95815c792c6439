"""Metrics computed on device: losses, accuracies, the smoothed accuracy, weight norm.

Shapes: B examples, C classes. Smoothed accuracy (paper section 3): for each example
    A_i = sigmoid(s * (logit[correct] - max over wrong classes of logit)),   s = 7,
and A = mean_i A_i. Unlike the 0/1 accuracy it is differentiable.
"""

from __future__ import annotations

from collections.abc import Callable

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
    }
