"""The user's own model as it is: a linen module with BatchNorm and Dropout, a Flax NNX
module, an init/apply pair. Each trains as a vmapped seed ensemble through the API and
through `--set model.name=file.py:attr`, member i equals the single run with key i, a
kill and resume is bit-identical, WanD trains each, and only the parameters reach the
optimizer (tests/user_zoo.py holds the models, as a user's file would)."""

from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest
import user_zoo

import grokjax as gj
from grokjax.cli import main
from grokjax.host.experiment import run_preset
from grokjax.problem.network import Network

ZOO = Path(user_zoo.__file__)
KINDS = {"linen": user_zoo.LinenNet(), "nnx": user_zoo.NnxNet, "pair": user_zoo.pair}
REFERENCES = {"linen": "LinenNet", "nnx": "NnxNet", "pair": "pair"}
HP = gj.Hparams(learning_rate=1e-2, weight_decay=0.1)


def _config(kind: str, **changes) -> gj.Config:
    task = gj.register_task("zoo-clusters", user_zoo.task)
    model = gj.register_model(f"zoo-{kind}", KINDS[kind])
    paths = {
        "data.task": task,
        "data.train_fraction": 0.5,
        "model.name": model,
        "steps": 24,
        "eval.every": 4,
        "optim.warmup_steps": 0,
        **changes,
    }
    return gj.Config(**paths)


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_trains_as_an_ensemble_equal_to_its_single_runs(kind):
    # SGD: Adam turns the float round-off of gradients that are zero in exact arithmetic
    # (a bias before BatchNorm) into whole steps of +-lr, so batched and single runs of
    # the BatchNorm models part by 1e-3 after a few AdamW steps; SGD keeps them within 1e-7.
    cfg = _config(kind, **{"optim.name": "sgd"})
    trainer = gj.make_train(cfg)
    keys = gj.member_keys(range(4))
    state, metrics = gj.jit(jax.vmap(trainer.train, in_axes=(0, None)))(keys, HP)
    assert metrics["test_acc"].shape == (4, 7)
    chex.assert_tree_all_finite(metrics)
    # it learned: the train loss fell in every member
    assert np.all(metrics["train_loss"][:, -1] < 0.9 * metrics["train_loss"][:, 0])
    single = gj.jit(trainer.train)
    for i in range(4):
        _, alone = single(jax.random.key(i), HP)
        chex.assert_trees_all_close(
            jax.tree.map(lambda x, i=i: x[i], metrics),
            alone,
            rtol=1e-4,
            atol=1e-5,
        )
    # the members differ: each from its own key
    assert len({round(float(v), 6) for v in metrics["train_loss"][:, 1]}) == 4


@pytest.mark.parametrize("kind", ["linen", "nnx"])
def test_state_is_carried_beside_the_parameters_not_optimised(kind):
    cfg = _config(kind)
    trainer = gj.make_train(cfg)
    state = trainer.init(jax.random.key(0), HP)
    norms = jax.tree.leaves(state.model_state)
    assert norms, "BatchNorm's running averages are the network's state"
    leaf_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state)]
    params_paths = [p for p in leaf_paths if p.startswith(".params")]
    assert not any("mean" in p or "var" in p for p in params_paths)
    # the optimizer's moments have the parameters' structure, not the state's
    mu = state.opt_state[0].mu if kind else None
    assert jax.tree.structure(mu) == jax.tree.structure(state.params)
    after = jax.jit(trainer.step)(state, HP)
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.model_state, after.model_state)
    assert any(jax.tree.leaves(moved)), "a training step updates the running averages"
    # evaluation reads the running averages: the same parameters and state, the same outputs
    net = gj.make_network(cfg.model, cfg.data.spec)
    x = jnp.asarray(user_zoo.clusters()[0][:5])
    a = net.apply(after.params, after.model_state, x)
    b = net.apply(after.params, after.model_state, x)
    np.testing.assert_array_equal(a, b)  # deterministic at evaluation (no dropout)
    # the weight norm is the parameters' alone
    (_, metrics) = jax.jit(trainer.run)(after, HP, jnp.asarray([0], jnp.int32))
    np.testing.assert_allclose(metrics["weight_norm"][0], optax.tree.norm(after.params), rtol=1e-6)


@pytest.mark.parametrize("kind", ["linen", "nnx"])
def test_dropout_draws_a_new_key_each_step(kind):
    cfg = _config(kind)
    net = gj.make_network(cfg.model, cfg.data.spec)
    assert isinstance(net, Network) and net.stateful
    params, state = net.init(jax.random.key(0))
    x = jnp.asarray(user_zoo.clusters()[0][:32])
    out1, state1 = net.train_apply(params, state, x, jax.random.key(1))
    out2, _ = net.train_apply(params, state1, x, jax.random.key(2))
    assert not np.allclose(out1, out2)  # another dropout mask (and BatchNorm stats move)


