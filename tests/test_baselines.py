import doctest
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import grokjax.optim.baselines
from grokjax.optim.baselines import (
    grokfast_ema,
    grokfast_ma,
    langevin_noise,
    orthogonal_gradient,
    parameter_noise,
    stablemax_cross_entropy,
)

KEY = jax.random.key(0)


def _run(tx, grads_seq, params):
    """The updates of `tx` for a sequence of gradients, under jit."""
    state = tx.init(params)
    step = jax.jit(tx.update)
    out = []
    for g in grads_seq:
        u, state = step(g, state, params)
        out.append(u)
    return out


def test_docstring_examples_run():
    result = doctest.testmod(grokjax.optim.baselines, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --- hand-computed cases ---------------------------------------------------------------


def test_grokfast_ema_two_steps_by_hand():
    # alpha 0.5, lamb 2. mu starts at the first gradient:
    # step 1: mu = 0.5 [1, -2] + 0.5 [1, -2] = [1, -2];  out = [1, -2] + 2 [1, -2] = [3, -6]
    # step 2: mu = 0.5 [1, -2] + 0.5 [3, 0] = [2, -1];   out = [3, 0] + 2 [2, -1] = [7, -2]
    grads = [jnp.array([1.0, -2.0]), jnp.array([3.0, 0.0])]
    out = _run(grokfast_ema(0.5, 2.0), grads, jnp.zeros(2))
    np.testing.assert_array_equal(out[0], [3.0, -6.0])
    np.testing.assert_array_equal(out[1], [7.0, -2.0])


def test_grokfast_ma_window_two_over_three_steps_by_hand():
    # window 2, lamb 2.
    # step 1: buffer holds one gradient, not full: out = g = [1, 2]
    # step 2: mean([1, 2], [3, -2]) = [2, 0];  out = [3, -2] + 2 [2, 0] = [7, -2]
    # step 3: mean([3, -2], [5, 0]) = [4, -1]; out = [5, 0] + 2 [4, -1] = [13, -2]
    grads = [jnp.array([1.0, 2.0]), jnp.array([3.0, -2.0]), jnp.array([5.0, 0.0])]
    out = _run(grokfast_ma(2, 2.0), grads, jnp.zeros(2))
    np.testing.assert_array_equal(out[0], [1.0, 2.0])
    np.testing.assert_array_equal(out[1], [7.0, -2.0])
    np.testing.assert_array_equal(out[2], [13.0, -2.0])


def test_grokfast_ma_rejects_a_bad_window():
    with pytest.raises(ValueError, match="grokfast_ma"):
        grokfast_ma(0)


def test_orthogonal_gradient_by_hand_and_per_tensor():
    # a: w = [1, 0], g = [1, 1]: g.w / w.w = 1, g_perp = [0, 1], rescaled to |g| = sqrt 2.
    # b: w = 0 (a fresh bias): nothing to remove, g unchanged.
    # c: w = [3, 4], g = [4, 3]: g.w / w.w = 24 / 25, g_perp = [4 - 72/25, 3 - 96/25]
    #    = [1.12, -0.84] (norm 1.4), rescaled to |g| = 5: [4, -3].
    params = {"a": jnp.array([1.0, 0.0]), "b": jnp.zeros(3), "c": jnp.array([3.0, 4.0])}
    grads = {
        "a": jnp.array([1.0, 1.0]),
        "b": jnp.array([1.0, -2.0, 0.5]),
        "c": jnp.array([4.0, 3.0]),
    }
    (out,) = _run(orthogonal_gradient(), [grads], params)
    np.testing.assert_allclose(out["a"], [0.0, np.sqrt(2.0)], atol=1e-7)
    np.testing.assert_array_equal(out["b"], grads["b"])
    np.testing.assert_allclose(out["c"], [4.0, -3.0], rtol=1e-5)


def test_orthogonal_gradient_needs_params():
    tx = orthogonal_gradient()
    with pytest.raises(ValueError, match="orthogonal_gradient"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


def test_stablemax_cross_entropy_by_hand():
    # logits [2, 0, -1]: s = [3, 1, 1/2], sum 9/2, p = [2/3, 2/9, 1/9].
    # label 0: -log(2/3) = log 1.5; label 2: -log(1/9) = log 9; mean = log(13.5) / 2.
    logits = jnp.array([[2.0, 0.0, -1.0], [2.0, 0.0, -1.0]])
    loss = jax.jit(stablemax_cross_entropy)(logits, jnp.array([0, 2]))
    np.testing.assert_allclose(loss, np.log(13.5) / 2, rtol=1e-6)
    # d(-log p_0)/dx_j = s'(x_j) / sum s - [j = 0] s'(x_0) / s_0, s' = [1, 1, 1/(1-x)^2 = 1/4]:
    # [2/9 - 1/3, 2/9, (1/4)(2/9)] = [-1/9, 2/9, 1/18].
    grad = jax.jit(jax.grad(stablemax_cross_entropy))(logits[:1], jnp.array([0]))
    np.testing.assert_allclose(grad[0], [-1 / 9, 2 / 9, 1 / 18], rtol=1e-5)


def test_stablemax_matches_its_definition_in_float64():
    logits = jax.random.normal(KEY, (16, 7)) * 5.0
    labels = jax.random.randint(jax.random.key(1), (16,), 0, 7)
    x = np.asarray(logits, np.float64)
    s = np.where(x >= 0, x + 1.0, 1.0 / (1.0 - np.minimum(x, 0.0)))
    expected = -np.mean(np.log(s[np.arange(16), labels] / s.sum(-1)))
    np.testing.assert_allclose(stablemax_cross_entropy(logits, labels), expected, rtol=1e-5)


def test_stablemax_value_and_gradient_finite_at_extreme_logits():
    logits = jnp.array([[1e30, -1e30, 0.0], [-1e4, 1e4, 3.0], [-3e38, 3e38, -1e-30]])
    labels = jnp.array([1, 0, 2])
    loss, grad = jax.jit(jax.value_and_grad(stablemax_cross_entropy))(logits, labels)
    chex.assert_tree_all_finite((loss, grad))
    # Per row, -log p_y = log(sum s / s_y), in float64:
    # row 1: s = [1e30 + 1, 1/(1 + 1e30), 1]            -> log((1e30 + 2)(1e30 + 1)) = 138.16
    # row 2: s = [1/(1 + 1e4), 1e4 + 1, 4]               -> log(10005.0001 * 10001) = 18.42
    # row 3: s = [1/(1 + 3e38), 3e38 + 1, 1/(1 + 1e-30)] -> log(3e38 + 2) = 88.59
    x = np.asarray(logits, np.float64)
    s = np.where(x >= 0, x + 1.0, 1.0 / (1.0 - np.minimum(x, 0.0)))
    expected = np.log(s.sum(-1) / s[np.arange(3), labels]).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(expected, (138.155 + 18.42 + 88.59) / 3, rtol=1e-4)


def test_langevin_zero_temperature_leaves_the_update_unchanged():
    updates = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.array([-1.0, 2.0])}
    tx = langevin_noise(0.1, 0.0, KEY)
    (out,) = _run(tx, [updates], updates)
    chex.assert_trees_all_equal(out, updates)


def test_langevin_noise_variance_is_2_lr_T():
    lr, temperature = 0.01, 0.5  # 2 lr T = 0.01
    zeros = {"a": jnp.zeros((200, 250)), "b": jnp.zeros(50_000)}  # 100k parameters
    (out,) = _run(langevin_noise(lr, temperature, KEY), [zeros], zeros)
    noise = jnp.concatenate([x.ravel() for x in jax.tree.leaves(out)])
    assert abs(float(jnp.var(noise)) / (2 * lr * temperature) - 1.0) < 0.02
    assert abs(float(jnp.mean(noise))) < 0.01 * np.sqrt(2 * lr * temperature)
    # A schedule is read at the step count: a constant schedule gives the same noise.
    (scheduled,) = _run(
        langevin_noise(optax.constant_schedule(lr), temperature, KEY), [zeros], zeros
    )
    chex.assert_trees_all_equal(scheduled, out)


def test_langevin_same_key_same_noise_new_step_new_noise():
    zeros = jnp.zeros(1000)
    a = _run(langevin_noise(0.1, 1.0, KEY), [zeros, zeros], zeros)
    b = _run(langevin_noise(0.1, 1.0, KEY), [zeros, zeros], zeros)
    chex.assert_trees_all_equal(a, b)
    assert float(jnp.max(jnp.abs(a[0] - a[1]))) > 0.1


def test_parameter_noise_has_std_sigma_after_any_update():
    updates = jnp.full(20_000, 0.25)
    (out,) = _run(parameter_noise(0.01, KEY), [updates], updates)
    np.testing.assert_allclose(float(jnp.mean(out)), 0.25, atol=4 * 0.01 / np.sqrt(20_000))
    np.testing.assert_allclose(float(jnp.std(out)), 0.01, rtol=0.03)
    (same,) = _run(parameter_noise(0.0, KEY), [updates], updates)
    np.testing.assert_array_equal(same, updates)


def test_langevin_member_keys_under_vmap_give_different_noise():
    zeros = jnp.zeros(1000)

    def noise(key):
        tx = langevin_noise(0.1, 1.0, key)
        return tx.update(zeros, tx.init(zeros))[0]

    keys = jax.random.split(KEY, 3)
    out = jax.jit(jax.vmap(noise))(keys)
    for i in range(3):
        np.testing.assert_allclose(out[i], noise(keys[i]), rtol=1e-6)
        for j in range(i):
            assert float(jnp.max(jnp.abs(out[i] - out[j]))) > 0.1


# --- the shared battery: one row per transformation ------------------------------------


class Row(NamedTuple):
    """A factory, its static arguments, two members' numbers, and its place in a chain."""

    factory: Callable[..., optax.GradientTransformation]
    members: dict[str, jax.Array]
    static: dict[str, Any] = {}
    takes_key: bool = False
    last: bool = False  # after the optimizer (noise) rather than before (filters)
    reached: float = 0.01  # the final / initial quadratic loss it must reach in 200 steps

    def kwargs(self, hp, key):
        return {**self.static, **hp, **({"key": key} if self.takes_key else {})}

    def make(self, hp, key):
        return self.factory(**self.kwargs(hp, key))

    def member(self, i):
        return {k: v[i] for k, v in self.members.items()}

    def chain(self, hp, key, optimizer):
        tx = self.make(hp, key)
        return optax.chain(optimizer, tx) if self.last else optax.chain(tx, optimizer)


ROWS = {
    "grokfast_ema": Row(
        grokfast_ema, {"alpha": jnp.array([0.9, 0.98]), "lamb": jnp.array([1.0, 2.0])}
    ),
    "grokfast_ma": Row(grokfast_ma, {"lamb": jnp.array([2.0, 5.0])}, static={"window": 3}),
    # eps = 1 is far from the default, but it makes the two members' updates differ.
    # With Adam after it, each step has a radial part (Adam scales per coordinate) that
    # the projection never undoes, so tensor norms drift off the target's and the loss
    # stalls near 3 % of its start (SGD at lr 0.04 after it reaches about 0.1 %).
    "orthogonal_gradient": Row(orthogonal_gradient, {"eps": jnp.array([1e-15, 1.0])}, reached=0.1),
    "langevin_noise": Row(
        langevin_noise,
        {"learning_rate": jnp.array([0.05, 0.02]), "temperature": jnp.array([1e-6, 1e-5])},
        takes_key=True,
        last=True,
    ),
    "parameter_noise": Row(
        parameter_noise, {"scale": jnp.array([1e-4, 1e-3])}, takes_key=True, last=True
    ),
}
BATTERY = pytest.mark.parametrize("name", list(ROWS))


def _params(key, dtype=jnp.float32):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "dense": {
            "w": jax.random.normal(k1, (3, 4), dtype),
            "b": jax.random.normal(k2, (4,), dtype),
        },
        "out": (jax.random.normal(k3, (5,), dtype),),
    }


