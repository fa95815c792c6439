"""The optimizer readouts a run records: kT and sigma in force, WanD's entropy estimate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.config import Config, Hparams
from grokjax.optim import make_optimizer, readout_names, readouts
from grokjax.optim.wand import WandState
from grokjax.train import make_train, metric_names

KEY = jax.random.key(0)
SMALL = {
    "data.modulus": 11,
    "model.d_model": 32,
    "model.n_heads": 4,
    "model.d_mlp": 64,
    "steps": 40,
    "eval.every": 10,
}


def _train(cfg: Config, hparams: Hparams, n_members: int = 2):
    trainer = make_train(cfg)
    keys = jax.random.split(KEY, n_members)
    hp = jax.tree.map(lambda v: jnp.full(n_members, v, jnp.float32), hparams)
    return jax.jit(jax.vmap(trainer.train))(keys, hp)


def test_annealed_wand_records_the_kT_its_schedule_gives():
    cfg = Config(
        **SMALL,
        **{"optim.anneal.temperature": "linear"},
        **{"optim.name": "wand", "optim.wand.force_cap": 1.2e5},
    )
    hp = Hparams(
        learning_rate=3e-3,
        weight_decay=0.0,
        temperature=0.5,
        friction=0.5,
        temperature_final=0.1,
        anneal_steps=20,
    )
    assert {"kT_in_force", "wand_entropy"} <= set(metric_names(cfg))
    _, metrics = _train(cfg, hp)
    steps = np.asarray(cfg.eval_steps, np.float64)
    expected = 0.5 + (0.1 - 0.5) * np.minimum(steps / 20, 1.0)  # read on the clock at step t
    np.testing.assert_allclose(metrics["kT_in_force"][0], expected, rtol=1e-6)
    np.testing.assert_allclose(metrics["kT_in_force"][1], expected, rtol=1e-6)


def test_wand_entropy_is_bias_plus_deposits_at_ln_L():
    cfg = Config(**SMALL, **{"optim.name": "wand", "optim.wand.force_cap": 1.2e5})
    hp = Hparams(learning_rate=3e-3, weight_decay=0.0, temperature=0.5, friction=0.5)
    state, metrics = _train(cfg, hp, n_members=1)
    (wand_state,) = [
        n
        for n in jax.tree.leaves(state.opt_state, is_leaf=lambda n: isinstance(n, WandState))
        if isinstance(n, WandState)
    ]
    w = cfg.optim.wand
    x = float(metrics["ln_train_loss"][0, -1])
    i = int(np.clip(np.floor((x - w.x_min) / w.bin_width), 0, w.n_bins - 1))
    centre = w.x_min + w.bin_width * (i + 0.5)
    by_hand = w.bias_strength * max(centre - w.loss_floor, 0.0) ** 2
    by_hand += float(wand_state.deposits[0, i])
    assert float(wand_state.deposits[0].sum()) > 0  # deposits were made: they count
    np.testing.assert_allclose(float(metrics["wand_entropy"][0, -1]), by_hand, rtol=1e-5)


def test_sgld_and_plain_noise_record_what_is_in_force():
    cfg = Config(
        **SMALL,
        **{"optim.noise": "gaussian", "optim.anneal.noise": "exponential"},
        **{"optim.name": "sgld"},
    )
    hp = Hparams(
        learning_rate=1e-2,
        weight_decay=0.0,
        temperature=1e-4,
        noise_scale=1e-2,
        noise_final=1e-3,
        anneal_steps=10,
    )
    assert readout_names(cfg.optim) == ("kT_in_force", "noise_in_force")
    _, metrics = _train(cfg, hp)
    steps = np.asarray(cfg.eval_steps, np.float64)
    np.testing.assert_allclose(metrics["kT_in_force"][0], 1e-4, rtol=1e-6)
    sigma = 1e-3 + (1e-2 - 1e-3) * np.exp(-steps / 10)
    np.testing.assert_allclose(metrics["noise_in_force"][0], sigma, rtol=1e-5)


def test_adamw_records_no_readouts_and_a_foreign_state_reads_nan():
    assert readout_names(Config().optim) == ()
    cfg = Config(**{"optim.name": "wand"})
    tx = make_optimizer(Config().optim, Hparams(), KEY)  # an AdamW state, not WanD's
    out = readouts(cfg.optim, Hparams(), tx.init({"w": jnp.ones(3)}), jnp.float32(0.0))
    assert set(out) == {"kT_in_force", "wand_entropy", "kinetic_kT"}
    assert all(np.isnan(float(v)) for v in out.values())


def test_kinetic_temperature_is_the_mean_squared_velocity():
    cfg = Config(**{"optim.name": "wand"})
    tx = make_optimizer(cfg.optim, Hparams(temperature=0.5), KEY)
    state = tx.init({"w": jnp.ones(3), "b": jnp.ones(1)})
    wand = [
        n
        for n in jax.tree.leaves(state, is_leaf=lambda n: isinstance(n, WandState))
        if isinstance(n, WandState)
    ][0]
    velocity = {"w": jnp.array([1.0, 2.0, 3.0]), "b": jnp.array([2.0])}
    state = jax.tree.map(
        lambda n: n._replace(velocity=velocity) if isinstance(n, WandState) else n,
        state,
        is_leaf=lambda n: isinstance(n, WandState),
    )
    assert wand.velocity["w"].shape == (3,)
    out = readouts(cfg.optim, Hparams(temperature=0.5), state, jnp.float32(0.0))
    assert float(out["kinetic_kT"]) == pytest.approx((1 + 4 + 9 + 4) / 4)
