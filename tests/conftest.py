"""Shared test settings: the XLA flags the `grokjax` command uses, and strict rank
promotion, so silent broadcasting bugs fail loudly.

The tests run grokjax as its command does, with `use_recommended_cpu_flags()` applied
before JAX starts (importing grokjax no longer does that; tests/test_imports.py checks).
Dtype promotion stays "standard": optax itself raises `beta ** count` (float ** int32)
under "strict". Compiled programs are kept in a persistent compilation cache for the
session (a temporary directory, removed at exit), so the many tests that build the
same small program compile it once; a program's cache key is its HLO and flags, so
tests that compare two differently compiled programs still get two.
"""

from grokjax.xla_flags import use_recommended_cpu_flags

use_recommended_cpu_flags()

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

_CACHE = tempfile.mkdtemp(prefix="grokjax-tests-xla-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture
def tiny_cfg():
    """A config small enough to train in a second or two on a CPU."""
    from grokjax.config import Config

    return Config(
        steps=30,
        **{
            "data.modulus": 11,
            "model.d_model": 32,
            "model.n_heads": 4,
            "model.d_mlp": 64,
            "eval.every": 10,
        },
    )
