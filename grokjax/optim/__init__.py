"""Optimizers chosen by config: ordinary optax transformations, one table entry each.

`OPTIMIZERS` maps a name (`optim.name`) to an `Optimizer`: what it is, how it is built
from the config and the (possibly traced) `Hparams`, what it records at an evaluation
beside the metrics (its readouts), whether its updates carry noise (the early-warning
indicators read that), and its config section when it has one. Validation,
`make_optimizer`, the readouts, the early-warning list, the reference and the shared
test battery all read the table: a new optimizer is one entry here.

The AdamW baseline matches the paper: betas (0.9, 0.98), a linear warm-up from 0
over the first 10 updates, decoupled weight decay (as PyTorch's AdamW: the decay is
scaled by the learning rate). The fixed-norm mode (Liu et al. 2023; the paper's
norm-30 baseline) rescales all parameters to a fixed global norm after each update;
`project_to_global_norm` is that step as an optax transformation, which the trainer
appends to any optimizer when `OptimConfig.fixed_norm` is set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from grokjax.hparams import Hparams
from grokjax.optim import schedules
from grokjax.optim.baselines import (
    AddedNoiseState,
    FilterConfig,
    grokfast_ema,
    grokfast_ma,
    langevin_noise,
    orthogonal_gradient,
    parameter_noise,
)
from grokjax.optim.blend import BlendConfig, blend, ramp_weight
from grokjax.optim.schedules import AnnealConfig
from grokjax.optim.wand import WandConfig, WandState, wand
from grokjax.problem.metrics import path_names
from grokjax.section import Section
from grokjax.wanglandau.entropy import Grid, entropy_at


def warmup(learning_rate, warmup_steps: int) -> optax.Schedule:
    """Linear ramp from 0 to `learning_rate` over `warmup_steps` updates, then constant
    (no ramp at 0 steps: optax's linear schedule would stay at 0 for ever)."""
    if warmup_steps == 0:
        return optax.constant_schedule(learning_rate)
    return optax.linear_schedule(0.0, learning_rate, warmup_steps)


def project_to_global_norm(norm: float) -> optax.GradientTransformation:
    """Make the update land on the sphere of global norm `norm`.

    new_params = (params + u) * norm / ||params + u||, returned as the update
    new_params - params, so it goes last in an optax chain.
    """

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("project_to_global_norm needs params")
        projected = rescale_to_norm(optax.apply_updates(params, updates), norm)
        return jax.tree.map(lambda n, p: n - p, projected, params), state

    return optax.GradientTransformation(init, update)


def rescale_to_norm(params, norm: float):
    """params scaled so that their global norm equals `norm`."""
    scale = norm / optax.tree.norm(params)
    return jax.tree.map(lambda p: p * scale, params)


def wand_grid(cfg: WandConfig) -> Grid:
    """The ln L grid of WanD's entropy estimate."""
    return Grid(cfg.x_min, cfg.bin_width, cfg.n_bins)


def annealed(shape: str, start, final, hparams: Hparams):
    """A knob's value `start`, or its schedule of `shape` to `final` over
    `hparams.anneal_steps` from `hparams.anneal_begin` (`grokjax.optim.schedules`)."""
    if shape == "constant":
        return start
    return schedules.anneal(shape, start, final, hparams.anneal_steps, hparams.anneal_begin)


def trigger(cfg: AnnealConfig, hparams: Hparams) -> schedules.Trigger | None:
    """What starts the schedules' clock: None (step 0) or the training-side trigger."""
    if cfg.trigger == "step":
        return None
    return schedules.Trigger(cfg.trigger, hparams.trigger_level, hparams.trigger_steps)


def _temperature(cfg: AnnealConfig, hparams: Hparams):
    return annealed(cfg.temperature, hparams.temperature, hparams.temperature_final, hparams)


_WAND_KNOBS = (
    "bias_strength",
    "loss_floor",
    "deposit",
    "t_wl",
    "sigma_bins",
    "slope_cap",
    "force_cap",
    "force",
    "loss_force_scale",
    "edge_strength",
)


def _wand(
    cfg: WandConfig, anneal: AnnealConfig, hparams: Hparams, key: jax.Array
) -> optax.GradientTransformation:
    return wand(
        hparams.learning_rate,
        _temperature(anneal, hparams),
        annealed(anneal.friction, hparams.friction, hparams.friction_final, hparams),
        key=key,
        per_member=False,  # the trainer's key is already the member's own
        grid=wand_grid(cfg),
        **{f: getattr(cfg, f) for f in _WAND_KNOBS},
        trigger=trigger(anneal, hparams),
    )


def gradient_filter(cfg: FilterConfig) -> optax.GradientTransformation | None:
    """The transformation `cfg.name` puts before the optimizer, or None.

    With `cfg.equal_lr` a Grokfast filter's output is divided by 1 + lamb, so a
    constant gradient gives the step it gives without the filter (the fair comparison
    at equal effective learning rate); otherwise Grokfast's own amplification stays.
    """
    if cfg.name == "none":
        return None
    if cfg.name == "orthogonal":
        return orthogonal_gradient()
    if cfg.name == "grokfast-ema":
        tx = grokfast_ema(cfg.alpha, cfg.lamb)
    else:
        tx = grokfast_ma(cfg.window, cfg.lamb)
    if cfg.equal_lr:
        tx = optax.chain(tx, optax.scale(1.0 / (1.0 + cfg.lamb)))
    return tx


class Optimizer(NamedTuple):
    """One entry of `OPTIMIZERS`: `doc` (a line for the reference); `make(cfg, hparams,
    schedule, key)` the transformation (`schedule` is the learning rate after the
    warm-up); `readouts` the names `read(cfg, hparams, opt_state, ln_train_loss)`
    records at an evaluation; `noisy` whether its updates carry noise."""

    doc: str
    make: Callable[..., optax.GradientTransformation]
    readouts: tuple[str, ...] = ()
    read: Callable[..., dict] | None = None
    noisy: bool = False


def _adamw(cfg, hparams, schedule, key):
    return optax.adamw(schedule, b1=cfg.beta1, b2=cfg.beta2, weight_decay=hparams.weight_decay)


def _adam(cfg, hparams, schedule, key):
    return optax.adam(schedule, b1=cfg.beta1, b2=cfg.beta2)


def _sgd(cfg, hparams, schedule, key):  # heavy-ball momentum with coupled L2 weight decay
    return optax.chain(
        optax.add_decayed_weights(hparams.weight_decay),
        optax.sgd(schedule, momentum=cfg.momentum),
    )


def _sgld(cfg, hparams, schedule, key):
    return optax.chain(
        optax.add_decayed_weights(hparams.weight_decay),
        optax.sgd(schedule),
        langevin_noise(
            schedule, _temperature(cfg.anneal, hparams), key, trigger=trigger(cfg.anneal, hparams)
        ),
    )


def _wand_adamw(cfg, hparams, schedule, key):
    by_loss = cfg.blend.signal == "train_loss"
    return blend(
        _wand(cfg.wand, cfg.anneal, hparams, key),
        _adamw(cfg, hparams, schedule, key),
        ramp_weight(cfg.blend.low, cfg.blend.high),
        observable="value" if by_loss else "train_accuracy",
        transform=jnp.log if by_loss else None,
        smoothing=cfg.blend.smoothing,
    )


def _read_sgld(cfg, hparams, opt_state, ln_train_loss) -> dict:
    states = _states_of(opt_state, AddedNoiseState)  # the Langevin noise comes first
    kT = _temperature(cfg.anneal, hparams)
    return {"kT_in_force": schedules.read(kT, states[0].clock)} if states else {}


def _read_wand(cfg, hparams, opt_state, ln_train_loss) -> dict:
    """kT in force on WanD's clock; its entropy estimate S(x) = S_bias(x) + deposits at
    x = the evaluated ln L_train (`entropy_at`); its kinetic temperature, the mean over
    every coordinate of v^2 (equipartition: the thermostat holds Var v = kT where no
    force acts, `grokjax.wanglandau.thermostat`)."""
    states = _states_of(opt_state, WandState)
    if not states:
        return {}
    state, grid = states[0], wand_grid(cfg.wand)
    squares = [jnp.sum(jnp.square(v.astype(jnp.float32))) for v in jax.tree.leaves(state.velocity)]
    return {
        "kT_in_force": schedules.read(_temperature(cfg.anneal, hparams), state.clock),
        "wand_entropy": entropy_at(
            state.deposits,
            grid,
            jnp.maximum(ln_train_loss, grid.x_min),
            bias_strength=cfg.wand.bias_strength,
            bias_floor=cfg.wand.loss_floor,
        ),
        "kinetic_kT": sum(squares) / sum(v.size for v in jax.tree.leaves(state.velocity)),
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class MuonConfig(Section):
    """Muon (`optax.contrib.muon`): momentum `beta`, `ns_steps` Newton-Schulz
    iterations orthogonalising each matrix's update, `nesterov` momentum. With
    `hidden_only` (the usual practice) the embeddings and the read-out (leaves named
    `embed`, `pos_embed`, `unembed`) are not Muon's; every parameter that is not
    Muon's, and every non-matrix, takes AdamW's step with `optim.beta1`, `optim.beta2`.
    `Hparams.learning_rate` is AdamW's; Muon's matrices step `lr_ratio` times it. Both
    decay weights by `Hparams.weight_decay` times their learning rate."""

    PATH: ClassVar[str] = "optim.muon"

    beta: float = 0.95
    ns_steps: int = 5
    nesterov: bool = True
    hidden_only: bool = True
    lr_ratio: float = 10.0

    def __post_init__(self) -> None:
        self.check_finite()
        self.in_range("beta", 0.0, 1.0, "a number in [0, 1)")
        if not self.lr_ratio > 0:
            self.fail("lr_ratio", "a positive number")
        self.positive_int("ns_steps")


_NOT_HIDDEN = {"embed", "pos_embed", "unembed"}


def _muon_leaves(params, hidden_only: bool):
    """Muon's leaves (its dimension numbers) and AdamW's (None), by shape and name."""

    def spec(path, leaf):
        muon = leaf.ndim == 2 and not (hidden_only and _NOT_HIDDEN.intersection(path_names(path)))
        return optax.contrib.MuonDimensionNumbers() if muon else None

    return jax.tree_util.tree_map_with_path(spec, params)


def _muon(cfg, hparams, schedule, key):
    return optax.contrib.muon(
        lambda count: cfg.muon.lr_ratio * schedule(count),
        ns_steps=cfg.muon.ns_steps,
        beta=cfg.muon.beta,
        weight_decay=hparams.weight_decay,
        nesterov=cfg.muon.nesterov,
        adam_b1=cfg.beta1,
        adam_b2=cfg.beta2,
        adam_weight_decay=hparams.weight_decay,
        adam_learning_rate=schedule,
        muon_weight_dimension_numbers=lambda p: _muon_leaves(p, cfg.muon.hidden_only),
    )


_WAND_READOUTS = ("kT_in_force", "wand_entropy", "kinetic_kT")

OPTIMIZERS: dict[str, Optimizer] = {
    "adamw": Optimizer("AdamW, decoupled weight decay (the paper's baseline)", _adamw),
    "adam": Optimizer("Adam, no weight decay", _adam),
    "sgd": Optimizer("SGD with heavy-ball momentum and coupled weight decay", _sgd),
    "sgld": Optimizer(
        "SGD plus Langevin noise sqrt(2 lr kT) after the learning-rate scaling",
        _sgld,
        ("kT_in_force",),
        _read_sgld,
        noisy=True,
    ),
    "wand": Optimizer(
        "WanD: Langevin dynamics with the Wang-Landau entropy force (optim.wand)",
        lambda cfg, hparams, schedule, key: _wand(cfg.wand, cfg.anneal, hparams, key),
        _WAND_READOUTS,
        _read_wand,
        noisy=True,
    ),
    "wand-adamw": Optimizer(
        "alpha WanD + (1 - alpha) AdamW, alpha read from a training signal (optim.blend)",
        _wand_adamw,
        _WAND_READOUTS,
        _read_wand,
        noisy=True,
    ),
    "muon": Optimizer("Muon: orthogonalised momentum for matrices, AdamW for the rest", _muon),
}
NOISY_OPTIMIZERS = tuple(name for name, o in OPTIMIZERS.items() if o.noisy)
PARAMETER_NOISES = ("none", "gaussian")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimConfig(Section):
    """The optimizer: `name` (a key of `OPTIMIZERS`), `beta1`, `beta2`, `momentum`,
    `warmup_steps` (linear warm-up from 0; not WanD's), `fixed_norm` (rescale all
    parameters to this global norm after init and after every step, whatever the
    optimizer; None disables), `noise` ('none'; 'gaussian': the plain parameter noise
    sigma xi after any optimizer, sigma = `Hparams.noise_scale`), and the sub-sections."""

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
    muon: MuonConfig = MuonConfig()

    def __post_init__(self) -> None:
        self.check_finite()
        self.one_of("name", tuple(OPTIMIZERS))
        self.one_of("noise", PARAMETER_NOISES)
        for field in ("beta1", "beta2", "momentum"):
            self.in_range(field, 0.0, 1.0, "a number in [0, 1)")
        self.positive_int("warmup_steps", minimum=0)
        if self.fixed_norm is not None and not self.fixed_norm > 0:
            self.fail("fixed_norm", "a positive number or None")


def make_optimizer(
    cfg: OptimConfig, hparams: Hparams, key: jax.Array
) -> optax.GradientTransformation:
    """The optax transformation `OPTIMIZERS[cfg.name]` makes with the (possibly traced)
    `hparams`, after the gradient filter `cfg.filter` when there is one.

    Built inside the vmapped training function so each member gets its own numbers
    (and, for stochastic optimizers, its own key). The fixed-norm projection is added
    by the trainer (`cfg.fixed_norm`), not here. With `cfg.noise='gaussian'` the plain
    parameter noise follows the optimizer, its own key folded from `key` (the
    optimizer's stream is the one it has without it).
    """
    schedule = warmup(hparams.learning_rate, cfg.warmup_steps)
    tx = OPTIMIZERS[cfg.name].make(cfg, hparams, schedule, key)
    before = gradient_filter(cfg.filter)
    if before is not None:
        tx = optax.chain(before, tx)
    if cfg.noise == "gaussian":
        noise_key = jax.random.fold_in(key, NOISE_STREAM)
        tx = optax.chain(
            tx,
            parameter_noise(_sigma(cfg, hparams), noise_key, trigger=trigger(cfg.anneal, hparams)),
        )
    return tx


NOISE_STREAM = 0x6E6F6973  # folded into the optimizer key for the plain noise's key


def _sigma(cfg: OptimConfig, hparams: Hparams):
    return annealed(cfg.anneal.noise, hparams.noise_scale, hparams.noise_final, hparams)


def readout_names(cfg: OptimConfig) -> tuple[str, ...]:
    """What `readouts` records for `cfg` beside the metrics: the optimizer's readouts,
    then 'noise_in_force' with the plain noise."""
    noise = ("noise_in_force",) if cfg.noise == "gaussian" else ()
    return OPTIMIZERS[cfg.name].readouts + noise


def _states_of(opt_state, kind: type) -> list:
    nodes = jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, kind))
    return [n for n in nodes if isinstance(n, kind)]


def readouts(cfg: OptimConfig, hparams: Hparams, opt_state, ln_train_loss) -> dict:
    """The optimizer's observables at an evaluation (`readout_names`), each read from the
    state by the schedule and estimate the update uses (`grokjax.problem.metrics.METRICS`
    says what each is); NaN where the state holds no such part (an optimizer built
    outside `cfg`)."""
    out = dict.fromkeys(readout_names(cfg), jnp.float32(jnp.nan))
    entry = OPTIMIZERS[cfg.name]
    if entry.read is not None:
        out.update(entry.read(cfg, hparams, opt_state, ln_train_loss))
    noise_states = _states_of(opt_state, AddedNoiseState)
    if "noise_in_force" in out and noise_states:
        out["noise_in_force"] = schedules.read(_sigma(cfg, hparams), noise_states[-1].clock)
    return {k: jnp.asarray(v, jnp.float32) for k, v in out.items()}
