"""Run configuration: the sections, composed, and the swept numbers.

`Config` is frozen and keyword-only, and fixes shapes and control flow. It is a tree of
sections, each defined beside the code that uses it and validating itself on
construction (a bad value fails before any compute with a message naming the field by
its dotted path and what is allowed):

    Config
      data    DataConfig    the task and its split             grokjax.problem.data
      model   ModelConfig   the network's kind and widths      grokjax.problem.models
      optim   OptimConfig   the optimizer (a table entry)      grokjax.optim
        wand    WandConfig    WanD's entropy estimate and force  grokjax.optim.wand
        blend   BlendConfig   the WanD/AdamW blend's weight      grokjax.optim.blend
        filter  FilterConfig  a gradient filter before it      grokjax.optim.baselines
        anneal  AnnealConfig  schedules of kT, c_f and sigma   grokjax.optim.schedules
      eval    EvalConfig    evaluation cadence and thresholds  grokjax.problem.metrics
      llc     LLCConfig     the LLC's SGLD estimate (opt-in)   grokjax.problem.llc
      loss, steps, batch_size                                  grokjax.train

`Hparams` (`grokjax.hparams`) are the numbers a vmapped sweep may vary per member; they
never change the compiled program. Fields are named by dotted paths
(`optim.wand.force_cap`) everywhere: `--set`, `Config.replace(**{...})`, presets and
errors. The flat names of grokjax 0.1 are read only from old run directories
(`Config.from_dict`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from grokjax.errors import ConfigError
from grokjax.hparams import HPARAM_RULES, Hparams, validate_hparams
from grokjax.optim import OptimConfig
from grokjax.optim.baselines import FilterConfig
from grokjax.optim.blend import BlendConfig
from grokjax.optim.schedules import AnnealConfig
from grokjax.optim.wand import WandConfig
from grokjax.problem.data import DataConfig
from grokjax.problem.llc import LLCConfig
from grokjax.problem.metrics import CLASSIFICATION_LOSSES, EvalConfig
from grokjax.problem.models import ModelConfig
from grokjax.problem.spec import REGRESSION
from grokjax.section import Section, _flatten, _from_json, parse_value, split_assignment

__all__ = [
    "HPARAM_RULES",
    "AnnealConfig",
    "BlendConfig",
    "Config",
    "DataConfig",
    "EvalConfig",
    "FilterConfig",
    "Hparams",
    "LLCConfig",
    "ModelConfig",
    "OptimConfig",
    "Section",
    "WandConfig",
    "apply_overrides",
    "field_paths",
    "field_types",
    "override",
    "parse_value",
    "split_assignment",
    "validate_hparams",
]

LOSSES = tuple(CLASSIFICATION_LOSSES)
MAX_STEPS = 2**31 - 1  # TrainState.step is int32
MAX_EVALUATIONS = 1_000_000  # per member: the histories live in host memory


@dataclasses.dataclass(frozen=True, init=False)
class Config(Section):
    """Everything about a run except the member keys and the swept `Hparams`: the
    sections (see the module docstring), the training `loss` ('cross_entropy';
    'stablemax', Prieto et al.'s, evaluated as softmax; 'hinge'; 'mse', on one-hot
    targets or a regression's; `grokjax.problem.metrics`), `steps` (optimizer updates)
    and `batch_size` (None = full batch; minibatches drawn without replacement per epoch).

    Fields are named by dotted paths: `Config(**{"data.modulus": 11, "steps": 20})`
    (or `Config(data=DataConfig(modulus=11), steps=20)`, whole sections).
    """

    data: DataConfig
    model: ModelConfig
    optim: OptimConfig
    eval: EvalConfig
    llc: LLCConfig
    loss: str
    steps: int
    batch_size: int | None

    def __init__(
        self,
        *,
        data: DataConfig = DataConfig(),
        model: ModelConfig = ModelConfig(),
        optim: OptimConfig = OptimConfig(),
        eval: EvalConfig = EvalConfig(),  # noqa: A002 (the section's name)
        llc: LLCConfig = LLCConfig(),  # noqa: B008 (frozen, as the sections above)
        loss: str = "cross_entropy",
        steps: int = 10_000,
        batch_size: int | None = None,
        **paths: Any,
    ) -> None:
        given = dict(data=data, model=model, optim=optim, eval=eval, llc=llc)
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
        if spec.kind == REGRESSION and self.loss != "mse":
            self.fail("loss", f"mse, because task {task!r} is a regression")
        n_train = self.data.n_train
        if self.batch_size is not None:
            self.positive_int("batch_size")
            if self.batch_size > n_train:
                self.fail("batch_size", f"None (full batch) or 1..{n_train}")
        if self.llc.batch_size is not None and self.llc.batch_size > n_train:
            self.llc.fail("batch_size", f"None (the full training set) or 1..{n_train}")
        if self.llc.every:
            self.llc.inverse_temperature(n_train)  # B / ln B needs B >= 2
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
            modular = spec.query_last and spec.n_labels
            if not modular or self.model.name not in ("transformer", "mlp"):
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

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Config:
        """The config a config.json records; the flat names of grokjax 0.1 that old run
        directories hold (`LEGACY_FLAT_NAMES`) are read too, and only here."""
        flat = {k for k, v in record.items() if k in LEGACY_FLAT_NAMES and not isinstance(v, dict)}
        legacy = {LEGACY_FLAT_NAMES[k]: _from_json(record[k]) for k in flat}
        nested = {k: v for k, v in record.items() if k not in flat}
        return cls().replace(**_flatten(nested, cls()), **legacy)

    def replace(self, **changes: Any) -> Config:
        """A copy with `changes` (dotted paths or whole sections), validated."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return Config(**{**fields, **changes})


def _group(paths: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{section: {path below it: value}} from dotted paths; unknown names are refused
    with the list of allowed ones."""
    grouped: dict[str, dict[str, Any]] = {}
    for path, value in paths.items():
        section, _, rest = path.partition(".")
        if section not in _SECTIONS or not rest or path not in _LEAVES:
            raise ConfigError(
                f"config field {path!r} is unknown; allowed: {', '.join(field_paths())}"
            )
        grouped.setdefault(section, {})[rest] = value
    return grouped


_SECTIONS = ("data", "model", "optim", "eval", "llc")


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


_LEAVES: dict[str, str] = {}
for _section in _SECTIONS:
    _LEAVES.update(_leaves(Config.__init__.__kwdefaults__[_section], f"{_section}."))
_TOP = {"loss": "str", "steps": "int", "batch_size": "int | None"}


def field_paths() -> list[str]:
    """Every leaf field of `Config` by its dotted path (the top-level ones bare)."""
    return [*_LEAVES, *_TOP]


def field_types() -> dict[str, str]:
    """{dotted path: the field's type as written}."""
    return {**_LEAVES, **_TOP}


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
                f"{', '.join(Hparams._fields)}"
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
    """Apply 'field=value' strings (dotted paths or `Hparams` names) to the
    config and the hparams; errors name the field. Later assignments win."""
    numbers, fields = {}, []
    for item in assignments:
        field, text = split_assignment(item)
        if field in Hparams._fields:
            numbers[field] = parse_value(field, text, "float")
        else:
            fields.append(item)
    return override(cfg, fields), hparams._replace(**numbers)


# The flat field names of grokjax 0.1: read only from the config.json of old run
# directories (`Config.from_dict`), never accepted from code or the command line.
LEGACY_FLAT_NAMES: dict[str, str] = {
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
