"""The whole training run as pure functions of a key and the swept numbers.

`make_train(cfg)` returns a `Trainer` of four pure functions:

* `init(key, hparams) -> TrainState`: split the key by purpose, initialise the model
  and the optimizer;
* `step(state, hparams) -> TrainState`: one optimizer update;
* `run(state, hparams, segments_E) -> (state, metrics)`: for each entry n of
  `segments_E`, take n optimizer steps, then evaluate every metric on the full train and
  test sets (a `lax.scan` of `fori_loop`s, so a zero entry just evaluates);
* `train(key, hparams) -> (state, metrics)`: `init`, then `run` over the whole
  evaluation schedule of `cfg.eval_steps`.

With `cfg.llc.every` > 0, `run` also records `llc`, the local learning coefficient of
the run's training loss on its training set at the parameters (the network in
evaluation mode; `grokjax.problem.llc`), at every `llc.every`-th evaluation of
`cfg.eval_steps` (the first included) and NaN at the others. Its SGLD draws from a key
of its own, `fold_in(fold_in(loop_key, LLC_STREAM), step)`, so the other metrics do not
change, and it is computed only at those evaluations, even under vmap.

None of them jits itself: call sites write `jax.jit(jax.vmap(trainer.train))(keys,
hparams)` for a seed ensemble (`grokjax.jit` for the same with grokjax's compiler
options, several times faster on CPU) and nest vmaps for a seed x hyperparameter grid.
The model is any kind `grokjax.problem.network` turns into a `Network`; its state
besides the parameters (BatchNorm's averages) rides in `TrainState.model_state`. Per-step
randomness comes from `fold_in(loop_key, step)`, so a run split into chunks (to show
progress and checkpoint) or resumed from a checkpoint gives the same numbers as one
uninterrupted call.

Example:
    >>> cfg = Config(**{"data.modulus": 11, "eval.every": 10}, steps=20)
    >>> trainer = make_train(cfg)
    >>> keys = jax.vmap(jax.random.key)(jnp.arange(4))
    >>> hp = Hparams(learning_rate=1e-3, weight_decay=1.0)
    >>> state, metrics = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)))(keys, hp)
    >>> metrics["test_acc"].shape  # members x evaluations
    (4, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from grokjax.config import Config, Hparams
from grokjax.optim import (
    make_optimizer,
    project_to_global_norm,
    readout_names,
    readouts,
    rescale_to_norm,
)
from grokjax.problem import data as data_lib
from grokjax.problem.ageing import AgeingState, ageing_init, ageing_update, observables
from grokjax.problem.checks import check_inputs
from grokjax.problem.llc import estimate as estimate_llc
from grokjax.problem.metrics import METRIC_NAMES, evaluate, make_objective
from grokjax.problem.models import make_network
from grokjax.problem.progress import PROGRESS_NAMES, progress_measures


class TrainState(NamedTuple):
    """One member's run; `ageing` the snapshots at the waiting times (None without them),
    `model_state` the network's state besides its parameters (`grokjax.problem.network`)."""

    params: Any
    opt_state: Any
    step: jax.Array
    opt_key: jax.Array
    loop_key: jax.Array
    data_key: jax.Array
    ageing: AgeingState | None
    model_state: Any = None


def metric_names(cfg: Config) -> tuple[str, ...]:
    """Every metric a run of `cfg` records: `METRIC_NAMES`, `msd@t_w` and `overlap@t_w` per
    waiting time, `PROGRESS_NAMES` if asked, `llc` if asked, then the optimizer's
    `readout_names`."""
    waiting = sorted(cfg.eval.waiting_times)
    extra = [f"{kind}@{t}" for t in waiting for kind in ("msd", "overlap")]
    progress = PROGRESS_NAMES if cfg.eval.progress_frequencies else ()
    llc = ("llc",) if cfg.llc.every else ()
    return METRIC_NAMES + tuple(extra) + progress + llc + readout_names(cfg.optim)


class Trainer(NamedTuple):
    init: Callable[[jax.Array, Hparams], TrainState]
    step: Callable[[TrainState, Hparams], TrainState]
    run: Callable[[TrainState, Hparams, jax.Array], tuple[TrainState, dict[str, jax.Array]]]
    train: Callable[[jax.Array, Hparams], tuple[TrainState, dict[str, jax.Array]]]


def segments(cfg: Config) -> np.ndarray:
    """Steps to take before each evaluation of `cfg.eval_steps` (the first is 0)."""
    return np.diff(cfg.eval_steps, prepend=0).astype(np.int32)


