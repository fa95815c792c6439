import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from grokjax.optim.blend import blend, paper_weight, ramp_weight
from grokjax.optim.wand import wand

PARAMS = {"w": jnp.array([1.0, -2.0, 3.0])}
GRADS = {"w": jnp.array([0.5, 0.25, -1.0])}


def _update(tx, reading, name="value"):
    state = tx.init(PARAMS)
    return tx.update(GRADS, state, PARAMS, **{name: jnp.float32(reading)})


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_update_is_the_weighted_mixture(alpha):
    first, second = optax.sgd(0.1), optax.adam(0.05)
    tx = blend(first, second, lambda o: alpha + 0.0 * o, smoothing=0.0)
    updates, state = _update(tx, 2.0)
    u1, _ = first.update(GRADS, first.init(PARAMS), PARAMS)
    u2, _ = second.update(GRADS, second.init(PARAMS), PARAMS)
    np.testing.assert_allclose(updates["w"], alpha * u1["w"] + (1 - alpha) * u2["w"], rtol=1e-6)
    assert float(state.weight) == pytest.approx(alpha)


def test_ramp_weight_reads_log_loss_and_accuracy():
    by_loss = ramp_weight(-3.0, 0.0)
    np.testing.assert_allclose(by_loss(jnp.array([-5.0, -1.5, 0.0, 2.0])), [0, 0.5, 1, 1])
    by_acc = ramp_weight(0.98, 0.9)  # first optimizer until accuracy passes 0.9
    np.testing.assert_allclose(by_acc(jnp.array([0.5, 0.94, 0.99])), [1, 0.5, 0], atol=1e-6)
    np.testing.assert_allclose(paper_weight(jnp.array([0.0, 0.5, 1.0])), [1, 0, 1])


def test_observable_is_smoothed_and_transformed():
    tx = blend(
        optax.sgd(1.0), optax.sgd(2.0), ramp_weight(-1.0, 1.0), transform=jnp.log, smoothing=0.5
    )
    state = tx.init(PARAMS)
    _, state = tx.update(GRADS, state, PARAMS, value=jnp.float32(np.e))  # starts at ln e = 1
    assert float(state.observable) == pytest.approx(1.0)
    _, state = tx.update(GRADS, state, PARAMS, value=jnp.float32(np.exp(-1.0)))
    assert float(state.observable) == pytest.approx(0.0, abs=1e-6)  # 0.5 * 1 + 0.5 * -1
    assert float(state.weight) == pytest.approx(0.5)


def test_a_named_observable_and_a_missing_one():
    tx = blend(
        optax.sgd(1.0),
        optax.sgd(0.0),
        ramp_weight(0.98, 0.9),
        observable="train_accuracy",
        smoothing=0.0,
    )
    _, state = _update(tx, 0.5, "train_accuracy")
    assert float(state.weight) == 1.0
    with pytest.raises(ValueError, match="train_accuracy"):
        _update(tx, 0.5, "value")


def test_blends_wand_with_adamw_under_jit_and_vmap():
    def make(key):
        return blend(
            wand(3e-3, 0.5, 0.5, key=key),
            optax.adamw(3e-3, weight_decay=1.0),
            ramp_weight(-3.0, 0.0),
            transform=jnp.log,
        )

    def run(key):
        tx = make(key)
        params, state = PARAMS, tx.init(PARAMS)
        for _ in range(3):
            loss = 0.5 * jnp.sum(params["w"] ** 2)
            updates, state = tx.update(params, state, params, value=loss)
            params = optax.apply_updates(params, updates)
        return params["w"], state.weight

    keys = jax.vmap(jax.random.key)(jnp.arange(3))
    w, alpha = jax.jit(jax.vmap(run))(keys)
    assert w.shape == (3, 3) and bool(jnp.all(jnp.isfinite(w)))
    assert not np.allclose(w[0], w[1])  # WanD's noise differs per key
    assert bool(jnp.all((alpha >= 0) & (alpha <= 1)))
