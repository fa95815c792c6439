"""Losses and metrics computed on device: losses, accuracies, the smoothed accuracy,
weight norms, and the share of float-saturated softmax outputs on the training set.

Shapes: B examples, C classes (or a regression target's size). Smoothed accuracy
(paper section 3): for each example
    A_i = sigmoid(s * (logit[correct] - max over wrong classes of logit)),   s = 7,
and A = mean_i A_i. Unlike the 0/1 accuracy it is differentiable.

The losses (`Config.loss`; one `Objective` bundles a loss with its accuracies):

* 'cross_entropy': softmax cross-entropy (the paper's);
* 'stablemax': Prieto et al.'s StableMax cross-entropy for training; the recorded
  losses stay softmax cross-entropy;
* 'hinge': the multiclass hinge mean_b max(0, 1 - margin_b) (Crammer and Singer; for two
  classes it is the binary hinge max(0, 1 - y f) of the sparse-parity literature with
  f = logit_1 - logit_0 and y = +-1);
* 'mse': mean squared error over every output, against one-hot targets for a
  classification (Omnigrok's MNIST choice; PyTorch's `MSELoss`) or the real targets
  of a regression.

A regression has no classes, so its accuracy is Omnigrok's: the share of examples whose
squared error e_b = mean_c (f_bc - y_bc)^2 is below tau (`EvalConfig.regression_threshold`,
1e-3). Its smoothed analogue, the landscape's collective variable, is
    A_b = sigmoid(s * (ln tau - ln e_b)),
a sigmoid step in ln e of the same slope s, 1/2 at e = tau; it rises to 1 as the error
falls below tau as the classification one does as the margin grows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from grokjax.section import Section


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


def stablemax_cross_entropy(logits_BxC: jax.Array, labels_B: jax.Array) -> jax.Array:
    """Mean StableMax cross-entropy over the batch.

        s(x) = x + 1 (x >= 0),  1 / (1 - x) (x < 0),   loss = mean_b -log s(x_y) / sum_j s(x_j)

    StableMax is softmax over log s(x), and log s(x) = log1p(x) for x >= 0 and
    -log1p(-x) for x < 0 is finite with finite derivatives for every finite logit, so
    the loss is optax's softmax cross-entropy on log s (the same arithmetic as
    `cross_entropy`): no division, and no NaN in the gradient at
    large logits of either sign. Compute in the logits' dtype (float64 if enabled).

    Example:
        >>> loss = stablemax_cross_entropy(jnp.array([[2.0, 0.0, -1.0]]), jnp.array([0]))
        >>> round(float(loss), 5)  # s = [3, 1, 1/2]: -log(3 / 4.5) = log 1.5
        0.40547

    Reference: Prieto, Barsbey, Mediano, Birdal, "Grokking at the Edge of Numerical
    Stability", arXiv 2501.04697 (2025).
    """
    positive = logits_BxC >= 0
    # Each branch sees only its own side, so the other branch's derivative stays finite.
    log_s_BxC = jnp.where(
        positive,
        jnp.log1p(jnp.where(positive, logits_BxC, 0.0)),
        -jnp.log1p(-jnp.where(positive, 0.0, logits_BxC)),
    )
    return optax.softmax_cross_entropy_with_integer_labels(log_s_BxC, labels_B).mean()


def hinge(logits_BxC: jax.Array, labels_B: jax.Array) -> jax.Array:
    """Mean multiclass hinge max(0, 1 - margin) over the batch (optax's)."""
    return optax.losses.multiclass_hinge_loss(logits_BxC, labels_B).mean()


def one_hot_mse(outputs_BxC: jax.Array, labels_B: jax.Array) -> jax.Array:
    """Mean squared error of every output against the one-hot targets."""
    targets_BxC = jax.nn.one_hot(labels_B, outputs_BxC.shape[-1], dtype=outputs_BxC.dtype)
    return optax.losses.squared_error(outputs_BxC, targets_BxC).mean()


def mse(outputs_BxC: jax.Array, targets_BxC: jax.Array) -> jax.Array:
    """Mean squared error over every output of a regression."""
    return optax.losses.squared_error(outputs_BxC, targets_BxC).mean()


def _errors(outputs_BxC: jax.Array, targets_BxC: jax.Array) -> jax.Array:
    return jnp.mean(jnp.square(outputs_BxC - targets_BxC), axis=-1)


def regression_accuracy(outputs_BxC, targets_BxC, threshold: float) -> jax.Array:
    """Share of examples whose squared error (mean over outputs) is below `threshold`."""
    return (_errors(outputs_BxC, targets_BxC) < threshold).mean()


def smoothed_regression_accuracy(outputs_BxC, targets_BxC, threshold, slope) -> jax.Array:
    """mean sigmoid(slope * (ln threshold - ln error)): the smoothed accuracy's analogue."""
    log_error_B = jnp.log(jnp.maximum(_errors(outputs_BxC, targets_BxC), 1e-30))
    return jax.nn.sigmoid(slope * (jnp.log(threshold) - log_error_B)).mean()


class Objective(NamedTuple):
    """What training minimises and how a run is scored, all `(outputs, labels) -> scalar`:
    `train_loss` (the optimizer's), `loss` (the recorded train and test losses),
    `accuracy`, `smoothed_accuracy` (the landscape's collective variable) and
    `saturated` (`saturated_fraction` of the outputs; NaN for a regression)."""

    train_loss: Callable[[jax.Array, jax.Array], jax.Array]
    loss: Callable[[jax.Array, jax.Array], jax.Array]
    accuracy: Callable[[jax.Array, jax.Array], jax.Array]
    smoothed_accuracy: Callable[[jax.Array, jax.Array], jax.Array]
    saturated: Callable[[jax.Array], jax.Array]


# Training losses of a classification, by `Config.loss` name (a regression takes "mse").
CLASSIFICATION_LOSSES = {
    "cross_entropy": cross_entropy,
    "stablemax": stablemax_cross_entropy,
    "hinge": hinge,
    "mse": one_hot_mse,
}


def make_objective(loss: str, kind: str, eval_cfg) -> Objective:
    """The `Objective` of training loss `loss` ('cross_entropy', 'stablemax', 'hinge',
    'mse') on a task of `kind` ('classification', or 'regression' with 'mse'), with
    `eval_cfg`'s (`EvalConfig`) smoothing slope and regression threshold."""
    smooth_slope, threshold = eval_cfg.smooth_slope, eval_cfg.regression_threshold
    if kind == "regression":
        return Objective(
            mse,
            mse,
            lambda y, t: regression_accuracy(y, t, threshold),
            lambda y, t: smoothed_regression_accuracy(y, t, threshold, smooth_slope),
            lambda y: jnp.float32(jnp.nan),
        )
    train = CLASSIFICATION_LOSSES[loss]
    return Objective(
        train,
        cross_entropy if loss == "stablemax" else train,
        accuracy,
        lambda y, t: smoothed_accuracy(y, t, smooth_slope),
        saturated_fraction,
    )


def weight_norm(params) -> jax.Array:
    """Global L2 norm over every parameter."""
    return optax.tree.norm(params)


class Evaluation(NamedTuple):
    """What a metric is computed from at an evaluation: the parameters, the network's
    outputs on the full train and test sets, their labels and the run's `Objective`."""

    params: Any
    train_out: jax.Array
    test_out: jax.Array
    train_labels: jax.Array
    test_labels: jax.Array
    objective: Objective


class Panel(NamedTuple):
    """A figure of per-evaluation curves against step: its title, y-axis title, log y."""

    title: str
    y_title: str
    log_y: bool = False


class Metric(NamedTuple):
    """One recorded metric: what it is (`doc`), the `panel` it is drawn in (None: not
    drawn against step) with its curve's `label`, and `compute` (an `Evaluation` ->
    scalar) for the metrics `evaluate` computes; the others are recorded by their
    `source` ('ageing', 'progress', 'optimizer', 'llc')."""

    doc: str
    panel: str | None
    label: str
    compute: Callable[[Evaluation], jax.Array] | None = None
    source: str = "evaluate"


# The figures of per-evaluation curves, in page order ("ageing" is drawn against lag).
PANELS: dict[str, Panel] = {
    "accuracy": Panel("accuracy", "accuracy"),
    "loss": Panel("loss", "loss", log_y=True),
    "norms": Panel("weight norms", "global L2 norm"),
    "progress": Panel(
        "Fourier progress measures: restricted and excluded loss", "cross-entropy", log_y=True
    ),
    "fourier": Panel("Fourier sparsity of the embedding and unembedding", "Gini / share"),
    "ageing": Panel("ageing (seed median)", "MSD / overlap"),
    "temperature": Panel("temperature and noise in force", "kT / sigma"),
    "entropy": Panel("WanD's entropy estimate at the walker's ln L_train", "S"),
}


def _train_loss(e: Evaluation) -> jax.Array:
    return e.objective.loss(e.train_out, e.train_labels)


def _on_train(score: str) -> Callable[[Evaluation], jax.Array]:
    return lambda e: getattr(e.objective, score)(e.train_out, e.train_labels)


def _on_test(score: str) -> Callable[[Evaluation], jax.Array]:
    return lambda e: getattr(e.objective, score)(e.test_out, e.test_labels)


# Every metric a run can record, in column order. A new metric computed at evaluation is
# one entry here; its name, parquet column, curve and README line follow from it.
# fmt: off
METRICS: dict[str, Metric] = {
    "train_loss": Metric("loss on the full training set", "loss", "train", _train_loss),
    "test_loss": Metric("loss on the test set", "loss", "test", _on_test("loss")),
    "ln_train_loss": Metric("ln of the training loss (the landscape's and WanD's x)", None,
                            "ln L_train", lambda e: jnp.log(_train_loss(e))),
    "train_acc": Metric("accuracy on the training set", "accuracy", "train", _on_train("accuracy")),
    "test_acc": Metric("accuracy on the test set", "accuracy", "test", _on_test("accuracy")),
    "smoothed_test_acc": Metric("the paper's smoothed test accuracy, mean sigmoid(s * margin)",
                                None, "smoothed test", _on_test("smoothed_accuracy")),
    "weight_norm": Metric("global L2 norm of every parameter", "norms", "weight norm",
                          lambda e: weight_norm(e.params)),
    "last_layer_norm": Metric("L2 norm of the read-out layer (`unembed`)", "norms",
                              "last-layer norm", lambda e: last_layer_norm(e.params)),
    "saturated_fraction": Metric(
        "share of float32-saturated softmax outputs on the training set (NaN: regression)",
        None, "saturated", lambda e: e.objective.saturated(e.train_out)),
    "logit_norm": Metric(
        "mean L2 norm of an example's outputs on the training set (the effective logit scale)",
        "norms", "mean logit norm",
        lambda e: jnp.mean(jnp.linalg.norm(e.train_out.astype(jnp.float32), axis=-1))),
    **{name: Metric(doc, panel, label, source=source) for name, doc, panel, label, source in (
        ("msd@<t_w>", "mean-squared displacement of the parameters since waiting time t_w",
         "ageing", "MSD", "ageing"),
        ("overlap@<t_w>", "cosine overlap of the parameters with those at waiting time t_w",
         "ageing", "overlap", "ageing"),
        ("key_frequency_share", "share of the embedding's Fourier norm in its key frequencies",
         "fourier", "key-frequency share", "progress"),
        ("restricted_loss", "loss of the logits kept to the key frequencies (all data)",
         "progress", "restricted loss (all data)", "progress"),
        ("excluded_loss", "training loss of the logits without the key frequencies",
         "progress", "excluded loss (train)", "progress"),
        ("gini_embed", "Gini coefficient of the embedding's Fourier components",
         "fourier", "Gini, embedding", "progress"),
        ("gini_unembed", "Gini coefficient of the unembedding's Fourier components",
         "fourier", "Gini, unembedding", "progress"),
        ("llc", "local learning coefficient of the training loss by SGLD "
         "(`grokjax.problem.llc`; NaN between its evaluations)", None, "LLC", "llc"),
        ("kT_in_force", "the temperature the next update uses (WanD, the blend, SGLD)",
         "temperature", "kT in force", "optimizer"),
        ("kinetic_kT", "WanD's kinetic temperature, the mean of v^2 over every coordinate",
         "temperature", "kinetic kT <v^2>", "optimizer"),
        ("noise_in_force", "the plain parameter noise's sigma on its schedule",
         "temperature", "noise sigma", "optimizer"),
        ("wand_entropy", "WanD's entropy estimate S at the evaluated ln L_train",
         "entropy", "S(ln L_train)", "optimizer"),
    )},
}
# fmt: on

# The metrics `evaluate` computes for every run, in column order.
METRIC_NAMES = tuple(name for name, m in METRICS.items() if m.compute is not None)


def evaluate(
    apply: Callable,
    params,
    train_inputs,
    train_labels,
    test_inputs,
    test_labels,
    objective: Objective,
) -> dict[str, jax.Array]:
    """Every metric of `METRIC_NAMES` on the full train and test sets, as scalars."""
    e = Evaluation(
        params,
        apply(params, train_inputs),
        apply(params, test_inputs),
        train_labels,
        test_labels,
        objective,
    )
    return {name: METRICS[name].compute(e) for name in METRIC_NAMES}


def path_names(path) -> tuple[str, ...]:
    """A pytree path as names: each dict key, attribute name or index as a string."""
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def leaves_named(params: Any, name: str, required: bool = True) -> list:
    """The leaves with a path component (dict key, attribute name or index) equal to
    `name`, in flattening order; KeyError listing the leaves when none has it and
    `required`."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    matched = []
    for path, leaf in flat:
        if name in path_names(path):
            matched.append(leaf)
    if not matched and required:
        paths = [jax.tree_util.keystr(p) for p, _ in flat]
        raise KeyError(f"no parameter leaf has {name!r} on its path; leaves: {paths}")
    return matched


def last_layer_norm(params: Any, name: str = "unembed") -> jax.Array:
    """L2 norm of the leaves with a key equal to `name` on their path (jointly, if several).

    Matching is per path component (a dict key, attribute name or index), so "embed"
    does not select "unembed"; a flax module named `name` contributes its kernel and
    bias together. When no leaf has the default name and `params` is a dict (a model of the user's
    own), the last entry created (flax keeps creation order: the read-out of a
    sequential model) counts; otherwise KeyError.
    """
    matched = leaves_named(params, name, required=False)
    if not matched and name == "unembed" and isinstance(params, dict) and params:
        matched = jax.tree.leaves(params[list(params)[-1]])
    if not matched:
        leaves_named(params, name)  # raises, listing the leaves
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalConfig(Section):
    """Evaluation (`grokjax.train`, `grokjax.stats.summary`): `every` (steps between
    evaluations, 0 = none), `log_points` (extra log-spaced evaluation steps),
    `chunk_evals` (evaluations per compiled chunk; checkpoints happen between chunks),
    `memorise_threshold` / `generalise_threshold` (accuracy that marks memorisation and
    generalisation), `smooth_slope` (sigmoid slope of the smoothed accuracy),
    `divergence_loss` (a member whose train loss exceeds it, or whose loss or weight
    norm is not finite, is marked diverged from then on), `waiting_times` (evaluation
    steps t_w whose parameters are kept for the ageing observables, `grokjax.problem.ageing`),
    `regression_threshold` (a regression's example counts as right when its squared
    error is below it; Omnigrok's 1e-3, `grokjax.problem.metrics`), `area_gap` (the
    grokking area is censored while train minus test accuracy at the last evaluation
    exceeds it, `grokjax.stats.logtime`), `progress_frequencies` (0: none; n > 0: record
    the Fourier progress measures of a modular task with n key frequencies at every
    evaluation, `grokjax.problem.progress`)."""

    PATH: ClassVar[str] = "eval"

    every: int = 10
    log_points: int = 0
    chunk_evals: int = 100
    memorise_threshold: float = 0.99
    generalise_threshold: float = 0.99
    smooth_slope: float = 7.0
    divergence_loss: float = 100.0
    waiting_times: tuple[int, ...] = ()
    regression_threshold: float = 1e-3
    area_gap: float = 0.05
    progress_frequencies: int = 0

    def __post_init__(self) -> None:
        self.check_finite()
        self.positive_int("every", "log_points", "progress_frequencies", minimum=0)
        if self.every == 0 and self.log_points == 0:
            self.fail("every", "a positive cadence, unless eval.log_points > 0")
        self.positive_int("chunk_evals")
        for field in ("memorise_threshold", "generalise_threshold"):
            self.in_range(field, 0.0, 1.0, "an accuracy in (0, 1]", hi_open=False)
        if not self.smooth_slope > 0:
            self.fail("smooth_slope", "a positive number")
        if not self.divergence_loss > 0:
            self.fail("divergence_loss", "a positive train loss")
        if not self.regression_threshold > 0:
            self.fail("regression_threshold", "a positive squared error")
        self.in_range("area_gap", 0.0, 1.0, "an accuracy gap in [0, 1)")
        try:
            waiting = tuple(int(t) for t in self.waiting_times)
        except (TypeError, ValueError):
            self.fail("waiting_times", "evaluation steps (integers)")
        object.__setattr__(self, "waiting_times", waiting)

    def steps(self, budget: int) -> np.ndarray:
        """Sorted steps (counted after the update) at which metrics are recorded in a run
        of `budget` updates; step 0 (the initial parameters) and the last are included."""
        steps = {0, budget}
        if self.every:
            steps.update(range(self.every, budget + 1, self.every))
        if self.log_points:
            steps.update(np.unique(np.geomspace(1, budget, self.log_points).round().astype(int)))
        return np.array(sorted(steps), dtype=np.int64)