def chunk_schedule(cfg: Config) -> np.ndarray:
    """`segments(cfg)` cut into chunks of `cfg.eval.chunk_evals` evaluations: [chunks, evals];
    the last is padded with zero-step segments (evaluations the caller drops), so one
    compiled program serves every chunk."""
    segs = segments(cfg)
    per_chunk = min(cfg.eval.chunk_evals, segs.size)
    n_chunks = -(-segs.size // per_chunk)
    padded = np.zeros(n_chunks * per_chunk, np.int32)
    padded[: segs.size] = segs
    return padded.reshape(n_chunks, per_chunk)


MODEL_STREAM = 0x6D6F6465  # folded into a member's loop key for its network's random layers
LLC_STREAM = 0x6C6C6320  # folded into a member's loop key for the LLC's SGLD chains


def _when(pred: jax.Array, compute: Callable[..., Any], *operands: Any) -> Any:
    """`compute(*operands)` where `pred`, NaNs of its shapes elsewhere, computed only when
    some member needs it. Under vmap, `lax.cond` on a batched predicate runs both
    branches, a while loop only as long as some member's predicate holds (members share
    it here). The operands ride in the loop's carry behind an optimization barrier:
    otherwise XLA hoists the loop-invariant computation out of the loop and runs it
    whatever `pred` says."""
    shapes = jax.eval_shape(compute, *operands)
    nans = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)

    def body(carry):
        _, held, _ = carry
        held = jax.lax.optimization_barrier(held)
        return jnp.zeros_like(pred), held, compute(*held)

    return jax.lax.while_loop(lambda carry: carry[0], body, (pred, operands, nans))[2]


OptimizerFactory = Callable[[Hparams, jax.Array], optax.GradientTransformation]


