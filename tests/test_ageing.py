import doctest
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import grokjax.problem.ageing
from grokjax.plots import ageing_curves_figure
from grokjax.problem.ageing import ageing_init, ageing_update, observables
from grokjax.problem.metrics import last_layer_norm, saturated_fraction
from grokjax.stats.ageing import (
    ageing_curves,
    ageing_index,
    ageing_table,
    relaxation_time,
    relaxation_times,
)

D = 200_000  # parameters of the synthetic walks
S = 0.01  # step size
WAITING_TIMES = (0, 10, 40, 100)


def _params(flat_N):
    # A pytree of several leaves and shapes, N = 200,000 in all.
    return {"a": flat_N[:100_000].reshape(400, 250), "b": {"c": flat_N[100_000:]}}


def _walk(key, n_steps, s, decay):
    """theta(t) = theta0 + sum_{k<=t} xi_k, xi_k ~ N(0, s^2 / k^decay), recorded each step."""
    init_key, loop_key = jax.random.split(key)
    params = _params(jax.random.normal(init_key, (D,)))
    state = ageing_init(params, WAITING_TIMES)

    def body(carry, step):
        params, state = carry
        noise_key = jax.random.fold_in(loop_key, step)
        scale = s / step.astype(jnp.float32) ** (decay / 2)
        params = jax.tree.map(
            lambda x, z: x + scale * z, params, _params(jax.random.normal(noise_key, (D,)))
        )
        state = ageing_update(state, params, step)
        return (params, state), observables(state, params)

    steps = jnp.arange(1, n_steps + 1, dtype=jnp.int32)
    (_, state), obs = jax.lax.scan(body, (params, state), steps)
    return state, obs


def _table(obs, n_steps):
    steps = np.arange(1, n_steps + 1)
    return ageing_table(steps, WAITING_TIMES, np.asarray(obs["msd"]), np.asarray(obs["overlap"]))


def test_random_walk_msd_is_linear_in_lag_for_every_waiting_time():
    n_steps = 150
    keys = jax.vmap(jax.random.key)(jnp.arange(2))
    walk = jax.jit(jax.vmap(lambda k: _walk(k, n_steps, S, decay=0.0)))
    state, obs = walk(keys)
    assert obs["msd"].shape == (2, n_steps, len(WAITING_TIMES))
    assert bool(state.taken.all())
    assert not np.allclose(state.snapshots[0, 1], state.snapshots[1, 1])  # distinct keys

    table = _table(obs, n_steps)
    assert set(table["member"]) == {0, 1}
    lag = table["step"] - table["t_w"]
    moved = table[lag > 0]
    np.testing.assert_allclose(moved["msd"], (lag[lag > 0]) * S**2, rtol=0.02)
    np.testing.assert_array_equal(table.loc[lag == 0, "msd"], 0.0)
    # Every (member, step >= t_w) row is there, nothing before t_w.
    assert len(table) == 2 * sum(n_steps - max(t_w, 1) + 1 for t_w in WAITING_TIMES)
    # No ageing. At equal lag the curves differ only by chi-square noise: ln MSD has
    # standard deviation sigma = sqrt(2 / (M D)) = 0.0022 per curve (members averaged),
    # the range of 4 such values is about 2 sigma = 0.005, and 0.02 is 9 sigma; the
    # ageing walk below gives about 2.
    assert ageing_index(table) < 0.02


def test_decaying_walk_ages_with_known_msd():
    n_steps = 300
    state, obs = jax.jit(lambda k: _walk(k, n_steps, 10 * S, decay=1.0))(jax.random.key(3))
    table = _table(obs, n_steps)
    moved = table[table["step"] > table["t_w"]]
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n_steps + 1))])  # H_t
    expected = (10 * S) ** 2 * (harmonic[moved["step"]] - harmonic[moved["t_w"]])
    np.testing.assert_allclose(moved["msd"], expected, rtol=0.02)
    # t_w = 0 moves by s^2 H_tau against about s^2 ln(1 + tau / 100) for t_w = 100: the
    # median range of ln MSD over the common lags 1..200 is about 2.
    assert ageing_index(table) > 0.5
    # The overlap relaxes more slowly the older the walk. With |theta0|^2 / N ~ 1,
    # C ~ (1 + MSD)^(-1/2) reaches 0.995 at MSD = 0.0101 (x 1.03 for the grown norm), so
    # H_t - H_tw ~ 1.05, t + 1/2 ~ e^1.05 (t_w + 1/2): simple ageing, tau_rel ~ 1.86 t_w.
    times = relaxation_times(table, level=0.995)
    assert times.index.tolist() == list(WAITING_TIMES)
    assert times.is_monotonic_increasing and np.isfinite(times).all()
    t_w = np.array([10.0, 40.0, 100.0])
    np.testing.assert_allclose(times.loc[t_w], (t_w + 0.5) * np.expm1(1.05), rtol=0.05)


