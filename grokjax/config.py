"""Run configuration: a tree of static sections, and the swept numbers.

`Config` is frozen and keyword-only, and fixes shapes and control flow. It is a tree of
sections, each validating itself on construction (a bad value fails before any compute
with a message naming the field by its dotted path and what is allowed), and each given
only to the code that uses it:

    Config
      data    DataConfig    the task and its split             -> grokjax.problem.data
      model   ModelConfig   the network's kind and widths      -> grokjax.problem.models
      optim   OptimConfig   the optimizer                      -> grokjax.optim
        wand    WandConfig    WanD's entropy estimate and force  -> grokjax.optim.wand
        blend   BlendConfig   the WanD/AdamW blend's weight      -> grokjax.optim.blend
        filter  FilterConfig  a gradient filter before it      -> grokjax.optim.baselines
        anneal  AnnealConfig  schedules of kT, c_f and sigma   -> grokjax.optim.schedules
      eval    EvalConfig    evaluation cadence and thresholds  -> grokjax.stats.summary
      loss, steps, batch_size                                  -> grokjax.train

`Hparams` is a NamedTuple of numbers that a vmapped sweep may vary per ensemble member
(learning rate, weight decay, ...); it never changes the compiled program.

Dotted paths (`optim.wand.force_cap`) are the canonical names of fields: in `--set`,
in `Config.replace(**{"optim.wand.force_cap": 1.2e5})` and in error messages. The flat
names of earlier releases (`wand_force_cap`, `modulus`, `optimizer`, ...; `FLAT_NAMES`)
are accepted as aliases wherever a path is, `Config(modulus=11, steps=20)` included,
and run directories that recorded a flat config resume (`Config.from_dict`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple

import numpy as np

from grokjax.errors import ConfigError
from grokjax.problem import data as data_lib
from grokjax.problem.metrics import CLASSIFICATION_LOSSES
from grokjax.problem.models import ACTIVATIONS, BUILTIN_MODELS, known_model
from grokjax.problem.tasks import TASKS, needs_prime

MODELS = BUILTIN_MODELS
OPTIMIZERS = ("adamw", "adam", "sgd", "sgld", "wand", "wand-adamw")
GRADIENT_FILTERS = ("none", "grokfast-ema", "grokfast-ma", "orthogonal")
LOSSES = tuple(CLASSIFICATION_LOSSES)
WAND_FORCES = ("entropy", "loss")
BLEND_SIGNALS = ("train_loss", "train_accuracy")
ANNEAL_SHAPES = ("constant", "exponential", "cosine", "linear")
ANNEAL_TRIGGERS = ("step", "train_accuracy", "train_loss")
PARAMETER_NOISES = ("none", "gaussian")
MAX_STEPS = 2**31 - 1  # TrainState.step is int32
MAX_EVALUATIONS = 1_000_000  # per member: the histories live in host memory


class Hparams(NamedTuple):
    """Numbers a vmapped sweep may vary per member (scalars or arrays with a leading axis).

    `temperature` (kT) is WanD's and SGLD's; `friction` (c_f) is WanD's; other
    optimizers ignore them. WanD ignores `weight_decay` (it has none, as in the paper).
    `init_scale` multiplies every initial parameter (Liu et al. 2022's alpha; 1 = the
    model's own initialisation). `noise_scale` is sigma of the plain parameter noise
    (`optim.noise='gaussian'`).

    The schedules of `optim.anneal` (`grokjax.optim.schedules`) take a knob from its value
    above to `temperature_final`, `friction_final` or `noise_final`, over `anneal_steps`
    (the time constant of the exponential shape) from `anneal_begin` steps after their
    clock starts: at step 0, or when the trigger fires, which is when the training-side
    signal has been past `trigger_level` for `trigger_steps` consecutive updates.
    """

    learning_rate: Any = 1e-3
    weight_decay: Any = 1.0
    temperature: Any = 0.5
    friction: Any = 0.5
    init_scale: Any = 1.0
    noise_scale: Any = 0.0
    temperature_final: Any = 0.0
    friction_final: Any = 0.5
    noise_final: Any = 0.0
    anneal_steps: Any = 1000.0
    anneal_begin: Any = 0.0
    trigger_level: Any = 0.99
    trigger_steps: Any = 100.0

    def axes(self) -> Hparams:
        """vmap `in_axes` for these numbers: 0 for a field with one value per member, else None.

        Example: `jax.vmap(train, in_axes=(None, grid.axes()))(key, grid)`.
        """
        return Hparams(*(0 if np.ndim(v) else None for v in self))


HPARAM_RULES = {
    "learning_rate": (lambda v: v > 0, "positive"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "temperature": (lambda v: v >= 0, ">= 0"),
    "friction": (lambda v: (v > 0) & (v <= 1), "in (0, 1]"),
    "init_scale": (lambda v: v > 0, "positive"),
    "noise_scale": (lambda v: v >= 0, ">= 0"),
    "temperature_final": (lambda v: v >= 0, ">= 0"),
    "friction_final": (lambda v: (v > 0) & (v <= 1), "in (0, 1]"),
    "noise_final": (lambda v: v >= 0, ">= 0"),
    "anneal_steps": (lambda v: v > 0, "a positive number of steps"),
    "anneal_begin": (lambda v: v >= 0, "a number of steps >= 0"),
    "trigger_level": (lambda v: v == v, "a level of the trigger's signal"),
    "trigger_steps": (lambda v: v >= 1, "a number of updates >= 1"),
}


def validate_hparams(hparams: Hparams) -> None:
    """Clear errors for swept numbers outside their range (any shape), before any compute."""
    for name, (ok, allowed) in HPARAM_RULES.items():
        value = getattr(hparams, name)
        array = np.asarray(value, np.float64)
        if not bool(np.all(np.isfinite(array) & ok(array))):
            raise ConfigError(f"{name}={value!r} is not allowed: a finite number, {allowed}")


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


class Section:
    """Behaviour shared by every config section: named errors, checks, replace, dicts.

    A section is a frozen keyword-only dataclass with a `PATH` (its dotted place in
    `Config`); fields whose value is a `Section` are sub-sections.
    """

    PATH: ClassVar[str] = ""
    UNBOUNDED: ClassVar[tuple[str, ...]] = ()  # number fields where inf means "no bound"

    def path_of(self, field: str) -> str:
        """The dotted path of `field`."""
        return f"{self.PATH}.{field}" if self.PATH else field

    def fail(self, field: str, allowed: str, value: Any = dataclasses.MISSING) -> None:
        """Raise the one-line error for `field`: its path, value, flat name and what is allowed."""
        value = getattr(self, field) if value is dataclasses.MISSING else value
        path = self.path_of(field)
        alias = _ALIAS_OF.get(path)
        also = f" (flat name {alias})" if alias and alias != field else ""
        raise ConfigError(f"{path}={value!r}{also} is not allowed: {allowed}")

    def check_finite(self) -> None:
        """Refuse NaN in any number field, and inf except in `UNBOUNDED` fields."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                continue
            unbounded = f.name in self.UNBOUNDED
            if math.isnan(value) or (math.isinf(value) and not unbounded):
                self.fail(f.name, "a number or inf (no bound)" if unbounded else "a finite number")

    def positive_int(self, *fields: str, minimum: int = 1) -> None:
        for field in fields:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                self.fail(field, "a positive integer" if minimum else "a non-negative integer")

    def one_of(self, field: str, allowed: tuple[str, ...]) -> None:
        if getattr(self, field) not in allowed:
            self.fail(field, f"one of {', '.join(allowed)}")

    def in_range(self, field: str, lo: float, hi: float, text: str, *, hi_open=True) -> None:
        value = getattr(self, field)
        inside = lo <= value < hi if hi_open else lo < value <= hi
        if not inside:
            self.fail(field, text)

    def replace(self, **changes: Any):
        """A copy with `changes`: field names, dotted paths below this section, or the
        flat aliases (on `Config`)."""
        return _assign(self, changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-like values (tuples as lists), sub-sections as nested dicts."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Section):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, record: dict[str, Any]):
        """The section a `to_dict` (or a JSON copy of one) describes; fields it lacks
        take their defaults. On `Config`, a flat record of an earlier release works too."""
        return cls().replace(**_flatten(record, cls()))


def _flatten(record: dict[str, Any], section: Section, prefix: str = "") -> dict[str, Any]:
    """{dotted path: value} of a nested record, read against `section`'s sub-sections."""
    out = {}
    subsections = {
        f.name for f in dataclasses.fields(section) if isinstance(getattr(section, f.name), Section)
    }
    for key, value in record.items():
        if key in subsections and isinstance(value, dict):
            out.update(_flatten(value, getattr(section, key), f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = _from_json(value)
    return out


def _from_json(value: Any) -> Any:
    """Undo `checkpoint.json_safe` for config values: "inf"/"-inf" back to floats."""
    if value in ("inf", "-inf"):
        return float(value)
    return tuple(value) if isinstance(value, list) else value


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
        object.__setattr__(self, "task", data_lib.canonical(self.task))
        if self.task in TASKS:
            p = self.modulus
            if isinstance(p, bool) or not isinstance(p, int) or p < 2:
                self.fail("modulus", "an integer >= 2")
            if needs_prime(self.task) and not _is_prime(p):
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
        if self.label_noise and spec.kind == data_lib.REGRESSION:
            self.fail("label_noise", f"0, because task {self.task!r} is a regression")

    @property
    def spec(self) -> data_lib.Spec:
        """What the task's examples look like (`grokjax.problem.data.Spec`)."""
        return data_lib.spec_of(self.task, self)

    @property
    def n_examples(self) -> int | None:
        """Examples in the task's pool (None for a drawn task)."""
        return self.spec.n_examples

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
        return f"{self.task} mod {self.modulus}" if self.task in TASKS else self.task

    @property
    def vocab_size(self) -> int | None:
        """Tokens of a token task (modular: 0..p-1 and '=' with id p); None for float inputs."""
        return self.spec.vocab_size


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig(Section):
    """The network (`grokjax.problem.models`): `name` ('transformer', 'mlp', 'cnn', a model
    registered with `grokjax.register_model`, or 'path/to/file.py:attr'), `n_layers`,
    `d_model` (the CNN's channels), `n_heads`, `d_mlp`, `layer_norm` (transformer), and
    `activation` of the float-input MLP and the CNN ('relu', 'tanh', 'gelu')."""

    PATH: ClassVar[str] = "model"

    name: str = "transformer"
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    layer_norm: bool = False
    activation: str = "relu"

    def __post_init__(self) -> None:
        if not known_model(self.name):
            self.fail(
                "name",
                f"one of {', '.join(MODELS)}, a registered model or path/to/file.py:attribute",
            )
        self.one_of("activation", tuple(ACTIVATIONS))
        self.positive_int("n_layers", "d_model", "n_heads", "d_mlp")
        if self.d_model % self.n_heads:
            self.fail("n_heads", f"a divisor of model.d_model={self.d_model}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class WandConfig(Section):
    """WanD's settings besides dt, kT and c_f (those are `Hparams`); defaults are the paper's.

    `bias_strength` (beta) and `loss_floor` (L0) of the initial bias
    S_bias = beta (x - L0)^2 above L0, `deposit` (F) and `t_wl` (t_WL) of the Wang-Landau
    rate, `sigma_bins` (kernel width in bins), the grid over x = ln L (`bin_width`,
    `x_min`, `x_max`), `edge_strength` (the soft wall beyond the grid's edges, per unit
    of x; `grokjax.wanglandau.entropy`), stabilisers `slope_cap` (bound on |dS/dx|) and `force_cap`
    (bound on the entropy force's global norm), inf = the paper's; `force` ('entropy',
    the paper's -dS/dx grad(ln L); 'loss', the ablation -`loss_force_scale` grad(L)).
    """

    PATH: ClassVar[str] = "optim.wand"
    UNBOUNDED: ClassVar[tuple[str, ...]] = ("slope_cap", "force_cap")

    bias_strength: float = 3000.0
    loss_floor: float = -8.0
    deposit: float = 3.0
    t_wl: float = 1000.0
    sigma_bins: float = 10.0
    bin_width: float = 0.02
    x_min: float = -20.0
    x_max: float = 10.0
    edge_strength: float = 100.0
    slope_cap: float = math.inf
    force_cap: float = math.inf
    force: str = "entropy"
    loss_force_scale: float = 13_500.0

    def __post_init__(self) -> None:
        self.check_finite()
        for field in ("bias_strength", "deposit"):
            if getattr(self, field) < 0:
                self.fail(field, "a number >= 0")
        for field, what in (
            ("t_wl", "a positive number of steps"),
            ("sigma_bins", "a positive number of bins"),
            ("bin_width", "a positive width"),
            ("edge_strength", "a positive number"),
            ("slope_cap", "a positive number or inf"),
            ("force_cap", "a positive number or inf"),
            ("loss_force_scale", "a positive number"),
        ):
            if not getattr(self, field) > 0:
                self.fail(field, what)
        if not self.x_max - self.x_min >= 4 * self.bin_width:
            self.fail("x_max", "at least 4 bins above optim.wand.x_min")
        self.one_of("force", WAND_FORCES)

    @property
    def n_bins(self) -> int:
        return int(round((self.x_max - self.x_min) / self.bin_width))


@dataclasses.dataclass(frozen=True, kw_only=True)
class BlendConfig(Section):
    """The blend alpha WanD + (1 - alpha) AdamW (`grokjax.optim.blend`): alpha read from a
    training-side `signal` ('train_loss': ln L of the batch; 'train_accuracy'), smoothed
    by an EMA of decay `smoothing`, and ramped linearly from 0 at `low` to 1 at `high`
    (for accuracy, low > high hands over to AdamW as accuracy rises)."""

    PATH: ClassVar[str] = "optim.blend"

    signal: str = "train_loss"
    low: float = -3.0
    high: float = 0.0
    smoothing: float = 0.9

    def __post_init__(self) -> None:
        self.check_finite()
        self.one_of("signal", BLEND_SIGNALS)
        if self.low == self.high:
            self.fail("high", f"a number other than optim.blend.low={self.low}")
        self.in_range("smoothing", 0.0, 1.0, "a decay in [0, 1)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FilterConfig(Section):
    """A gradient filter before the optimizer (`grokjax.optim.baselines`): `name` 'none',
    'grokfast-ema' (decay `alpha`, amplification `lamb`), 'grokfast-ma' (`window`,
    `lamb`) or 'orthogonal' (the gradient without its component along the weights);
    `equal_lr` divides a Grokfast output by 1 + lamb (equal effective learning rate)."""

    PATH: ClassVar[str] = "optim.filter"

    name: str = "none"
    alpha: float = 0.98
    lamb: float = 2.0
    window: int = 100
    equal_lr: bool = False

    def __post_init__(self) -> None:
        self.check_finite()
        self.one_of("name", GRADIENT_FILTERS)
        self.in_range("alpha", 0.0, 1.0, "a decay in [0, 1)")
        if self.lamb < 0:
            self.fail("lamb", "a number >= 0")
        self.positive_int("window")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AnnealConfig(Section):
    """Schedules of the noise and friction knobs (`grokjax.optim.schedules`): the shape
    ('constant', 'exponential', 'cosine', 'linear') of `temperature` (WanD's and SGLD's
    kT), `friction` (WanD's c_f) and `noise` (the plain noise's sigma), and what starts
    their clock: `trigger` 'step' (step 0), 'train_accuracy' (the batch accuracy has
    stayed >= `Hparams.trigger_level` for `Hparams.trigger_steps` updates) or
    'train_loss' (ln L_batch <= the level for as long). The numbers are `Hparams`
    (`temperature_final`, `anneal_steps`, ...); no test-side signal can be chosen."""

    PATH: ClassVar[str] = "optim.anneal"

    temperature: str = "constant"
    friction: str = "constant"
    noise: str = "constant"
    trigger: str = "step"

    def __post_init__(self) -> None:
        for field in ("temperature", "friction", "noise"):
            self.one_of(field, ANNEAL_SHAPES)
        self.one_of("trigger", ANNEAL_TRIGGERS)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimConfig(Section):
    """The optimizer (`grokjax.optim`): `name` ('adamw'; 'adam', no weight decay; 'sgd'
    with momentum and coupled weight decay; 'sgld', gradient steps plus Langevin noise
    sqrt(2 lr kT) after the learning-rate scaling; 'wand'; 'wand-adamw', the blend),
    `beta1`, `beta2`, `momentum`, `warmup_steps` (linear warm-up from 0; not WanD's),
    `fixed_norm` (rescale all parameters to this global norm after init and after every
    step, whatever the optimizer; None disables), `noise` ('none'; 'gaussian': the
    plain parameter noise sigma xi after any optimizer, sigma = `Hparams.noise_scale`),
    and the sub-sections."""

    PATH: ClassVar[str] = "optim"

    name: str = "adamw"
    beta1: float = 0.9
    beta2: float = 0.98
    momentum: float = 0.9
    warmup_steps: int = 10
    fixed_norm: float | None = None
    noise: str = "none"
    wand: WandConfig = WandConfig()
    blend: BlendConfig = BlendConfig()
    filter: FilterConfig = FilterConfig()
    anneal: AnnealConfig = AnnealConfig()

    def __post_init__(self) -> None:
        self.check_finite()
        self.one_of("name", OPTIMIZERS)
        self.one_of("noise", PARAMETER_NOISES)
        for field in ("beta1", "beta2", "momentum"):
            self.in_range(field, 0.0, 1.0, "a number in [0, 1)")
        self.positive_int("warmup_steps", minimum=0)
        if self.fixed_norm is not None and not self.fixed_norm > 0:
            self.fail("fixed_norm", "a positive number or None")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalConfig(Section):
    """Evaluation (`grokjax.train`, `grokjax.stats.summary`): `every` (steps between
    evaluations, 0 = none), `log_points` (extra log-spaced evaluation steps),
    `chunk_evals` (evaluations per compiled chunk; checkpoints happen between chunks),
    `memorise_threshold` / `generalise_threshold` (accuracy that marks memorisation and
    generalisation), `smooth_slope` (sigmoid slope of the smoothed accuracy),
    `divergence_loss` (a member whose train loss exceeds it, or whose loss or weight
    norm is not finite, is marked diverged from then on), `waiting_times` (evaluation
    steps t_w whose parameters are kept for the ageing observables, `grokjax.problem.ageing`),
    `regression_threshold` (a regression's example counts as right when its squared
    error is below it; Omnigrok's 1e-3, `grokjax.problem.metrics`), `area_gap` (the
    grokking area is censored while train minus test accuracy at the last evaluation
    exceeds it, `grokjax.stats.logtime`), `progress_frequencies` (0: none; n > 0: record
    the Fourier progress measures of a modular task with n key frequencies at every
    evaluation, `grokjax.problem.progress`)."""

    PATH: ClassVar[str] = "eval"

    every: int = 10
    log_points: int = 0
    chunk_evals: int = 100
    memorise_threshold: float = 0.99
    generalise_threshold: float = 0.99
    smooth_slope: float = 7.0
    divergence_loss: float = 100.0
    waiting_times: tuple[int, ...] = ()
    regression_threshold: float = 1e-3
    area_gap: float = 0.05
    progress_frequencies: int = 0

    def __post_init__(self) -> None:
        self.check_finite()
        self.positive_int("every", "log_points", "progress_frequencies", minimum=0)
        if self.every == 0 and self.log_points == 0:
            self.fail("every", "a positive cadence, unless eval.log_points > 0")
        self.positive_int("chunk_evals")
        for field in ("memorise_threshold", "generalise_threshold"):
            self.in_range(field, 0.0, 1.0, "an accuracy in (0, 1]", hi_open=False)
        if not self.smooth_slope > 0:
            self.fail("smooth_slope", "a positive number")
        if not self.divergence_loss > 0:
            self.fail("divergence_loss", "a positive train loss")
        if not self.regression_threshold > 0:
            self.fail("regression_threshold", "a positive squared error")
        self.in_range("area_gap", 0.0, 1.0, "an accuracy gap in [0, 1)")
        try:
            waiting = tuple(int(t) for t in self.waiting_times)
        except (TypeError, ValueError):
            self.fail("waiting_times", "evaluation steps (integers)")
        object.__setattr__(self, "waiting_times", waiting)

    def steps(self, budget: int) -> np.ndarray:
        """Sorted steps (counted after the update) at which metrics are recorded in a run
        of `budget` updates; step 0 (the initial parameters) and the last are included."""
        steps = {0, budget}
        if self.every:
            steps.update(range(self.every, budget + 1, self.every))
        if self.log_points:
            steps.update(np.unique(np.geomspace(1, budget, self.log_points).round().astype(int)))
        return np.array(sorted(steps), dtype=np.int64)


@dataclasses.dataclass(frozen=True, init=False)
class Config(Section):
    """Everything about a run except the member keys and the swept `Hparams`: the
    sections (see the module docstring), the training `loss` ('cross_entropy';
    'stablemax', Prieto et al.'s, evaluated as softmax; 'hinge'; 'mse', on one-hot
    targets or a regression's; `grokjax.problem.metrics`), `steps` (optimizer updates)
    and `batch_size` (None = full batch; minibatches drawn without replacement per epoch).

    Built from sections, dotted paths or flat aliases:
    `Config(data=DataConfig(modulus=11), steps=20)`, `Config(**{"data.modulus": 11})`
    and `Config(modulus=11, steps=20)` are the same config.
    """

    data: DataConfig
    model: ModelConfig
    optim: OptimConfig
    eval: EvalConfig
    loss: str
    steps: int
    batch_size: int | None

    def __init__(
        self,
        *,
        data: DataConfig = DataConfig(),
        model: ModelConfig | str = ModelConfig(),
        optim: OptimConfig = OptimConfig(),
        eval: EvalConfig = EvalConfig(),  # noqa: A002 (the section's name)
        loss: str = "cross_entropy",
        steps: int = 10_000,
        batch_size: int | None = None,
        **paths: Any,
    ) -> None:
        if isinstance(model, str):  # the flat alias model=<name>
            paths = {"model.name": model, **paths}
            model = ModelConfig()
        given = dict(data=data, model=model, optim=optim, eval=eval)
        for section, value in given.items():
            if not isinstance(value, Section):
                raise ConfigError(f"{section}={value!r} is not allowed: a {section} section")
            object.__setattr__(self, section, value)
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "batch_size", batch_size)
        if paths:
            grouped = _group(paths)
            for section, changes in grouped.items():
                object.__setattr__(self, section, getattr(self, section).replace(**changes))
        self.__post_init__()

    def __post_init__(self) -> None:
        self.check_finite()
        self.one_of("loss", LOSSES)
        self.positive_int("steps")
        if self.steps > MAX_STEPS:
            self.fail("steps", f"at most {MAX_STEPS:,} (a member counts its steps in int32)")
        n_evals = (self.steps // self.eval.every if self.eval.every else 0) + self.eval.log_points
        if n_evals > MAX_EVALUATIONS:
            self.eval.fail(
                "every",
                f"a cadence giving at most {MAX_EVALUATIONS:,} evaluations "
                f"(steps={self.steps:,} would record {n_evals:,})",
            )
        spec, task = self.data.spec, self.data.task
        if self.model.name == "transformer" and not spec.tokens:
            self.model.fail(
                "name", f"mlp or cnn: task {task!r} has float inputs, the transformer reads tokens"
            )
        if self.model.name == "cnn" and (spec.tokens or len(spec.input_shape) != 3):
            self.model.fail(
                "name",
                f"transformer or mlp: task {task!r} has no images "
                "[height, width, channels] for the cnn",
            )
        if spec.kind == data_lib.REGRESSION and self.loss != "mse":
            self.fail("loss", f"mse, because task {task!r} is a regression")
        n_train = self.data.n_train
        if self.batch_size is not None:
            self.positive_int("batch_size")
            if self.batch_size > n_train:
                self.fail("batch_size", f"None (full batch) or 1..{n_train}")
        if self.eval.every > self.steps:
            self.eval.fail("every", f"an integer in 0..steps={self.steps}")
        waiting = self.eval.waiting_times
        missing = sorted(set(waiting) - set(self.eval_steps.tolist()))
        if missing or len(set(waiting)) != len(waiting):
            self.eval.fail(
                "waiting_times",
                f"distinct evaluation steps (not evaluated: {missing}; see eval.every)",
            )
        if self.eval.progress_frequencies:
            if not (spec.query_last and spec.n_labels) or self.model.name not in (
                "transformer",
                "mlp",
            ):
                self.eval.fail(
                    "progress_frequencies",
                    f"0: the Fourier progress measures need a modular task and the "
                    f"transformer or mlp (task {task!r}, model {self.model.name!r})",
                )
            n_freq = (spec.n_labels - 1) // 2
            if self.eval.progress_frequencies > n_freq:
                self.eval.fail(
                    "progress_frequencies", f"an integer in 0..{n_freq} (p = {spec.n_labels})"
                )

    @property
    def eval_steps(self) -> np.ndarray:
        """The evaluation steps of this run (`EvalConfig.steps` of `steps`)."""
        return self.eval.steps(self.steps)

    def replace(self, **changes: Any) -> Config:
        """A copy with `changes` (dotted paths, section names or flat aliases), validated."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return Config(**{**fields, **changes})


def _group(paths: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{section: {path below it: value}} from dotted paths or flat aliases; unknown
    names are refused with the list of allowed ones."""
    grouped: dict[str, dict[str, Any]] = {}
    for key, value in paths.items():
        path = FLAT_NAMES.get(key, key)
        section, _, rest = path.partition(".")
        if section not in _SECTIONS or not rest or path not in _LEAVES:
            raise ConfigError(
                f"config field {key!r} is unknown; allowed: {', '.join(field_paths())} "
                f"(or the flat names {', '.join(FLAT_NAMES)})"
            )
        grouped.setdefault(section, {})[rest] = value
    return grouped


def _assign(section: Section, changes: dict[str, Any]) -> Section:
    """`section` with the fields at the dotted paths (below it) of `changes` set, all at
    once, so that the result is validated once, not after each change."""
    names = {f.name for f in dataclasses.fields(section)}
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if head not in names:
            where = f"{section.PATH}." if section.PATH else ""
            allowed = ", ".join(f"{where}{n}" for n in sorted(names))
            raise ConfigError(f"config field {where}{key!r} is unknown; allowed: {allowed}")
        if rest:
            if not isinstance(getattr(section, head), Section):
                raise ConfigError(f"config field {section.path_of(head)} has no field {rest!r}")
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, below in nested.items():
        direct[head] = direct.get(head, getattr(section, head)).replace(**below)
    return dataclasses.replace(section, **direct)


_SECTIONS = ("data", "model", "optim", "eval")


def _leaves(section: Section, prefix: str) -> dict[str, str]:
    """{dotted path: type} of every leaf field under `section`."""
    out = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, Section):
            out.update(_leaves(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = str(f.type)
    return out


# The flat field names of grokjax 0.1, accepted as aliases of the dotted paths.
FLAT_NAMES: dict[str, str] = {
    **{k: f"data.{k}" for k in ("task", "modulus", "train_fraction", "split_seed", "label_noise")},
    "model": "model.name",
    **{k: f"model.{k}" for k in ("n_layers", "d_model", "n_heads", "d_mlp", "layer_norm")},
    "optimizer": "optim.name",
    **{k: f"optim.{k}" for k in ("beta1", "beta2", "momentum", "warmup_steps", "fixed_norm")},
    **{f"wand_{k}": f"optim.wand.{k}" for k in WandConfig().to_dict()},
    **{f"blend_{k}": f"optim.blend.{k}" for k in BlendConfig().to_dict()},
    "gradient_filter": "optim.filter.name",
    **{f"grokfast_{k}": f"optim.filter.{k}" for k in ("alpha", "lamb", "window", "equal_lr")},
    "eval_every": "eval.every",
    "eval_log_points": "eval.log_points",
    **{
        k: f"eval.{k}"
        for k in (
            "chunk_evals",
            "memorise_threshold",
            "generalise_threshold",
            "smooth_slope",
            "divergence_loss",
            "waiting_times",
            "progress_frequencies",
        )
    },
}
_ALIAS_OF = {path: flat for flat, path in FLAT_NAMES.items()}

_LEAVES: dict[str, str] = {}
for _section in _SECTIONS:
    _LEAVES.update(_leaves(Config.__init__.__kwdefaults__[_section], f"{_section}."))
_TOP = {"loss": "str", "steps": "int", "batch_size": "int | None"}


def field_paths() -> list[str]:
    """Every leaf field of `Config` by its dotted path (the top-level ones bare)."""
    return [*_LEAVES, *_TOP]


def field_types() -> dict[str, str]:
    """{dotted path or flat alias: the field's type as written}."""
    types = {**_LEAVES, **_TOP}
    return {**types, **{flat: types[path] for flat, path in FLAT_NAMES.items()}}


def parse_value(field: str, text: str, kind: str) -> Any:
    """`text` as a value of the type `kind` (as `field_types` writes it); errors name
    `field` and what is allowed."""
    lowered = text.strip().lower()
    if "None" in kind and lowered in ("none", "null"):
        return None
    try:
        if kind.startswith("bool"):
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        if kind.startswith("tuple"):
            return tuple(int(part) for part in text.split(",") if part.strip())
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float") or kind == "Any":
            return float(text)
    except ValueError:
        allowed = "true or false" if kind.startswith("bool") else f"a value of type {kind}"
        raise ConfigError(f"{field}={text!r} is not allowed: {allowed}") from None
    return text.strip()


def split_assignment(item: str) -> tuple[str, str]:
    """'field=value' -> (field, value text); a missing '=' is refused."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r} is not allowed: write field=value")
    field, text = item.split("=", 1)
    return field.strip().replace("-", "_"), text


def _kind(section: Section, path: str, shown: str = "") -> str:
    """The type (as written) of the field at dotted `path` below `section`; unknown
    fields are refused with the allowed paths."""
    shown = shown or path
    if isinstance(section, Config):
        kinds = field_types()
        if path in kinds:
            return kinds[path]
        head, _, rest = path.partition(".")
        if head not in _SECTIONS or not rest:
            raise ConfigError(
                f"--set field {shown!r} is unknown; allowed: {', '.join(field_paths())}, "
                f"{', '.join(Hparams._fields)} (or the flat names {', '.join(FLAT_NAMES)})"
            )
    head, _, rest = path.partition(".")
    fields = {f.name: f for f in dataclasses.fields(section)}
    if head in fields and rest and isinstance(getattr(section, head), Section):
        return _kind(getattr(section, head), rest, shown)
    if head in fields and not rest and not isinstance(getattr(section, head), Section):
        return str(fields[head].type)
    allowed = [f"{n}.<field>" if isinstance(getattr(section, n), Section) else n for n in fields]
    raise ConfigError(f"--set field {shown!r} is unknown; allowed: {', '.join(allowed)}")


def override(section: Section, assignments: list[str]) -> Section:
    """`section` (a `Config`, a `LandscapeConfig`, ...) with 'path=value' strings applied,
    each value parsed as its field's type; errors name the field. Later ones win."""
    changes = {}
    for item in assignments:
        field, text = split_assignment(item)
        changes[field] = parse_value(field, text, _kind(section, field))
    return section.replace(**changes)


def apply_overrides(cfg: Config, hparams: Hparams, assignments: list[str]):
    """Apply 'field=value' strings (dotted paths, flat aliases or `Hparams` names) to the
    config and the hparams; errors name the field. Later assignments win."""
    numbers, fields = {}, []
    for item in assignments:
        field, text = split_assignment(item)
        if field in Hparams._fields:
            numbers[field] = parse_value(field, text, "float")
        else:
            fields.append(item)
    return override(cfg, fields), hparams._replace(**numbers)