def _steps(tx, params, grads, n=4):
    """The n-th update for n equal gradients (the caller jits or vmaps this)."""
    state = tx.init(params)
    for _ in range(n):
        updates, state = tx.update(grads, state, params)
    return updates, state


@BATTERY
def test_battery_jit_keeps_structure_and_dtypes_without_retracing(name):
    row = ROWS[name]
    params = _params(KEY)
    params["half"] = jnp.ones(3, jnp.bfloat16) * 0.5
    grads = jax.tree.map(lambda p: (0.1 * p + 0.2).astype(p.dtype), params)
    tx = row.make({k: float(v[0]) for k, v in row.members.items()}, KEY)
    chex.clear_trace_counter()  # the two noise rows share one update function
    state = jax.jit(tx.init)(params)
    update = jax.jit(chex.assert_max_traces(tx.update, n=1))
    updates, new_state = update(grads, state, params)
    updates, newer_state = update(grads, new_state, params)  # no second trace
    chex.assert_trees_all_equal_structs(updates, params)
    chex.assert_trees_all_equal_dtypes(updates, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
    chex.assert_trees_all_equal_shapes_and_dtypes(newer_state, state)
    chex.assert_tree_all_finite(updates)


@BATTERY
def test_battery_vmap_over_members_equals_separate_calls(name):
    row = ROWS[name]
    params = _params(KEY)
    grads = jax.tree.map(lambda p: jnp.sin(p) + 0.3, params)
    keys = jax.random.split(jax.random.key(1), 2)

    def member(hp, key):
        return _steps(row.make(hp, key), params, grads)[0]

    together = jax.jit(jax.vmap(member))(row.members, keys)
    for i in range(2):
        alone = jax.jit(member)(row.member(i), keys[i])
        chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], together), alone, rtol=1e-6)
    # The members' numbers differ, so their updates do.
    diffs = jax.tree.map(lambda x: jnp.max(jnp.abs(x[0] - x[1])), together)
    assert max(float(d) for d in jax.tree.leaves(diffs)) > 1e-4


