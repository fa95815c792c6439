"""Fourier progress measures of a network on a modular task, on device.

Nanda et al., "Progress measures for grokking via mechanistic interpretability" (ICLR
2023), find that a transformer trained on x+y mod p computes with a few frequencies
w_k = 2 pi k / p, and that measures built on the Fourier basis of Z_p move during the
memorisation plateau, before the test loss does. grokjax's versions, for any model
whose parameters have an `embed` leaf [V, D] (token rows, the first p of them the
residues) and an `unembed` leaf [D, C] (the first p outputs the residues): the
built-in transformer and token MLP.

The Fourier basis of Z_p is the orthonormal p x p matrix F whose rows are

    F_0(x) = 1 / sqrt(p),  F_{2k-1}(x) = sqrt(2/p) cos(w_k x),  F_{2k}(x) = sqrt(2/p) sin(w_k x)

for k = 1 .. K = (p - 1) // 2 (and, for even p, a last row (-1)^x / sqrt(p)). On top of it:

* **Frequency norms** of a matrix W [p, D] over the residues: N_k = ||(F W)_{2k-1}||^2 +
  ||(F W)_{2k}||^2 summed over D, for k = 1..K (the constant row is left out).
* **Key frequencies** of the embedding: the n frequencies with the largest N_k of
  W_E[:p] (n = `EvalConfig.progress_frequencies`).
* `key_frequency_share`: sum of N_k over the key frequencies / sum over all k, in [0, 1]
  (n / K for an embedding with no preferred frequency, 1 for one built from the key
  frequencies alone).
* `gini_embed`, `gini_unembed`: the Gini coefficient of the p component norms
  ||(F W_E[:p])_i|| and ||(W_U[:, :p] F^T)_{:, i}||, i = 0..p-1, where the Gini
  coefficient of x_1..x_n >= 0 is G = sum_ij |x_i - x_j| / (2 n sum_i x_i): 0 when
  every component is as large as every other, (n - m) / n when m of them share all
  the weight.
* **Label-Fourier components** of the logits: over the evaluated examples (train and
  test, with their true labels c), for each output j the mean logit of the examples
  of each label, Lbar[c, j] (a function of c only, which for x+y is a function of
  a + b), expanded in F over c. The key-frequency part G_key[c, j] keeps the rows
  2k-1, 2k of the key frequencies; adding row 0 (the mean) gives G_res.
* `restricted_loss`: cross-entropy over all evaluated examples of the logits replaced
  by G_res[c_n] (only the key-frequency directions cos(w_k c), sin(w_k c) and the mean
  survive): low once the network computes with the key frequencies.
* `excluded_loss`: cross-entropy on the training set of the logits minus G_key[c_n]
  (those directions removed, everything else kept): low while the training set is
  memorised by other means, high once the answer goes through the key frequencies.

For x+y on the full grid of pairs, cos(w_k c) = cos(w_k (a + b)), and the label means
are the orthogonal projection onto functions of a + b, so these are Nanda et al.'s
restricted and excluded losses. For another task they read the directions of the
task's own label.

Shapes: p residues, D width, N examples, C outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.problem.metrics import cross_entropy, leaves_named

PROGRESS_NAMES = (
    "key_frequency_share",
    "restricted_loss",
    "excluded_loss",
    "gini_embed",
    "gini_unembed",
)


def fourier_basis(p: int) -> np.ndarray:
    """The orthonormal Fourier basis of Z_p, rows as in the module docstring: [p, p]."""
    x = np.arange(p)
    rows = [np.full(p, 1.0 / np.sqrt(p))]
    for k in range(1, (p - 1) // 2 + 1):
        w = 2 * np.pi * k / p
        rows += [np.sqrt(2.0 / p) * np.cos(w * x), np.sqrt(2.0 / p) * np.sin(w * x)]
    if p % 2 == 0:
        rows.append((-1.0) ** x / np.sqrt(p))
    return np.stack(rows).astype(np.float32)


def frequency_norms(w_pxD: jax.Array, basis_pxp: jax.Array) -> jax.Array:
    """N_k, k = 1..K: squared norm of the cosine and sine rows of F W (module docstring)."""
    K = (basis_pxp.shape[0] - 1) // 2
    sq_p = jnp.sum(jnp.square(basis_pxp @ w_pxD), axis=-1)
    return sq_p[1 : 2 * K + 1].reshape(K, 2).sum(-1)


def gini(x_N: jax.Array) -> jax.Array:
    """Gini coefficient of non-negative x: sum_ij |x_i - x_j| / (2 n sum x), via the sort."""
    n = x_N.shape[0]
    x_sorted = jnp.sort(x_N)
    rank = jnp.arange(1, n + 1, dtype=x_sorted.dtype)
    return 2.0 * jnp.sum(rank * x_sorted) / (n * jnp.sum(x_sorted)) - (n + 1.0) / n


def key_frequencies(norms_K: jax.Array, n_key: int) -> jax.Array:
    """[K] indicator of the n_key largest N_k (frequency k + 1 at index k)."""
    _, top = jax.lax.top_k(norms_K, n_key)
    return jnp.zeros(norms_K.shape[0]).at[top].set(1.0)


def row_mask(chosen_K: jax.Array, p: int, constant: bool) -> jax.Array:
    """[p] mask over the rows of F: the cosine and sine rows of the chosen frequencies,
    and row 0 (the mean) when `constant`."""
    head = jnp.full(1, 1.0 if constant else 0.0)
    tail = jnp.zeros(p - 1 - 2 * chosen_K.shape[0])  # the (-1)^x row of an even p
    return jnp.concatenate([head, jnp.repeat(chosen_K, 2), tail])


def label_components(logits_NxC, labels_N, basis_pxp, mask_p) -> jax.Array:
    """F^T diag(mask) F Lbar, the label means Lbar [p, C] filtered over c: [p, C]."""
    p = basis_pxp.shape[0]
    sums_pxC = jax.ops.segment_sum(logits_NxC, labels_N, num_segments=p)
    counts_p = jax.ops.segment_sum(jnp.ones_like(labels_N, logits_NxC.dtype), labels_N, p)
    means_pxC = sums_pxC / jnp.maximum(counts_p, 1.0)[:, None]
    return basis_pxp.T @ (mask_p[:, None] * (basis_pxp @ means_pxC))


def progress_measures(apply: Callable, params, ds, p: int, n_key: int) -> dict[str, jax.Array]:
    """Every measure of `PROGRESS_NAMES` as scalars, on the `Dataset` `ds`: the directions
    are read from the true labels; `excluded_loss` fits the (noisy) training labels."""
    basis = jnp.asarray(fourier_basis(p))
    (w_e,) = leaves_named(params, "embed")
    (w_u,) = leaves_named(params, "unembed")
    w_e_pxD = w_e[:p].astype(jnp.float32)
    w_u_DxP = w_u[:, :p].astype(jnp.float32)
    norms_K = frequency_norms(w_e_pxD, basis)
    chosen_K = key_frequencies(norms_K, n_key)
    train_out = apply(params, ds.train_inputs)
    logits_NxC = jnp.concatenate([train_out, apply(params, ds.test_inputs)])
    true_N = jnp.concatenate([ds.clean_train_labels, ds.test_labels])
    restricted = label_components(logits_NxC, true_N, basis, row_mask(chosen_K, p, True))
    key_part = label_components(logits_NxC, true_N, basis, row_mask(chosen_K, p, False))
    return {
        "key_frequency_share": jnp.sum(chosen_K * norms_K) / jnp.sum(norms_K),
        "restricted_loss": cross_entropy(restricted[true_N], true_N),
        "excluded_loss": cross_entropy(
            train_out - key_part[ds.clean_train_labels], ds.train_labels
        ),
        "gini_embed": gini(jnp.linalg.norm(basis @ w_e_pxD, axis=-1)),
        "gini_unembed": gini(jnp.linalg.norm(w_u_DxP @ basis.T, axis=0)),
    }
