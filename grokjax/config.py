"""Run configuration: static fields that shape the program, and swept numbers.

`Config` is frozen and keyword-only; it fixes shapes and control flow (modulus,
widths, step counts, evaluation schedule) and is validated in `__post_init__` so a
bad value fails before any compute with a message naming the field and what is
allowed. `Hparams` is a NamedTuple of numbers that a vmapped sweep may vary per
ensemble member (learning rate, weight decay); it never changes the compiled program.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

from grokjax.errors import ConfigError
from grokjax.tasks import TASKS, canonical_task, needs_prime

MODELS = ("transformer", "mlp")
OPTIMIZERS = ("adamw", "adam", "sgd", "sgld", "wand", "wand-adamw")
GRADIENT_FILTERS = ("none", "grokfast-ema", "grokfast-ma", "orthogonal")
LOSSES = ("cross_entropy", "stablemax")
WAND_FORCES = ("entropy", "loss")
BLEND_SIGNALS = ("train_loss", "train_accuracy")
UNBOUNDED_FIELDS = ("wand_slope_cap", "wand_force_cap")  # inf = no cap (the paper's)


class Hparams(NamedTuple):
    """Numbers a vmapped sweep may vary per member (scalars or arrays with a leading axis).

    `temperature` (kT) is WanD's and SGLD's; `friction` (c_f) is WanD's; other
    optimizers ignore them. WanD ignores `weight_decay` (it has none, as in the paper).
    `init_scale` multiplies every initial parameter (Liu et al. 2022's alpha; 1 = the
    model's own initialisation).
    """

    learning_rate: Any = 1e-3
    weight_decay: Any = 1.0
    temperature: Any = 0.5
    friction: Any = 0.5
    init_scale: Any = 1.0

    def axes(self) -> Hparams:
        """vmap `in_axes` for these numbers: 0 for a field with one value per member, else None.

        Example: `jax.vmap(train, in_axes=(None, grid.axes()))(key, grid)`.
        """
        return Hparams(*(0 if np.ndim(v) else None for v in self))


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def _fail(field: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{field}={value!r} is not allowed: {allowed}")


def check_finite(obj: Any, allow_inf: tuple[str, ...] = ()) -> None:
    """Refuse NaN in any number field of the dataclass `obj`, and infinities except in
    the fields `allow_inf` (where inf means "no bound"), naming the field."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            continue
        if math.isnan(value) or (math.isinf(value) and f.name not in allow_inf):
            allowed = "a number or inf (no bound)" if f.name in allow_inf else "a finite number"
            _fail(f.name, value, allowed)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Everything about a run except the member keys and the swept `Hparams`.

    Data: `task` (see `grokjax.tasks.TASKS`), `modulus` p, `train_fraction` in (0, 1),
    `split_seed` (the data split; independent of the initialisation seed; None draws a
    split per member from its own key), `label_noise` (fraction of training labels
    replaced by a wrong label).
    Model: `model` ('transformer' or 'mlp'), `n_layers`, `d_model`, `n_heads`, `d_mlp`,
    `layer_norm`.
    Optimisation: `optimizer` ('adamw', 'adam' (no weight decay), 'sgd' with momentum
    and coupled weight decay, 'sgld' (plain gradient steps, coupled weight decay, and
    Langevin noise sqrt(2 lr kT) xi added after the learning-rate scaling), 'wand', and
    'wand-adamw', the blend of the two; see below), `beta1`,
    `beta2`, `momentum`, `warmup_steps` (linear warm-up from 0; not used by WanD),
    `fixed_norm` (rescale all parameters to this global norm after init and after every
    step; None disables), `steps`, `batch_size` (None = full batch).
    WanD (`grokjax.wand`): `wand_bias_strength` (beta) and `wand_loss_floor` (L0) of the
    bias, `wand_deposit` (F) and `wand_t_wl` (t_WL) of the Wang-Landau rate,
    `wand_sigma_bins` (kernel width in bins), and the grid over ln L (`wand_bin_width`,
    `wand_x_min`, `wand_x_max`); stabilisers `wand_slope_cap` (bound on |dS/dx|) and
    `wand_force_cap` (bound on the entropy force's global norm), inf = the paper's;
    `wand_force` ('entropy', the paper's -dS/dx grad(ln L); 'loss', the ablation
    -`wand_loss_force_scale` grad(L): the same thermostat and noise without the entropy
    force).
    Blend ('wand-adamw', `grokjax.blend`): alpha WanD + (1 - alpha) AdamW, alpha read
    from a training-side `blend_signal` ('train_loss': ln L of the batch;
    'train_accuracy'), smoothed by an EMA of decay `blend_smoothing`, and ramped
    linearly from 0 at `blend_low` to 1 at `blend_high` (for accuracy, low > high hands
    over to AdamW as accuracy rises).
    Baselines (`grokjax.baselines`): `gradient_filter` before any optimizer ('none';
    'grokfast-ema' with `grokfast_alpha` and `grokfast_lamb`; 'grokfast-ma' with
    `grokfast_window` and `grokfast_lamb`; 'orthogonal', the gradient with its component
    along the weights removed), `grokfast_equal_lr` (divide the filtered gradient by
    1 + lamb, so a constant gradient takes the step it takes without the filter: the
    comparison at equal effective learning rate); `loss` ('cross_entropy' or
    'stablemax', the training loss; evaluation metrics stay the softmax ones).
    Evaluation: `eval_every` (steps between evaluations, 0 = none), `eval_log_points`
    (extra log-spaced evaluation steps, 0 = none), `chunk_evals` (evaluations per
    compiled chunk; checkpoints and progress updates happen between chunks),
    `memorise_threshold` / `generalise_threshold` (accuracy that marks memorisation
    and generalisation), `smooth_slope` (sigmoid slope of the smoothed accuracy),
    `divergence_loss` (a member whose train loss exceeds it, or whose loss or weight
    norm is not finite, is marked diverged from that evaluation on; `grokjax.summary`),
    `waiting_times` (evaluation steps t_w at which the parameters are kept, so every
    later evaluation records the mean-squared displacement and overlap since each t_w;
    `grokjax.ageing`).
    """

    task: str = "x+y"
    modulus: int = 67
    train_fraction: float = 0.5
    split_seed: int | None = 0
    label_noise: float = 0.0

    model: str = "transformer"
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    layer_norm: bool = False

    optimizer: str = "adamw"
    beta1: float = 0.9
    beta2: float = 0.98
    momentum: float = 0.9
    warmup_steps: int = 10
    fixed_norm: float | None = None
    wand_bias_strength: float = 3000.0
    wand_loss_floor: float = -8.0
    wand_deposit: float = 3.0
    wand_t_wl: float = 1000.0
    wand_sigma_bins: float = 10.0
    wand_bin_width: float = 0.02
    wand_x_min: float = -20.0
    wand_x_max: float = 10.0
    wand_slope_cap: float = math.inf
    wand_force_cap: float = math.inf
    wand_force: str = "entropy"
    wand_loss_force_scale: float = 13_500.0
    blend_signal: str = "train_loss"
    blend_low: float = -3.0
    blend_high: float = 0.0
    blend_smoothing: float = 0.9
    gradient_filter: str = "none"
    grokfast_alpha: float = 0.98
    grokfast_lamb: float = 2.0
    grokfast_window: int = 100
    grokfast_equal_lr: bool = False
    loss: str = "cross_entropy"

    steps: int = 10_000
    batch_size: int | None = None

    eval_every: int = 10
    eval_log_points: int = 0
    chunk_evals: int = 100
    memorise_threshold: float = 0.99
    generalise_threshold: float = 0.99
    smooth_slope: float = 7.0
    divergence_loss: float = 100.0
    waiting_times: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_finite(self, allow_inf=UNBOUNDED_FIELDS)
        object.__setattr__(self, "task", canonical_task(self.task))
        p = self.modulus
        if not isinstance(p, int) or p < 2:
            _fail("modulus", p, "an integer >= 2")
        if needs_prime(self.task) and not _is_prime(p):
            _fail("modulus", p, f"a prime, because task {self.task!r} divides modulo p")
        if not 0.0 < self.train_fraction < 1.0:
            _fail("train_fraction", self.train_fraction, "a fraction strictly between 0 and 1")
        n_train = self.n_train
        if n_train < 1 or n_train >= self.n_examples:
            _fail(
                "train_fraction",
                self.train_fraction,
                f"a fraction leaving at least one training and one test example "
                f"of the {self.n_examples} pairs",
            )
        if self.split_seed is not None and (
            not isinstance(self.split_seed, int) or self.split_seed < 0
        ):
            _fail("split_seed", self.split_seed, "a non-negative integer or None")
        if not 0.0 <= self.label_noise < 1.0:
            _fail("label_noise", self.label_noise, "a fraction in [0, 1)")
        if self.model not in MODELS:
            _fail("model", self.model, f"one of {', '.join(MODELS)}")
        for name in ("n_layers", "d_model", "n_heads", "d_mlp"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                _fail(name, value, "a positive integer")
        if self.d_model % self.n_heads:
            _fail("n_heads", self.n_heads, f"a divisor of d_model={self.d_model}")
        if self.optimizer not in OPTIMIZERS:
            _fail("optimizer", self.optimizer, f"one of {', '.join(OPTIMIZERS)}")
        for name in ("beta1", "beta2", "momentum"):
            if not 0.0 <= getattr(self, name) < 1.0:
                _fail(name, getattr(self, name), "a number in [0, 1)")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            _fail("warmup_steps", self.warmup_steps, "a non-negative integer")
        if self.fixed_norm is not None and not self.fixed_norm > 0:
            _fail("fixed_norm", self.fixed_norm, "a positive number or None")
        if self.wand_bias_strength < 0:
            _fail("wand_bias_strength", self.wand_bias_strength, "a number >= 0")
        if self.wand_deposit < 0:
            _fail("wand_deposit", self.wand_deposit, "a number >= 0")
        if not self.wand_t_wl > 0:
            _fail("wand_t_wl", self.wand_t_wl, "a positive number of steps")
        if not self.wand_sigma_bins > 0:
            _fail("wand_sigma_bins", self.wand_sigma_bins, "a positive number of bins")
        if not self.wand_bin_width > 0:
            _fail("wand_bin_width", self.wand_bin_width, "a positive width")
        if not self.wand_x_max - self.wand_x_min >= 4 * self.wand_bin_width:
            _fail("wand_x_max", self.wand_x_max, "at least 4 bins above wand_x_min")
        for name in ("wand_slope_cap", "wand_force_cap"):
            if not getattr(self, name) > 0:
                _fail(name, getattr(self, name), "a positive number or inf")
        if self.wand_force not in WAND_FORCES:
            _fail("wand_force", self.wand_force, f"one of {', '.join(WAND_FORCES)}")
        if not self.wand_loss_force_scale > 0:
            _fail("wand_loss_force_scale", self.wand_loss_force_scale, "a positive number")
        if self.blend_signal not in BLEND_SIGNALS:
            _fail("blend_signal", self.blend_signal, f"one of {', '.join(BLEND_SIGNALS)}")
        if self.blend_low == self.blend_high:
            _fail("blend_high", self.blend_high, f"a number other than blend_low={self.blend_low}")
        if not 0.0 <= self.blend_smoothing < 1.0:
            _fail("blend_smoothing", self.blend_smoothing, "a decay in [0, 1)")
        if self.gradient_filter not in GRADIENT_FILTERS:
            _fail("gradient_filter", self.gradient_filter, f"one of {', '.join(GRADIENT_FILTERS)}")
        if not 0.0 <= self.grokfast_alpha < 1.0:
            _fail("grokfast_alpha", self.grokfast_alpha, "a decay in [0, 1)")
        if self.grokfast_lamb < 0:
            _fail("grokfast_lamb", self.grokfast_lamb, "a number >= 0")
        if not isinstance(self.grokfast_window, int) or self.grokfast_window < 1:
            _fail("grokfast_window", self.grokfast_window, "a positive integer")
        if self.loss not in LOSSES:
            _fail("loss", self.loss, f"one of {', '.join(LOSSES)}")
        if not isinstance(self.steps, int) or self.steps < 1:
            _fail("steps", self.steps, "a positive integer")
        if self.batch_size is not None and not 1 <= self.batch_size <= n_train:
            _fail("batch_size", self.batch_size, f"None (full batch) or 1..{n_train}")
        if not isinstance(self.eval_every, int) or not 0 <= self.eval_every <= self.steps:
            _fail("eval_every", self.eval_every, f"an integer in 0..steps={self.steps}")
        if not isinstance(self.eval_log_points, int) or self.eval_log_points < 0:
            _fail("eval_log_points", self.eval_log_points, "a non-negative integer")
        if self.eval_every == 0 and self.eval_log_points == 0:
            _fail("eval_every", 0, "a positive cadence, unless eval_log_points > 0")
        if not isinstance(self.chunk_evals, int) or self.chunk_evals < 1:
            _fail("chunk_evals", self.chunk_evals, "a positive integer")
        for name in ("memorise_threshold", "generalise_threshold"):
            if not 0.0 < getattr(self, name) <= 1.0:
                _fail(name, getattr(self, name), "an accuracy in (0, 1]")
        if not self.smooth_slope > 0:
            _fail("smooth_slope", self.smooth_slope, "a positive number")
        if not self.divergence_loss > 0:
            _fail("divergence_loss", self.divergence_loss, "a positive train loss")
        waiting = tuple(int(t) for t in self.waiting_times)
        object.__setattr__(self, "waiting_times", waiting)
        missing = sorted(set(waiting) - set(self.eval_steps.tolist()))
        if missing or len(set(waiting)) != len(waiting):
            _fail(
                "waiting_times",
                self.waiting_times,
                f"distinct evaluation steps (not evaluated: {missing}; see eval_every)",
            )

    @property
    def n_examples(self) -> int:
        """Number of (x, y) pairs the task defines."""
        return TASKS[self.task].n_pairs(self.modulus)

    @property
    def n_train(self) -> int:
        return int(round(self.train_fraction * self.n_examples))

    @property
    def n_test(self) -> int:
        return self.n_examples - self.n_train

    @property
    def vocab_size(self) -> int:
        """Tokens 0..p-1 and '=' (id p)."""
        return self.modulus + 1

    @property
    def eval_steps(self) -> np.ndarray:
        """Sorted steps (counted after the update) at which metrics are recorded.

        Step 0 (the initial parameters) and the final step are always included.
        """
        steps = {0, self.steps}
        if self.eval_every:
            steps.update(range(self.eval_every, self.steps + 1, self.eval_every))
        if self.eval_log_points:
            steps.update(
                np.unique(np.geomspace(1, self.steps, self.eval_log_points).round().astype(int))
            )
        return np.array(sorted(steps), dtype=np.int64)

    def replace(self, **changes: Any) -> Config:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(
                f"unknown config field(s) {sorted(unknown)}; allowed: {sorted(field_names())}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["waiting_times"] = list(self.waiting_times)
        return out


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Config)]


def field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(Config)}
