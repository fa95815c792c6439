"""grokjax: grokking as computational glass relaxation, in JAX.

Seed ensembles of small networks on modular arithmetic, trained by one jitted,
vmapped function; see README.md.
"""

from grokjax.baselines import (
    grokfast_ema,
    grokfast_ma,
    langevin_noise,
    orthogonal_gradient,
    stablemax_cross_entropy,
)
from grokjax.blend import blend, paper_weight, ramp_weight
from grokjax.config import Config, Hparams
from grokjax.data import Dataset, make
from grokjax.errors import ConfigError
from grokjax.experiment import RunResult, member_hparams, member_keys, run_ensemble
from grokjax.landscape import LandscapeConfig
from grokjax.measure import run_landscape
from grokjax.models import Model, count_params, make_model
from grokjax.optim import make_optimizer, project_to_global_norm, warmup
from grokjax.presets import PRESETS, get_preset
from grokjax.summary import ensemble_summary
from grokjax.survival import kaplan_meier
from grokjax.sweep import run_sweep
from grokjax.tasks import TASKS
from grokjax.train import Trainer, TrainState, make_train
from grokjax.wand import WandState, scale_by_wand, wand
from grokjax.wlmd import make_sampler
from grokjax.xla_flags import use_recommended_cpu_flags

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
    "use_recommended_cpu_flags",
    "warmup",
]
