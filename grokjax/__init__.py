"""grokjax: grokking as computational glass relaxation, in JAX.

Seed ensembles of small networks on modular arithmetic, trained by one jitted,
vmapped function; see README.md.
"""

import os as _os

# XLA:CPU hands reductions and elementwise work to YNNPACK fusions by default; on the
# paper model that makes a training step several times slower (measured with
# benchmarks/ensemble_throughput.py). Keep YNNPACK off unless the user set the flag.
# Takes effect only if the JAX backend has not started yet.
if "xla_cpu_experimental_ynn_fusion_type" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (
        _os.environ.get("XLA_FLAGS", "") + " --xla_cpu_experimental_ynn_fusion_type="
    ).strip()

from grokjax.baselines import (  # noqa: E402
    grokfast_ema,
    grokfast_ma,
    langevin_noise,
    orthogonal_gradient,
    stablemax_cross_entropy,
)
from grokjax.blend import blend, paper_weight, ramp_weight  # noqa: E402
from grokjax.config import Config, Hparams  # noqa: E402
from grokjax.data import Dataset, make  # noqa: E402
from grokjax.errors import ConfigError  # noqa: E402
from grokjax.experiment import RunResult, member_hparams, member_keys, run_ensemble  # noqa: E402
from grokjax.landscape import LandscapeConfig, run_landscape  # noqa: E402
from grokjax.models import Model, count_params, make_model  # noqa: E402
from grokjax.optim import make_optimizer, project_to_global_norm, warmup  # noqa: E402
from grokjax.presets import PRESETS, get_preset  # noqa: E402
from grokjax.summary import ensemble_summary  # noqa: E402
from grokjax.survival import kaplan_meier  # noqa: E402
from grokjax.sweep import run_sweep  # noqa: E402
from grokjax.tasks import TASKS  # noqa: E402
from grokjax.train import Trainer, TrainState, make_train  # noqa: E402
from grokjax.wand import WandState, scale_by_wand, wand  # noqa: E402
from grokjax.wlmd import make_sampler  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "TASKS",
    "Config",
    "ConfigError",
    "Dataset",
    "Hparams",
    "LandscapeConfig",
    "Model",
    "RunResult",
    "TrainState",
    "Trainer",
    "blend",
    "count_params",
    "ensemble_summary",
    "get_preset",
    "grokfast_ema",
    "grokfast_ma",
    "kaplan_meier",
    "langevin_noise",
    "orthogonal_gradient",
    "run_sweep",
    "stablemax_cross_entropy",
    "make",
    "make_model",
    "make_optimizer",
    "make_sampler",
    "make_train",
    "member_hparams",
    "member_keys",
    "paper_weight",
    "project_to_global_norm",
    "ramp_weight",
    "run_ensemble",
    "run_landscape",
    "WandState",
    "scale_by_wand",
    "wand",
    "warmup",
]
