"""XLA settings grokjax recommends on CPU: opt-in, never applied by `import grokjax`.

XLA:CPU hands reductions and elementwise work to YNNPACK fusions by default; on the
paper model that makes a training step several times slower (measured with
benchmarks/ensemble_throughput.py). `use_recommended_cpu_flags()` turns them off by
adding `--xla_cpu_experimental_ynn_fusion_type=` to `XLA_FLAGS`, unless that flag is
already set. The `grokjax` command and the benchmarks call it first thing; in your own
program call it before JAX runs its first computation (XLA reads the variable once,
when the backend starts), or set the flag yourself. It changes nothing on GPU or TPU.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

RECOMMENDED_CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)


def use_recommended_cpu_flags(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Add each of `RECOMMENDED_CPU_FLAGS` to `XLA_FLAGS` whose name the user has not set.

    Returns the flags added (empty when the user already set them all).
    """
    environ = os.environ if environ is None else environ
    current = environ.get("XLA_FLAGS", "")
    added = [f for f in RECOMMENDED_CPU_FLAGS if f.split("=", 1)[0] not in current]
    if added:
        environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
    return added
