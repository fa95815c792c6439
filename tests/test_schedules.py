import doctest

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import grokjax.optim.schedules
from grokjax.config import Config, Hparams
from grokjax.optim import make_optimizer, schedules
from grokjax.optim.baselines import langevin_noise, parameter_noise
from grokjax.optim.schedules import Trigger
from grokjax.optim.wand import wand

KEY = jax.random.key(0)
STEPS = jnp.arange(0, 3001, 7)


def test_docstring_examples_run():
    result = doctest.testmod(grokjax.optim.schedules, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("begin", [0.0, 250.0])
def test_each_shape_follows_its_formula(begin):
    v0, v1, n = 0.5, 0.02, 800.0
    tau = np.maximum(np.asarray(STEPS, np.float64) - begin, 0.0)
    expected = {
        "constant": np.full(tau.shape, v0),
        "exponential": v1 + (v0 - v1) * np.exp(-tau / n),
        "cosine": v1 + (v0 - v1) * 0.5 * (1 + np.cos(np.pi * np.minimum(tau, n) / n)),
        "linear": v0 + (v1 - v0) * np.minimum(tau / n, 1.0),
    }
    for shape, values in expected.items():
        got = jax.jit(jax.vmap(schedules.anneal(shape, v0, v1, n, begin)))(STEPS)
        np.testing.assert_allclose(got, values, rtol=1e-5, atol=1e-7, err_msg=shape)
    # the cosine and linear shapes reach the floor exactly, and stay there
    for shape in ("cosine", "linear"):
        np.testing.assert_allclose(
            schedules.anneal(shape, v0, v1, n, begin)(begin + n + 5), v1, rtol=1e-6
        )


def test_shapes_equal_optax_schedules_for_concrete_numbers():
    v0, v1, n, begin = 0.5, 0.02, 800, 100
    pairs = {
        "cosine": optax.cosine_decay_schedule(v0, n, alpha=v1 / v0),
        "linear": optax.linear_schedule(v0, v1, n),
        "exponential": lambda t: v1 + optax.exponential_decay(v0 - v1, n, np.exp(-1.0))(t),
    }
    for shape, theirs in pairs.items():
        ours = schedules.anneal(shape, v0, v1, n)
        np.testing.assert_allclose(jax.vmap(ours)(STEPS), jax.vmap(theirs)(STEPS), rtol=2e-5)
    shifted = optax.linear_schedule(v0, v1, n, transition_begin=begin)
    np.testing.assert_allclose(
        jax.vmap(schedules.anneal("linear", v0, v1, n, begin))(STEPS),
        jax.vmap(shifted)(STEPS),
        rtol=2e-5,
    )


def test_unknown_shape_and_signal_are_clear_errors():
    with pytest.raises(ValueError, match="shape='step'.*constant, exponential"):
        schedules.anneal("step", 1.0, 0.0, 10)
    with pytest.raises(ValueError, match="signal 'test_accuracy'.*train_accuracy"):
        schedules.clock_init(Trigger("test_accuracy", 0.9, 5))


def _clock_run(trigger, readings, name="train_accuracy"):
    """(fired, value read) after each update, for a schedule t -> t on the clock."""
    clock = schedules.clock_init(trigger)
    out = []
    for r in readings:
        out.append(int(schedules.read(lambda t: t, clock)))
        clock = schedules.tick(clock, trigger, {name: jnp.float32(r)})
    return out, int(clock.fired)


def test_trigger_fires_after_n_consecutive_updates_past_the_level():
    # accuracy: 0.995 twice, a dip (the run restarts), then three in a row past 0.99
    readings = [0.5, 0.995, 0.995, 0.98, 0.99, 0.999, 1.0, 1.0, 1.0, 1.0]
    read, fired = _clock_run(Trigger("train_accuracy", 0.99, 3), readings)
    # the third reading in a row past the level is update 7 (1-based): the clock starts
    # there, and the schedule reads 0 until then, then 0, 1, 2, ... on the updates after
    assert fired == 7
    assert read == [0, 0, 0, 0, 0, 0, 0, 0, 1, 2]
    # without a trigger the schedule reads the step count
    plain, fired = _clock_run(None, readings)
    assert plain == list(range(10)) and fired == 0


def test_loss_trigger_reads_ln_of_value_and_never_fires_above_the_level():
    losses = np.exp([-1.0, -2.5, -3.5, -4.0, -3.2, -5.0])
    _, fired = _clock_run(Trigger("train_loss", -3.0, 2), losses, name="value")
    assert fired == 4  # ln L <= -3 at updates 3 and 4
    _, never = _clock_run(Trigger("train_loss", -10.0, 1), losses, name="value")
    assert never == -1


def test_trigger_without_its_signal_is_a_clear_error():
    tx = parameter_noise(0.1, KEY, trigger=Trigger("train_accuracy", 0.9, 2))
    params = jnp.zeros(3)
    with pytest.raises(ValueError, match="train_accuracy=..."):
        tx.update(params, tx.init(params), params, value=jnp.float32(1.0))


def _quadratic(params):
    return 0.5 * jnp.sum(params["w"] ** 2) + 0.1


def _wand_updates(tx, params, n=5, accuracy=1.0):
    state = tx.init(params)
    out = []
    for _ in range(n):
        grads = jax.grad(_quadratic)(params)
        updates, state = tx.update(
            grads, state, params, value=_quadratic(params), train_accuracy=jnp.float32(accuracy)
        )
        params = optax.apply_updates(params, updates)
        out.append(updates)
    return out, state


def test_scheduled_wand_under_vmap_gives_each_member_its_schedule():
    params = {"w": jnp.linspace(-1.0, 1.0, 64)}
    starts, finals = jnp.array([0.5, 0.5, 0.2]), jnp.array([0.0, 0.3, 0.2])

    def member(start, final, key):
        kT = schedules.anneal("cosine", start, final, 4.0)
        return _wand_updates(wand(3e-3, kT, 0.5, key=key), params)[0][-1]["w"]

    keys = jnp.stack([KEY] * 3)  # one noise stream: members differ by their schedules only
    together = jax.jit(jax.vmap(member))(starts, finals, keys)
    for i in range(3):
        alone = jax.jit(member)(starts[i], finals[i], keys[i])
        np.testing.assert_allclose(together[i], alone, rtol=1e-6, atol=1e-9)
    # members 0 and 1 start alike and part as their floors differ
    assert float(jnp.max(jnp.abs(together[0] - together[1]))) > 1e-4


def test_scheduled_wand_equals_the_plain_transform_at_each_steps_value():
    # A schedule read at step t gives the update a constant kT(t) gives at that step.
    params = {"w": jnp.linspace(-1.0, 1.0, 6)}
    kT = schedules.anneal("exponential", 0.5, 0.05, 2.0)
    scheduled, _ = _wand_updates(wand(3e-3, kT, 0.4, key=KEY), params, n=1)
    plain, _ = _wand_updates(wand(3e-3, 0.5, 0.4, key=KEY), params, n=1)
    chex.assert_trees_all_close(scheduled[0], plain[0], rtol=1e-6)


def test_inject_hyperparams_and_chains_equal_the_scheduled_transform():
    params = {"w": jnp.linspace(-1.0, 1.0, 6)}
    kT = schedules.anneal("cosine", 0.5, 0.05, 3.0)
    c_f = schedules.anneal("linear", 0.5, 0.9, 3.0)
    plain, _ = _wand_updates(wand(3e-3, kT, c_f, key=KEY), params)
    injected, _ = _wand_updates(
        optax.inject_hyperparams(wand, static_args=("key",))(
            learning_rate=3e-3, temperature=kT, friction=c_f, key=KEY
        ),
        params,
    )
    chained, _ = _wand_updates(
        optax.chain(optax.clip_by_global_norm(1e9), wand(3e-3, kT, c_f, key=KEY)), params
    )
    for other in (injected, chained):
        chex.assert_trees_all_close(other, plain, rtol=1e-5, atol=1e-9)


def test_triggered_wand_holds_its_temperature_until_the_trigger_fires():
    params = {"w": jnp.linspace(-1.0, 1.0, 6)}
    kT = schedules.anneal("linear", 0.5, 0.0, 1.0)  # reaches 0 one step after its clock starts
    never = Trigger("train_accuracy", 2.0, 1)  # an accuracy never reaches 2
    held, state = _wand_updates(wand(3e-3, kT, 0.4, key=KEY, trigger=never), params, n=4)
    constant, _ = _wand_updates(wand(3e-3, 0.5, 0.4, key=KEY), params, n=4)
    chex.assert_trees_all_close(held, constant, rtol=1e-6)
    assert int(state[0].clock.fired) == -1
    fires = Trigger("train_accuracy", 0.9, 1)
    _, state = _wand_updates(wand(3e-3, kT, 0.4, key=KEY, trigger=fires), params, n=4)
    assert int(state[0].clock.fired) == 1


def test_langevin_noise_temperature_schedule_sets_the_variance():
    zeros = jnp.zeros(40_000)
    kT = schedules.anneal("linear", 1.0, 0.25, 2.0)
    tx = langevin_noise(0.1, kT, KEY)
    state = tx.init(zeros)
    stds = []
    for _ in range(3):
        out, state = tx.update(zeros, state)
        stds.append(float(jnp.std(out)))
    np.testing.assert_allclose(stds, np.sqrt(2 * 0.1 * np.array([1.0, 0.625, 0.25])), rtol=0.03)


def test_config_builds_each_members_schedule_from_hparams():
    params = {"w": jnp.zeros(20_000)}
    keys = jax.random.split(KEY, 2)
    # WanD's thermal initial velocity is drawn at each member's own kT(0)
    cfg = Config(**{"optim.name": "wand", "optim.anneal.temperature": "cosine"})
    hp = Hparams(temperature=jnp.array([0.5, 0.08]), temperature_final=0.01, anneal_steps=2.0)

    def velocity_std(hparams, key):
        state = make_optimizer(cfg.optim, hparams, key).init(params)
        return jnp.std(state[0].velocity["w"])

    stds = jax.jit(jax.vmap(velocity_std, in_axes=(hp.axes(), 0)))(hp, keys)
    np.testing.assert_allclose(stds, np.sqrt([0.5, 0.08]), rtol=0.03)
    # the plain noise after AdamW: zero gradients and parameters leave only the noise,
    # whose std follows each member's linear warm-down over 2 steps
    cfg = Config(**{"optim.noise": "gaussian", "optim.anneal.noise": "linear"})
    hp = Hparams(noise_scale=jnp.array([0.0, 1e-2]), noise_final=0.0, anneal_steps=2.0)

    def noise_stds(hparams, key):
        tx = make_optimizer(cfg.optim, hparams, key)
        state, out = tx.init(params), []
        for _ in range(3):
            updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
            out.append(jnp.std(updates["w"]))
        return jnp.stack(out)

    stds = jax.jit(jax.vmap(noise_stds, in_axes=(hp.axes(), 0)))(hp, keys)
    np.testing.assert_array_equal(stds[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(stds[1, :2], [1e-2, 5e-3], rtol=0.03)
    assert float(stds[1, 2]) == 0.0