@pytest.mark.parametrize("kind", list(KINDS))
def test_wand_trains_each_kind(kind):
    cfg = _config(kind, **{"optim.name": "wand", "steps": 40, "eval.every": 10})
    trainer = gj.make_train(cfg)
    hp = gj.Hparams(learning_rate=3e-3, temperature=0.05, friction=0.5)
    _, metrics = gj.jit(jax.vmap(trainer.train, in_axes=(0, None)))(gj.member_keys(range(2)), hp)
    chex.assert_tree_all_finite(metrics)
    assert np.all(metrics["train_loss"][:, -1] < metrics["train_loss"][:, 0])


@pytest.mark.parametrize(
    "changes",
    [
        {"optim.name": "sgld"},
        {"optim.name": "wand-adamw"},
        {"optim.filter.name": "grokfast-ema"},
        {"optim.fixed_norm": 5.0},
        {"optim.noise": "gaussian"},
        {"loss": "stablemax"},
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_every_optimizer_and_baseline_takes_a_stateful_model(changes):
    cfg = _config("linen", **{"steps": 8, "eval.every": 4, **changes})
    trainer = gj.make_train(cfg)
    hp = HP._replace(noise_scale=1e-3, temperature=1e-3)
    state, metrics = gj.jit(jax.vmap(trainer.train, in_axes=(0, None)))(
        gj.member_keys(range(2)), hp
    )
    chex.assert_tree_all_finite(metrics)
    assert jax.tree.leaves(state.model_state)  # the running averages rode along
    if "optim.fixed_norm" in changes:  # the norm is the parameters', state aside
        np.testing.assert_allclose(metrics["weight_norm"][:, -1], 5.0, rtol=1e-4)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("kind", list(KINDS))
def test_cli_by_file_reference_and_a_killed_run_resumes_bit_identically(kind, tmp_path, capsys):
    reference = f"{ZOO}:{REFERENCES[kind]}"
    settings = [f"data.task={ZOO}:task", f"model.name={reference}", "steps=24", "eval.every=4"]
    settings += ["eval.chunk_evals=2", "learning_rate=1e-2"]
    args = ["run", "--seeds", "4", "--no-progress", "--no-report"]
    args += [arg for setting in settings for arg in ("--set", setting)]
    whole = tmp_path / "whole"
    assert main([*args, "--out", str(whole)]) == 0, capsys.readouterr().err
    frame = pd.read_parquet(whole / "metrics.parquet")
    assert sorted(frame.member.unique()) == [0, 1, 2, 3] and len(frame) == 4 * 7

    def crash(chunk):
        if chunk.chunk == 1:
            raise Interrupt

    cut = tmp_path / "cut"
    with pytest.raises(Interrupt):
        run_preset("default", range(4), settings=settings, out_dir=cut, on_chunk=crash)
    assert main([*args, "--out", str(cut), "--resume"]) == 0, capsys.readouterr().err
    resumed = pd.read_parquet(cut / "metrics.parquet")
    pd.testing.assert_frame_equal(resumed, frame)  # bit-identical, every metric


def test_landscape_samples_the_parameters_of_a_stateful_model():
    from grokjax.landscape import LandscapeConfig, collective_variables

    lcfg = LandscapeConfig(model=_config("linen"))
    cv_fn, init_params = collective_variables(lcfg)
    params = init_params(jax.random.key(0))
    assert not any(
        "mean" in jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)
    )
    cv = jax.jit(cv_fn)(params)
    assert cv.shape == (2,) and bool(jnp.all(jnp.isfinite(cv)))


def test_compare_and_sweep_take_an_nnx_model(tmp_path):
    cfg = _config("nnx", steps=8, **{"eval.every": 4})
    sweep = gj.run_sweep(
        cfg, HP, {"learning_rate": [1e-2, 3e-2]}, 2, tmp_path / "sweep", progress=False
    )
    assert len(sweep.seeds) == 4
    np.testing.assert_allclose(sorted(set(sweep.seeds["learning_rate"])), [1e-2, 3e-2])
    from grokjax.host.compare import Arm, compare_presets

    arms = [Arm("adamw", cfg, HP), Arm("wand", cfg.replace(**{"optim.name": "wand"}), HP)]
    result = compare_presets(arms, [0, 1], tmp_path / "compare", progress=False)
    assert set(result.table) == {"adamw", "wand"}
