"""The Langevin thermostat shared by WanD and WLMD (`grokjax.wanglandau.thermostat`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.wanglandau.thermostat import langevin_step, normal_like, thermal_velocity

KEY = jax.random.key(0)


def test_zero_force_keeps_the_velocity_variance_at_kT():
    """Started thermal, the velocity stays N(0, kT) step after step (stationarity)."""
    kT, c_f = 0.7, 0.3
    params = {"a": jnp.zeros((200, 250)), "b": jnp.zeros(50_000)}
    velocity = thermal_velocity(KEY, params, kT)
    zeros = jax.tree.map(jnp.zeros_like, params)

    def body(v, t):
        v = langevin_step(v, zeros, jax.random.fold_in(KEY, t), 1e-2, c_f, kT)
        return v, jnp.var(jnp.concatenate([x.ravel() for x in jax.tree.leaves(v)]))

    final, variances = jax.jit(lambda v: jax.lax.scan(body, v, jnp.arange(1, 41)))(velocity)
    np.testing.assert_allclose(variances, kT, rtol=0.02)
    flat = jnp.concatenate([x.ravel() for x in jax.tree.leaves(final)])
    assert abs(float(jnp.mean(flat))) < 0.01
    # From rest the variance relaxes onto kT as kT (1 - (1 - c_f)^(2t)).
    v = langevin_step(zeros, zeros, KEY, 1e-2, c_f, kT)
    np.testing.assert_allclose(float(jnp.var(v["b"])), kT * (1 - (1 - c_f) ** 2), rtol=0.03)


def test_one_step_is_the_formula_by_hand():
    v = {"p": jnp.array([1.0, -2.0]), "q": jnp.array([[0.5]])}
    a = {"p": jnp.array([3.0, 4.0]), "q": jnp.array([[-1.0]])}
    dt, c_f, kT = 0.1, 0.25, 2.0
    xi = normal_like(KEY, v)
    new = langevin_step(v, a, KEY, dt, c_f, kT)
    std = np.sqrt(0.25 * 1.75 * 2.0)
    for name in v:
        hand = 0.75 * np.asarray(v[name]) + 0.1 * np.asarray(a[name]) + std * np.asarray(xi[name])
        np.testing.assert_allclose(new[name], hand, rtol=1e-6)
    # Traced friction and temperature give the same step; kT = 0 is deterministic.
    traced = jax.jit(langevin_step)(v, a, KEY, dt, jnp.float32(c_f), jnp.float32(kT))
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6), traced, new)
    cold = langevin_step(v, a, KEY, dt, c_f, 0.0)
    np.testing.assert_allclose(cold["p"], [0.75 + 0.3, -1.5 + 0.4], rtol=1e-6)


def test_noise_is_one_standard_normal_per_leaf_from_a_split_key():
    tree = {"a": jnp.zeros((3, 2)), "b": jnp.zeros(5, jnp.bfloat16)}
    noise = normal_like(KEY, tree)
    k_a, k_b = jax.random.split(KEY, 2)
    np.testing.assert_array_equal(noise["a"], jax.random.normal(k_a, (3, 2)))
    np.testing.assert_array_equal(noise["b"], jax.random.normal(k_b, (5,), jnp.bfloat16))
    assert noise["b"].dtype == jnp.bfloat16


def test_thermal_velocity_is_N_0_kT_or_zeros():
    params = {"w": jnp.zeros(100_000)}
    v = thermal_velocity(KEY, params, 0.25)
    assert float(jnp.var(v["w"])) == pytest.approx(0.25, rel=0.02)
    rest = thermal_velocity(KEY, params, 0.25, thermal=False)
    np.testing.assert_array_equal(rest["w"], 0.0)