def make_train(
    cfg: Config,
    optimizer: OptimizerFactory | None = None,
    report: Callable[[Any], None] | None = None,
) -> Trainer:
    """Build the pure training functions for `cfg` (see the module docstring).

    `optimizer(hparams, key) -> optax.GradientTransformation` (default: `cfg.optim`'s, from
    `grokjax.optim`) is called inside the traced functions, so `hparams` may be traced per
    member; `key` is the member's optimizer key. Its update receives the batch loss as
    `value=` (optax's convention) and the batch accuracy as `train_accuracy=`. `report`,
    if given, is called from `run` (`jax.debug.callback`, unordered) with the steps each
    member took per segment, for a progress bar; the numbers do not depend on it.
    """
    spec = cfg.data.spec
    net = make_network(cfg.model, spec)
    check_inputs(cfg, net)  # the user's data and model, before anything is compiled
    objective = make_objective(cfg.loss, spec.kind, cfg.eval)
    fixed_norm = cfg.optim.fixed_norm
    if optimizer is None:

        def optimizer(hparams: Hparams, key: jax.Array) -> optax.GradientTransformation:
            return make_optimizer(cfg.optim, hparams, key)

    def transform(hparams: Hparams, key: jax.Array):
        tx = optimizer(hparams, key)
        if fixed_norm is not None:  # a mode of the trainer, whatever the optimizer
            tx = optax.chain(tx, project_to_global_norm(fixed_norm))
        return optax.with_extra_args_support(tx)

    fixed_split = None
    if cfg.data.split_seed is not None:
        # One split shared by every member: built once, so a vmapped ensemble sees
        # unbatched data and its matmuls stay large.
        fixed_split = data_lib.make(jax.random.key(cfg.data.split_seed), cfg.data)

    def dataset(state: TrainState) -> data_lib.Dataset:
        if fixed_split is not None:
            return fixed_split
        return data_lib.make(state.data_key, cfg.data)

    waiting = cfg.eval.waiting_times
    n_key = cfg.eval.progress_frequencies
    llc_every = cfg.llc.every
    eval_steps_E = jnp.asarray(cfg.eval_steps, jnp.int32)

    def loss_fn(params, model_state, inputs_BxI, labels_B, key):
        outputs_BxC, model_state = net.train_apply(params, model_state, inputs_BxI, key)
        return objective.train_loss(outputs_BxC, labels_B), (outputs_BxC, model_state)

    def step_key(state: TrainState) -> jax.Array | None:
        if not net.stochastic:
            return None
        return jax.random.fold_in(jax.random.fold_in(state.loop_key, MODEL_STREAM), state.step)

    def batch(ds: data_lib.Dataset, state: TrainState) -> tuple[jax.Array, jax.Array]:
        if cfg.batch_size is None:
            return ds.train_inputs, ds.train_labels
        # Sample without replacement within an epoch; a fresh permutation per epoch.
        n_train = cfg.data.n_train
        per_epoch = n_train // cfg.batch_size
        epoch, offset = jnp.divmod(state.step, per_epoch)
        order = jax.random.permutation(jax.random.fold_in(state.loop_key, epoch), n_train)
        idx = jax.lax.dynamic_slice_in_dim(order, offset * cfg.batch_size, cfg.batch_size)
        return ds.train_inputs[idx], ds.train_labels[idx]

    def init(key: jax.Array, hparams: Hparams) -> TrainState:
        init_key, opt_key, loop_key, member_data_key = jax.random.split(key, 4)
        params, model_state = net.init(init_key)
        params = jax.tree.map(lambda p: p * hparams.init_scale, params)
        if fixed_norm is not None:
            params = rescale_to_norm(params, fixed_norm)
        opt_state = transform(hparams, opt_key).init(params)
        ageing = ageing_init(params, waiting) if waiting else None
        step0 = jnp.zeros((), jnp.int32)
        return TrainState(
            params, opt_state, step0, opt_key, loop_key, member_data_key, ageing, model_state
        )

    def update(state: TrainState, hparams: Hparams, ds: data_lib.Dataset) -> TrainState:
        tx = transform(hparams, state.opt_key)
        inputs_BxI, labels_B = batch(ds, state)
        (loss, (outputs_BxC, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.model_state, inputs_BxI, labels_B, step_key(state)
        )
        updates, opt_state = tx.update(
            grads,
            state.opt_state,
            state.params,
            value=loss,
            train_accuracy=objective.accuracy(outputs_BxC, labels_B),
        )
        params = optax.apply_updates(state.params, updates)
        return state._replace(
            params=params, opt_state=opt_state, step=state.step + 1, model_state=model_state
        )

    def step(state: TrainState, hparams: Hparams) -> TrainState:
        return update(state, hparams, dataset(state))

    def llc(state: TrainState, n_steps: jax.Array, ds: data_lib.Dataset) -> jax.Array:
        """The LLC at every `llc.every`-th evaluation step, NaN at the others; a zero-step
        segment after step 0 (the padding of a last chunk) takes none."""
        index = jnp.searchsorted(eval_steps_E, state.step)
        due = (index % llc_every == 0) & ((n_steps > 0) | (state.step == 0))
        key = jax.random.fold_in(jax.random.fold_in(state.loop_key, LLC_STREAM), state.step)

        def compute(params, model_state, data, key):
            def sampled_loss(params, batch):
                inputs_BxI, labels_B = batch
                outputs_BxC = net.apply(params, model_state, inputs_BxI)
                return objective.train_loss(outputs_BxC, labels_B)

            return estimate_llc(sampled_loss, params, data, key, cfg.llc).llc

        data = (ds.train_inputs, ds.train_labels)
        return _when(due, compute, state.params, state.model_state, data, key)

    def run(state: TrainState, hparams: Hparams, segments_E: jax.Array):
        ds = dataset(state)

        def segment(state: TrainState, n_steps: jax.Array):
            before = state.step
            state = jax.lax.fori_loop(0, n_steps, lambda _, s: update(s, hparams, ds), state)
            if report is not None:
                jax.debug.callback(report, state.step - before)

            def apply(params, inputs_BxI):  # evaluation mode: running averages, no dropout
                return net.apply(params, state.model_state, inputs_BxI)

            metrics = evaluate(apply, state.params, *ds[:4], objective)
            if waiting:
                ageing = ageing_update(state.ageing, state.params, state.step)
                state = state._replace(ageing=ageing)
                seen = observables(ageing, state.params)
                for k, t in enumerate(sorted(waiting)):
                    metrics[f"msd@{t}"] = seen["msd"][k]
                    metrics[f"overlap@{t}"] = seen["overlap"][k]
            if n_key:
                metrics.update(progress_measures(apply, state.params, ds, spec.n_labels, n_key))
            if llc_every:
                metrics["llc"] = llc(state, n_steps, ds)
            metrics.update(readouts(cfg.optim, hparams, state.opt_state, metrics["ln_train_loss"]))
            return state, metrics

        return jax.lax.scan(segment, state, segments_E)

    def train(key: jax.Array, hparams: Hparams):
        return run(init(key, hparams), hparams, jnp.asarray(segments(cfg)))

    return Trainer(init, step, run, train)
