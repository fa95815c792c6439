"""What a task is to the rest of grokjax: the `Spec` of its examples and the `Source`
that makes them. Models, checks and data read it; it imports nothing of theirs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

CLASSIFICATION, REGRESSION = "classification", "regression"


class Spec(NamedTuple):
    """What a task's examples look like.

    `kind` 'classification' or 'regression'; `input_shape` one example's shape;
    `n_outputs` the classes (or the target's size); `n_examples` the pool to split
    (None: drawn fresh, `default_sizes` train and test examples unless the config
    says); `vocab_size` the token count for token inputs (None: float features);
    `presplit` the pool's first `default_sizes[0]` examples are the training set (a
    user's own split; no permutation); `n_labels` the classes labels take, when fewer
    than the outputs (modular: p labels, p + 1 logits with '='); `query_last` the last
    position is a query token that carries nothing (modular '='), so the token MLP
    leaves it out.
    """

    kind: str
    input_shape: tuple[int, ...]
    n_outputs: int
    n_examples: int | None
    vocab_size: int | None = None
    default_sizes: tuple[int, int] | None = None
    presplit: bool = False
    n_labels: int | None = None
    query_last: bool = False

    @property
    def tokens(self) -> bool:
        return self.vocab_size is not None


class Source(NamedTuple):
    """A task: `spec(cfg) -> Spec` and `examples(key, cfg) -> (inputs, labels)`, the whole
    pool (a pool's examples do not depend on `key`; a drawn task's do)."""

    spec: Callable[[Any], Spec]
    examples: Callable[[jax.Array, Any], tuple[jax.Array, jax.Array]]
    description: str = ""
