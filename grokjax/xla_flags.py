"""XLA settings grokjax recommends on CPU, passed per compilation: nothing process-wide.

XLA:CPU hands reductions and elementwise work to YNNPACK fusions by default; on the
paper model that makes a training step several times slower (measured with
benchmarks/ensemble_throughput.py and benchmarks/api_speed.py). Every place grokjax
compiles passes `compiler_options()` to `jax.jit`, which turns them off for that
compilation alone. Your own programs get the same speed the same way:

    >>> import grokjax as gj
    >>> fast = gj.jit(jax.vmap(trainer.train, in_axes=(0, None)))  # doctest: +SKIP

`gj.jit` is `jax.jit` with these options added (any `compiler_options` you give win).
A flag you set yourself in `XLA_FLAGS` is never overridden. On GPU and TPU the options
are empty. `use_recommended_cpu_flags()` is the process-wide alternative for code that
calls `jax.jit` directly: it adds the flags to `XLA_FLAGS`, which XLA reads once, when
its backend starts; `import grokjax` never calls it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

RECOMMENDED_CPU_OPTIONS: dict[str, str] = {"xla_cpu_experimental_ynn_fusion_type": ""}
RECOMMENDED_CPU_FLAGS = tuple(f"--{k}={v}" for k, v in RECOMMENDED_CPU_OPTIONS.items())


def compiler_options(
    backend: str | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The options grokjax compiles with on `backend` (default: JAX's default backend):
    `RECOMMENDED_CPU_OPTIONS` on CPU, less any flag the user set in `XLA_FLAGS`; {}
    elsewhere."""
    if backend is None:
        import jax

        backend = jax.default_backend()
    if backend != "cpu":
        return {}
    current = (os.environ if environ is None else environ).get("XLA_FLAGS", "")
    return {k: v for k, v in RECOMMENDED_CPU_OPTIONS.items() if f"--{k}" not in current}


def jit(fun: Callable, **kwargs: Any) -> Callable:
    """`jax.jit(fun, **kwargs)` with grokjax's `compiler_options()` for this compilation
    (options in `kwargs["compiler_options"]` win)."""
    import jax

    options = {**compiler_options(), **(kwargs.pop("compiler_options", None) or {})}
    return jax.jit(fun, compiler_options=options or None, **kwargs)


def use_recommended_cpu_flags(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Add each of `RECOMMENDED_CPU_FLAGS` to `XLA_FLAGS` whose name the user has not set,
    for programs that compile with plain `jax.jit` (call it before JAX's first computation).

    Returns the flags added (empty when the user already set them all).
    """
    environ = os.environ if environ is None else environ
    current = environ.get("XLA_FLAGS", "")
    added = [f for f in RECOMMENDED_CPU_FLAGS if f.split("=", 1)[0] not in current]
    if added:
        environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
    return added
