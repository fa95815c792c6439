import jax
import numpy as np
import pytest

from grokjax.config import Config
from grokjax.problem.data import make
from grokjax.problem.tasks import TASKS, all_pairs


def _reference(task: str, x: int, y: int, p: int) -> int:
    if task == "x+y":
        return (x + y) % p
    if task == "x-y":
        return (x - y) % p
    if task == "x*y":
        return (x * y) % p
    if task == "x/y":
        return next(z for z in range(p) if (z * y) % p == x)
    if task == "x^2+y":
        return (x**2 + y) % p
    if task == "x^2+y^2":
        return (x**2 + y**2) % p
    return (x**3 + x * y**2 + y) % p


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8])
def test_split_partitions_all_pairs_with_labels_of_the_operation(task, fraction):
    p = 13
    cfg = Config(**{"data.task": task, "data.modulus": p, "data.train_fraction": fraction})
    ds = jax.jit(make, static_argnums=1)(jax.random.key(3), cfg.data)
    inputs = np.concatenate([ds.train_inputs, ds.test_inputs])
    labels = np.concatenate([ds.train_labels, ds.test_labels])
    n_pairs = p * (p - 1) if task == "x/y" else p * p
    assert inputs.shape == (n_pairs, 3)
    assert len(ds.train_inputs) == round(fraction * n_pairs)
    pairs = {(int(x), int(y)) for x, y, _ in inputs}
    expected = {(x, y) for x in range(p) for y in range(p) if task != "x/y" or y != 0}
    assert pairs == expected  # every pair exactly once: a partition
    assert np.all(inputs[:, 2] == p)  # the '=' token
    for (x, y, _), z in zip(inputs, labels, strict=True):
        assert z == _reference(task, int(x), int(y), p)


def test_same_split_key_same_split_other_key_other_split():
    cfg = Config(**{"data.modulus": 11})
    a, b = make(jax.random.key(0), cfg.data), make(jax.random.key(0), cfg.data)
    c = make(jax.random.key(1), cfg.data)
    np.testing.assert_array_equal(a.train_inputs, b.train_inputs)
    assert not np.array_equal(a.train_inputs, c.train_inputs)


def test_label_noise_corrupts_exactly_that_fraction_with_wrong_labels():
    cfg = Config(**{"data.modulus": 17, "data.train_fraction": 0.5, "data.label_noise": 0.2})
    ds = make(jax.random.key(0), cfg.data)
    wrong = np.asarray(ds.train_labels != ds.clean_train_labels)
    assert wrong.sum() == round(0.2 * cfg.data.n_train)
    clean = make(jax.random.key(0), Config(**{"data.modulus": 17, "data.train_fraction": 0.5}).data)
    np.testing.assert_array_equal(ds.test_labels, clean.test_labels)
    np.testing.assert_array_equal(ds.clean_train_labels, clean.train_labels)


def test_all_pairs_division_excludes_zero_divisor():
    pairs, labels = all_pairs("x/y", 7)
    assert (pairs[:, 1] != 0).all()
    np.testing.assert_array_equal(labels * pairs[:, 1] % 7, pairs[:, 0])
