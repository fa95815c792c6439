"""grokjax: grokking as computational glass relaxation, in JAX.

Seed ensembles of small networks on modular arithmetic, real images, sparse parity,
a teacher-student regression or the user's own model and data, trained by one jitted,
vmapped function; see README.md.
"""

from grokjax.config import (
    AnnealConfig,
    BlendConfig,
    Config,
    DataConfig,
    EvalConfig,
    FilterConfig,
    Hparams,
    ModelConfig,
    OptimConfig,
    WandConfig,
)
from grokjax.errors import ConfigError
from grokjax.host.experiment import (
    ChunkEvals,
    RunResult,
    member_hparams,
    member_keys,
    run_ensemble,
)
from grokjax.host.measure import run_landscape
from grokjax.host.sweep import run_sweep
from grokjax.landscape import LandscapeConfig
from grokjax.optim import make_optimizer, project_to_global_norm, schedules, warmup
from grokjax.optim.baselines import (
    grokfast_ema,
    grokfast_ma,
    langevin_noise,
    orthogonal_gradient,
    parameter_noise,
)
from grokjax.optim.blend import blend, paper_weight, ramp_weight
from grokjax.optim.wand import WandState, scale_by_wand, wand
from grokjax.presets import PRESETS, get_preset
from grokjax.problem.data import Dataset, Source, Spec, from_arrays, make, register_task
from grokjax.problem.metrics import Objective, make_objective, stablemax_cross_entropy
from grokjax.problem.models import count_params, make_model, make_network, register_model
from grokjax.problem.network import Model, Network
from grokjax.problem.tasks import TASKS
from grokjax.stats.summary import ensemble_summary
from grokjax.stats.survival import kaplan_meier
from grokjax.train import Trainer, TrainState, make_train
from grokjax.wanglandau.wlmd import make_sampler
from grokjax.xla_flags import compiler_options, jit, use_recommended_cpu_flags

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "TASKS",
    "AnnealConfig",
    "ChunkEvals",
    "BlendConfig",
    "Config",
    "DataConfig",
    "EvalConfig",
    "FilterConfig",
    "ModelConfig",
    "OptimConfig",
    "WandConfig",
    "ConfigError",
    "Dataset",
    "Hparams",
    "LandscapeConfig",
    "Model",
    "Network",
    "Objective",
    "Source",
    "Spec",
    "RunResult",
    "TrainState",
    "Trainer",
    "blend",
    "compiler_options",
    "count_params",
    "ensemble_summary",
    "from_arrays",
    "get_preset",
    "grokfast_ema",
    "grokfast_ma",
    "jit",
    "kaplan_meier",
    "langevin_noise",
    "orthogonal_gradient",
    "parameter_noise",
    "schedules",
    "run_sweep",
    "stablemax_cross_entropy",
    "make",
    "make_model",
    "make_network",
    "make_objective",
    "make_optimizer",
    "make_sampler",
    "make_train",
    "member_hparams",
    "member_keys",
    "paper_weight",
    "project_to_global_norm",
    "ramp_weight",
    "register_model",
    "register_task",
    "run_ensemble",
    "run_landscape",
    "WandState",
    "scale_by_wand",
    "wand",
    "use_recommended_cpu_flags",
    "warmup",
]
