"""Optimizers chosen by config: ordinary optax transformations.

The AdamW baseline matches the paper: betas (0.9, 0.98), a linear warm-up from 0
over the first 10 updates, decoupled weight decay (as PyTorch's AdamW: the decay is
scaled by the learning rate). The fixed-norm mode (Liu et al. 2023; the paper's
norm-30 baseline) rescales all parameters to a fixed global norm after each update;
`project_to_global_norm` is that step as an optax transformation, which the trainer
appends to any optimizer when `OptimConfig.fixed_norm` is set.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from grokjax.config import AnnealConfig, FilterConfig, Hparams, OptimConfig, WandConfig
from grokjax.optim import schedules
from grokjax.optim.baselines import (
    AddedNoiseState,
    grokfast_ema,
    grokfast_ma,
    langevin_noise,
    orthogonal_gradient,
    parameter_noise,
)
from grokjax.optim.blend import blend, ramp_weight
from grokjax.optim.wand import WandState, wand
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


def _wand(
    cfg: WandConfig, anneal: AnnealConfig, hparams: Hparams, key: jax.Array
) -> optax.GradientTransformation:
    return wand(
        hparams.learning_rate,
        _temperature(anneal, hparams),
        annealed(anneal.friction, hparams.friction, hparams.friction_final, hparams),
        key=key,
        per_member=False,  # the trainer's key is already the member's own
        bias_strength=cfg.bias_strength,
        loss_floor=cfg.loss_floor,
        deposit=cfg.deposit,
        t_wl=cfg.t_wl,
        sigma_bins=cfg.sigma_bins,
        grid=wand_grid(cfg),
        slope_cap=cfg.slope_cap,
        force_cap=cfg.force_cap,
        force=cfg.force,
        loss_force_scale=cfg.loss_force_scale,
        edge_strength=cfg.edge_strength,
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


def make_optimizer(
    cfg: OptimConfig, hparams: Hparams, key: jax.Array
) -> optax.GradientTransformation:
    """The optax transformation for `cfg.name` with the (possibly traced) `hparams`,
    after the gradient filter `cfg.filter` when there is one.

    Built inside the vmapped training function so each member gets its own numbers
    (and, for stochastic optimizers, its own key). The fixed-norm projection is added
    by the trainer (`cfg.fixed_norm`), not here. 'wand-adamw' blends WanD with the
    AdamW above (same learning rate and weight decay), its weight read from the
    training-side signal `cfg.blend.signal` (`grokjax.optim.blend`). With
    `cfg.noise='gaussian'` the plain parameter noise follows the optimizer, its own key
    folded from `key` (the optimizer's stream is the one it has without it).
    """
    tx = _optimizer(cfg, hparams, key)
    before = gradient_filter(cfg.filter)
    if before is not None:
        tx = optax.chain(before, tx)
    if cfg.noise == "gaussian":
        scale = annealed(cfg.anneal.noise, hparams.noise_scale, hparams.noise_final, hparams)
        noise_key = jax.random.fold_in(key, NOISE_STREAM)
        tx = optax.chain(
            tx, parameter_noise(scale, noise_key, trigger=trigger(cfg.anneal, hparams))
        )
    return tx


NOISE_STREAM = 0x6E6F6973  # folded into the optimizer key for the plain noise's key


def _optimizer(cfg: OptimConfig, hparams: Hparams, key: jax.Array):
    if cfg.name == "wand":
        return _wand(cfg.wand, cfg.anneal, hparams, key)
    schedule = warmup(hparams.learning_rate, cfg.warmup_steps)
    adamw = optax.adamw(schedule, b1=cfg.beta1, b2=cfg.beta2, weight_decay=hparams.weight_decay)
    if cfg.name == "adamw":
        return adamw
    if cfg.name == "wand-adamw":
        by_loss = cfg.blend.signal == "train_loss"
        return blend(
            _wand(cfg.wand, cfg.anneal, hparams, key),
            adamw,
            ramp_weight(cfg.blend.low, cfg.blend.high),
            observable="value" if by_loss else "train_accuracy",
            transform=jnp.log if by_loss else None,
            smoothing=cfg.blend.smoothing,
        )
    if cfg.name == "adam":
        return optax.adam(schedule, b1=cfg.beta1, b2=cfg.beta2)
    if cfg.name == "sgld":
        return optax.chain(
            optax.add_decayed_weights(hparams.weight_decay),
            optax.sgd(schedule),
            langevin_noise(
                schedule,
                _temperature(cfg.anneal, hparams),
                key,
                trigger=trigger(cfg.anneal, hparams),
            ),
        )
    # "sgd": heavy-ball momentum with coupled L2 weight decay
    return optax.chain(
        optax.add_decayed_weights(hparams.weight_decay),
        optax.sgd(schedule, momentum=cfg.momentum),
    )


def readout_names(cfg: OptimConfig) -> tuple[str, ...]:
    """What `readouts` records for `cfg` beside the metrics: 'kT_in_force' (WanD, the
    blend, SGLD), 'wand_entropy' and 'kinetic_kT' (WanD, the blend) and
    'noise_in_force' (plain noise)."""
    names = []
    if cfg.name in ("wand", "wand-adamw", "sgld"):
        names.append("kT_in_force")
    if cfg.name in ("wand", "wand-adamw"):
        names += ["wand_entropy", "kinetic_kT"]
    if cfg.noise == "gaussian":
        names.append("noise_in_force")
    return tuple(names)


def _states_of(opt_state, kind: type) -> list:
    nodes = jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, kind))
    return [n for n in nodes if isinstance(n, kind)]


def readouts(cfg: OptimConfig, hparams: Hparams, opt_state, ln_train_loss) -> dict:
    """The optimizer's observables at an evaluation (`readout_names`), each read from the
    state by the schedule and estimate the update uses:

    - kT_in_force: the temperature read on the schedule's clock (the value the next
      update uses), WanD's or SGLD's;
    - wand_entropy: WanD's entropy estimate S(x) = S_bias(x) + deposits at x = the
      evaluated ln L_train (`grokjax.wanglandau.entropy.entropy_at`);
    - kinetic_kT: WanD's kinetic temperature, the mean over every coordinate of v^2
      (equipartition: the thermostat holds Var v = kT where no force acts,
      `grokjax.wanglandau.thermostat`), an effective temperature from the velocities;
    - noise_in_force: the plain noise's sigma on its clock.
    NaN where the state holds no such part (an optimizer built outside `cfg`).
    """
    nan = jnp.float32(jnp.nan)
    out = {name: nan for name in readout_names(cfg)}
    wand_states = _states_of(opt_state, WandState)
    noise_states = _states_of(opt_state, AddedNoiseState)
    kT = _temperature(cfg.anneal, hparams)
    if "wand_entropy" in out and wand_states:
        state = wand_states[0]
        out["kT_in_force"] = schedules.read(kT, state.clock)
        grid = wand_grid(cfg.wand)
        x = jnp.maximum(ln_train_loss, grid.x_min)
        out["wand_entropy"] = entropy_at(
            state.deposits,
            grid,
            x,
            bias_strength=cfg.wand.bias_strength,
            bias_floor=cfg.wand.loss_floor,
        )
        squares = [
            jnp.sum(jnp.square(v.astype(jnp.float32))) for v in jax.tree.leaves(state.velocity)
        ]
        sizes = sum(v.size for v in jax.tree.leaves(state.velocity))
        out["kinetic_kT"] = sum(squares) / sizes
    if cfg.name == "sgld" and noise_states:  # the Langevin noise comes before plain noise
        out["kT_in_force"] = schedules.read(kT, noise_states[0].clock)
    if "noise_in_force" in out and noise_states:
        sigma = annealed(cfg.anneal.noise, hparams.noise_scale, hparams.noise_final, hparams)
        out["noise_in_force"] = schedules.read(sigma, noise_states[-1].clock)
    return {k: jnp.asarray(v, jnp.float32) for k, v in out.items()}
