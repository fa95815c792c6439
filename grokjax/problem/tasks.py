"""Modular arithmetic operations: the labels of every task grokjax trains on."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from grokjax.errors import ConfigError


class Task(NamedTuple):
    """One binary operation modulo p.

    `label(x, y, p)` maps integer arrays to the result in 0..p-1; `nonzero_y` drops the
    pairs with y = 0 (division); `prime` says the operation needs p prime.
    """

    label: Callable[[np.ndarray, np.ndarray, int], np.ndarray]
    nonzero_y: bool = False
    prime: bool = False

    def n_pairs(self, p: int) -> int:
        return p * (p - 1) if self.nonzero_y else p * p


def _divide(x: np.ndarray, y: np.ndarray, p: int) -> np.ndarray:
    inverse = np.array([pow(int(v), -1, p) for v in range(1, p)], dtype=np.int64)
    return x * inverse[y - 1] % p


TASKS: dict[str, Task] = {
    "x+y": Task(lambda x, y, p: (x + y) % p),
    "x-y": Task(lambda x, y, p: (x - y) % p),
    "x*y": Task(lambda x, y, p: (x * y) % p),
    "x/y": Task(_divide, nonzero_y=True, prime=True),
    "x^2+y": Task(lambda x, y, p: (x * x + y) % p),
    "x^2+y^2": Task(lambda x, y, p: (x * x + y * y) % p),
    "x^3+xy^2+y": Task(lambda x, y, p: (x * x * x + x * y * y + y) % p),
}

ALIASES = {
    "add": "x+y",
    "sub": "x-y",
    "mul": "x*y",
    "div": "x/y",
    "square": "x^2+y",
    "sum-squares": "x^2+y^2",
    "cubic": "x^3+xy^2+y",
    "x**2+y": "x^2+y",
    "x**2+y**2": "x^2+y^2",
    "x^3+x*y^2+y": "x^3+xy^2+y",
}


def canonical_task(name: str) -> str:
    """The canonical name of a task given by name or alias; a clear error otherwise."""
    key = str(name).replace(" ", "")
    key = ALIASES.get(key, key)
    if key not in TASKS:
        raise ConfigError(
            f"task={name!r} is not allowed: one of {', '.join(TASKS)} "
            f"(aliases {', '.join(ALIASES)})"
        )
    return key


def needs_prime(name: str) -> bool:
    return TASKS[name].prime


def all_pairs(name: str, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (x, y) pair of the task as int32 arrays [N, 2] and labels [N], in a fixed order."""
    task = TASKS[name]
    x, y = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    x, y = x.ravel().astype(np.int64), y.ravel().astype(np.int64)
    if task.nonzero_y:
        keep = y != 0
        x, y = x[keep], y[keep]
    labels = task.label(x, y, p)
    return np.stack([x, y], axis=1).astype(np.int32), labels.astype(np.int32)