@BATTERY
def test_battery_same_result_under_inject_hyperparams(name):
    row = ROWS[name]
    params = _params(KEY)
    grads = jax.tree.map(lambda p: jnp.cos(p), params)
    hp = row.member(1)
    inject = optax.inject_hyperparams(row.factory, static_args=tuple(row.static))
    injected = inject(**row.kwargs(hp, KEY))
    expected = jax.jit(lambda: _steps(row.make(hp, KEY), params, grads)[0])()
    chex.assert_trees_all_close(jax.jit(lambda: _steps(injected, params, grads)[0])(), expected)


@BATTERY
def test_battery_chain_with_adam_minimises_a_quadratic(name):
    # loss = sum (x - c)^2 with c the flipped x0, which has x0's norm in every tensor:
    # the orthogonal gradient, which cannot change a tensor's norm to first order,
    # could never lower sum x^2, but can rotate each tensor onto c.
    row = ROWS[name]
    x0 = _params(KEY)
    target = jax.tree.map(jnp.flip, x0)

    def loss(params):
        return sum(
            jax.tree.leaves(jax.tree.map(lambda p, c: jnp.sum((p - c) ** 2), params, target))
        )

    tx = row.chain(row.member(0), KEY, optax.adam(0.05))

    def body(carry, _):
        params, state = carry
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return (optax.apply_updates(params, updates), state), None

    (final, _), _ = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), length=200))(x0)
    assert float(loss(final)) < row.reached * float(loss(x0)), (loss(x0), loss(final))