def test_overlap_of_identical_and_orthogonal_snapshots():
    e1 = {"w": jnp.zeros(6).at[0].set(3.0), "b": jnp.zeros(2)}
    e2 = {"w": jnp.zeros(6).at[1].set(3.0), "b": jnp.zeros(2)}
    update = jax.jit(ageing_update)
    obs = jax.jit(observables)
    state = ageing_init(e1, (10, 0, 5))  # sorted inside
    np.testing.assert_array_equal(state.waiting_times, [0, 5, 10])
    np.testing.assert_array_equal(state.taken, [True, False, False])

    first = obs(state, e1)
    np.testing.assert_allclose(first["overlap"][0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(first["msd"][0], 0.0)
    assert np.isnan(first["overlap"][1:]).all() and np.isnan(first["msd"][1:]).all()

    for step in range(1, 6):
        state = update(state, e2, jnp.int32(step))
    later = obs(state, e2)
    np.testing.assert_allclose(later["overlap"][:2], [0.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(later["msd"][:2], [18.0 / 8, 0.0], rtol=1e-6)
    assert np.isnan(later["overlap"][2]) and np.isnan(later["msd"][2])

    state = update(state, e1, jnp.int32(6))  # not a waiting time: snapshots unchanged
    np.testing.assert_allclose(obs(state, e2)["overlap"][:2], [0.0, 1.0], atol=1e-7)


def test_update_keeps_shapes_and_does_not_retrace():
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(5, jnp.bfloat16)}
    state = ageing_init(params, (2, 7))
    update = jax.jit(chex.assert_max_traces(ageing_update, n=1))
    for step in range(4):
        new = update(state, params, jnp.int32(step))
        chex.assert_trees_all_equal_shapes_and_dtypes(new, state)
    assert state.snapshots.shape == (2, 17) and state.snapshots.dtype == jnp.float32


def test_init_rejects_repeated_waiting_times():
    with pytest.raises(ValueError, match="distinct"):
        ageing_init({"w": jnp.ones(3)}, (5, 5))


def test_relaxation_time_of_an_exponential():
    tau = np.arange(0, 60)
    assert relaxation_time(tau, np.exp(-tau / 10)) == pytest.approx(10.0, rel=0.02)
    log_tau = np.concatenate([[0.0], np.unique(np.round(np.geomspace(1, 1000, 50)))])
    shuffled = np.random.default_rng(0).permutation(log_tau.size)
    got = relaxation_time(log_tau[shuffled], np.exp(-log_tau / 10)[shuffled])
    assert got == pytest.approx(10.0, rel=0.02)
    # Without the tau = 0 sample the curve is anchored at C(0) = 1 all the same.
    assert relaxation_time(tau[1:], np.exp(-tau[1:] / 10)) == pytest.approx(10.0, rel=0.02)
    assert relaxation_time(tau, np.exp(-tau / 10), level=0.5) == pytest.approx(
        10 * math.log(2), rel=0.02
    )
    assert math.isnan(relaxation_time(tau[:6], np.exp(-tau[:6] / 10)))  # censored


def test_saturated_fraction_counts_exact_zeros_and_ones():
    logits = jnp.array(
        [
            [200.0, 0.0, 0.0, 0.0],  # p = (1, 0, 0, 0) exactly: 4 saturated
            [30.0, 0.0, 0.0, 0.0],  # p = (1, 9e-14, ...): only the 1 is exact
            [0.0, 0.0, 0.0, 0.0],  # p = 1/4: none
        ]
    )
    frac = jax.jit(saturated_fraction)(logits)
    assert frac.dtype == jnp.float32
    np.testing.assert_allclose(frac, 5 / 12, rtol=1e-6)
    relaxed = jnp.array([[10.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])  # p_other 4.5e-5
    np.testing.assert_allclose(saturated_fraction(relaxed, 1e-3), 4 / 8, rtol=1e-6)
    # bfloat16 logits are cast to float32 first: rows (200, 0, 0, 0) and (20, 0, 0, 0).
    np.testing.assert_allclose(saturated_fraction(relaxed.astype(jnp.bfloat16) * 20), 5 / 8)


def test_last_layer_norm_finds_the_leaf():
    params = {
        "embed": jnp.full((4, 3), 10.0),
        "blocks": [{"w": jnp.ones(5)}],
        "unembed": jnp.full((3, 4), 0.5),
    }
    np.testing.assert_allclose(jax.jit(last_layer_norm)(params), math.sqrt(12 * 0.25))
    flax_like = {"unembed": {"kernel": jnp.full((2, 2), 1.0), "bias": jnp.full(2, 2.0)}}
    np.testing.assert_allclose(last_layer_norm(flax_like), math.sqrt(4 + 8))
    np.testing.assert_allclose(last_layer_norm(params, "embed"), math.sqrt(12 * 100))
    with pytest.raises(KeyError, match="readout"):
        last_layer_norm(params, "readout")


def test_last_layer_norm_on_the_model(tiny_cfg):
    from grokjax.problem.models import make_model

    params = make_model(tiny_cfg.model, tiny_cfg.data.spec).init(jax.random.key(0))
    # Two float32 reductions over 384 squares, summed in orders that depend on the CPU:
    # 3.3e-7 apart measured; the bound for such a sum is 384 eps / 2 = 2.3e-5 (the sqrt
    # halves it). A wrong leaf or formula is off by far more.
    np.testing.assert_allclose(
        last_layer_norm(params), jnp.linalg.norm(params["unembed"].ravel()), rtol=1e-5
    )


def test_figure_is_written(tmp_path):
    steps = np.arange(0, 201)
    rows = [
        {"step": t, "t_w": t_w, "msd": (t - t_w) / (1 + t_w), "overlap": np.exp(-(t - t_w) / 20)}
        for t_w in (0, 10, 50)
        for t in steps
        if t >= t_w
    ]
    table = pd.DataFrame(rows)
    assert ageing_index(table) > 1.0  # MSD ~ tau / (1 + t_w): ages by design
    path = tmp_path / "ageing.png"
    ageing_curves_figure(ageing_curves(table), path, ageing_index(table))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["ageing.png"]  # no temporary left


def test_docstring_example():
    result = doctest.testmod(grokjax.problem.ageing, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
