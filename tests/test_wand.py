import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from grokjax.optim.wand import scale_by_wand, wand
from grokjax.wanglandau.entropy import Grid, gaussian_kernel, quadratic_bias, wang_landau_rate

KEY = jax.random.key(0)


def _quadratic(params):
    return 0.5 * sum(jnp.sum(p**2) for p in jax.tree.leaves(params))


def test_zero_gradient_velocity_variance_converges_to_kT():
    kT = 0.7
    tx = scale_by_wand(1e-3, kT, 0.3, key=KEY, thermal_init=False)
    params = {"a": jnp.zeros((200, 250)), "b": jnp.zeros(50_000)}
    state = tx.init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)

    def body(state, _):
        _, state = tx.update(zeros, state, params, value=jnp.float32(1.0))
        return state, None

    state, _ = jax.jit(lambda s: jax.lax.scan(body, s, length=60))(state)
    v = jnp.concatenate([x.ravel() for x in jax.tree.leaves(state.velocity)])
    assert abs(float(jnp.var(v)) / kT - 1.0) < 0.03
    assert abs(float(jnp.mean(v))) < 0.01


def test_each_deposit_adds_exactly_f_t_to_the_entropy():
    tx = scale_by_wand(1e-3, 0.5, 0.5, key=KEY, deposit=3.0, t_wl=10.0)
    params = {"w": jnp.ones(4)}
    state = tx.init(params)
    update = jax.jit(lambda s, v: tx.update({"w": jnp.ones(4)}, s, params, value=v))
    for t in range(1, 25):
        _, new = update(state, jnp.float32(np.exp(-3.0 + 0.1 * t)))
        added = float(jnp.sum(new.deposits - state.deposits))
        np.testing.assert_allclose(added, float(wang_landau_rate(t, 3.0, 10.0)), rtol=1e-4)
        state = new


def test_rate_ramps_then_decays_as_one_over_t():
    np.testing.assert_allclose(wang_landau_rate(5, 3.0, 10.0), 1.5)
    np.testing.assert_allclose(wang_landau_rate(10, 3.0, 10.0), 3.0)
    np.testing.assert_allclose(wang_landau_rate(40, 3.0, 10.0), 0.75)


def test_kernel_sums_to_one_and_is_cut_at_four_sigma():
    grid = Grid()
    k = gaussian_kernel(grid, jnp.int32(700), 10.0)
    np.testing.assert_allclose(float(k.sum()), 1.0, rtol=1e-6)
    assert float(k[700 - 41]) == 0.0 and float(k[700 - 40]) > 0.0
    assert int(jnp.argmax(k)) == 700


def test_bias_is_zero_below_the_floor_and_quadratic_above():
    grid = Grid()
    bias = quadratic_bias(grid, 3000.0, -8.0)
    below = grid.centres < -8.0
    assert float(jnp.abs(bias[below]).max()) == 0.0
    x = grid.centres[~below]
    np.testing.assert_allclose(bias[~below], 3000.0 * (x + 8.0) ** 2, rtol=1e-5)


def test_bias_gradient_pushes_toward_lower_loss():
    """Without noise, one step from rest lowers a quadratic loss above the floor."""
    tx = wand(1e-3, 0.0, 0.5, key=KEY, thermal_init=False, bias_strength=10.0)
    params = {"w": jnp.full(10, 0.5)}
    loss = _quadratic(params)
    state = tx.init(params)
    updates, _ = tx.update(jax.grad(_quadratic)(params), state, params, value=loss)
    new = optax.apply_updates(params, updates)
    assert float(_quadratic(new)) < float(loss)


def test_wand_minimises_a_quadratic_inside_scan():
    tx = wand(2e-2, 1e-8, 0.5, key=KEY, bias_strength=1.0, loss_floor=-6.0, deposit=0.0)
    params = {"w": jnp.linspace(-2.0, 2.0, 16)}

    def body(carry, _):
        params, state = carry
        loss, grads = jax.value_and_grad(_quadratic)(params)
        updates, state = tx.update(grads, state, params, value=loss)
        return (optax.apply_updates(params, updates), state), loss

    (final, _), losses = jax.jit(lambda c: jax.lax.scan(body, c, length=3000))(
        (params, tx.init(params))
    )
    # The bias drives ln L down to about its floor (-6) and the walker stays there.
    assert float(_quadratic(final)) < 1e-3 * float(losses[0])
    assert float(losses.max()) <= float(losses[0])


def test_same_key_bit_identical_and_vmapped_seeds_differ():
    params = {"w": jnp.ones(8)}
    grads = {"w": jnp.full(8, 0.1)}

    def one(key):
        tx = wand(1e-3, 0.5, 0.5, key=key)
        updates, state = tx.update(grads, tx.init(params), params, value=jnp.float32(0.5))
        return updates["w"]

    a, b = jax.jit(one)(KEY), jax.jit(one)(KEY)
    np.testing.assert_array_equal(a, b)
    many = jax.jit(jax.vmap(one))(jax.random.split(KEY, 4))
    assert len({tuple(np.asarray(r).round(7)) for r in many}) == 4


def test_chain_and_inject_hyperparams_match_the_plain_transform():
    params = {"w": jnp.linspace(-1.0, 1.0, 6)}
    grads = jax.grad(_quadratic)(params)
    loss = _quadratic(params)
    plain = wand(3e-3, 0.5, 0.4, key=KEY)
    injected = optax.inject_hyperparams(wand, static_args=("key",))(
        learning_rate=3e-3, temperature=0.5, friction=0.4, key=KEY
    )
    chained = optax.chain(optax.clip_by_global_norm(1e9), wand(3e-3, 0.5, 0.4, key=KEY))
    outs = []
    for tx in (plain, injected, chained):
        updates, _ = tx.update(grads, tx.init(params), params, value=loss)
        outs.append(updates)
    chex.assert_trees_all_close(outs[1], outs[0], rtol=1e-6)
    chex.assert_trees_all_close(outs[2], outs[0], rtol=1e-6)


def test_no_recompile_and_stable_state_shapes():
    params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
    tx = wand(1e-3, 0.5, 0.5, key=KEY)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, loss):
        return tx.update(jax.tree.map(jnp.ones_like, params), state, params, value=loss)

    state = tx.init(params)
    _, new = step(state, jnp.float32(1.0))
    _, newer = step(new, jnp.float32(0.5))
    chex.assert_trees_all_equal_shapes_and_dtypes(state, new, newer)


def test_missing_loss_is_a_clear_error():
    tx = scale_by_wand(1e-3, 0.5, 0.5, key=KEY)
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="value=loss"):
        tx.update(params, tx.init(params), params)


@pytest.mark.parametrize("cap", ["slope_cap", "force_cap"])
def test_caps_bound_the_entropy_force(cap):
    """A cap shrinks the first kick from rest (no noise) but keeps its direction."""
    params = {"w": jnp.full(10, 2.0)}
    grads = jax.grad(_quadratic)(params)
    loss = _quadratic(params)

    def kick(**caps):
        tx = scale_by_wand(1e-2, 0.0, 1.0, key=KEY, thermal_init=False, **caps)
        velocity, _ = tx.update(grads, tx.init(params), params, value=loss)
        return velocity["w"]

    free = kick()
    capped = kick(**{cap: 1.0})
    assert float(jnp.linalg.norm(capped)) < float(jnp.linalg.norm(free))
    cosine = jnp.dot(capped, free) / (jnp.linalg.norm(capped) * jnp.linalg.norm(free))
    np.testing.assert_allclose(float(cosine), 1.0, rtol=1e-5)
    if cap == "force_cap":  # |v| = |a| dt with c_f = 1 from rest
        np.testing.assert_allclose(float(jnp.linalg.norm(capped)), 1.0 * 1e-2, rtol=1e-4)


def test_zero_loss_from_softmax_collapse_gives_a_finite_update():
    tx = wand(3e-3, 0.5, 0.5, key=KEY)
    params = {"w": jnp.ones(5)}
    grads = {"w": jnp.full(5, 1e-12)}  # float32 loss rounded to 0, gradient not quite
    updates, state = tx.update(grads, tx.init(params), params, value=jnp.float32(0.0))
    chex.assert_tree_all_finite(updates)
    wand_state = state[0]  # the chain's first member is scale_by_wand's state
    chex.assert_tree_all_finite((wand_state.velocity, wand_state.deposits))


def test_loss_force_ablation_is_a_constant_times_the_loss_gradient():
    """force="loss": from rest without noise, v = -scale grad(L) dt whatever L is."""
    params = {"w": jnp.array([1.0, -2.0, 0.5])}
    grads = jax.grad(_quadratic)(params)
    tx = scale_by_wand(
        1e-2, 0.0, 1.0, key=KEY, thermal_init=False, force="loss", loss_force_scale=7.0
    )
    for loss in (0.01, 3.0):
        velocity, _ = tx.update(grads, tx.init(params), params, value=jnp.float32(loss))
        np.testing.assert_allclose(velocity["w"], -7.0 * grads["w"] * 1e-2, rtol=1e-5)
    with pytest.raises(ValueError, match="force"):
        scale_by_wand(1e-2, 0.0, 1.0, key=KEY, force="gradient")


def test_at_the_lower_edge_wand_deposits_the_mirrored_kernel():
    """A loss at or below exp(x_min) (here ln exp(-0.98) rounds below -0.98 in float32)
    is a walker in the first bin: it deposits f(t), with the kernel's tail beyond the
    edge folded back onto the first bins, and the deposit counts."""
    grid, sigma = Grid(x_min=-0.98, bin_width=0.1, n_bins=40), 2.0
    tx = scale_by_wand(1e-3, 0.5, 0.5, key=KEY, grid=grid, sigma_bins=sigma, deposit=3.0, t_wl=10.0)
    params = {"w": jnp.ones(4)}
    d = np.arange(-8, 9)  # the kernel is cut at 4 sigma = 8 bins
    bump = np.exp(-0.5 * (d / sigma) ** 2) / np.exp(-0.5 * (d / sigma) ** 2).sum()
    expected = np.zeros(grid.n_bins)
    np.add.at(expected, np.where(d < 0, -1 - d, d), bump)  # bin -1 - k folds onto bin k
    for loss in (0.0, 1e-6, float(jnp.exp(jnp.float32(grid.x_min)))):
        state = tx.init(params)
        _, new = tx.update({"w": jnp.ones(4)}, state, params, value=jnp.float32(loss))
        rate = float(wang_landau_rate(1, 3.0, 10.0))
        np.testing.assert_allclose(float(new.deposits.sum()), rate, rtol=1e-5)
        np.testing.assert_allclose(new.deposits, rate * expected, rtol=1e-5, atol=1e-9)
        assert float(new.deposits[0]) > float(rate * gaussian_kernel(grid, jnp.int32(0), sigma)[0])
        assert int(new.count) == int(new.n_deposits) == 1


def test_above_the_grid_wand_deposits_nothing_and_the_soft_wall_pulls_back():
    """Above x_max: no deposit (the deposit count stands still, the step count moves), the
    force is edge_strength (x - x_max) grad(ln L), and the next step draws fresh noise."""
    grid = Grid(x_min=-3.0, bin_width=0.1, n_bins=30)  # x_max = 0
    loss, grads = jnp.float32(np.exp(0.5)), {"w": jnp.array([1.0, -2.0, 0.5])}
    tx = scale_by_wand(
        1e-2,
        0.0,
        1.0,
        key=KEY,
        grid=grid,
        thermal_init=False,
        bias_strength=0.0,
        edge_strength=40.0,
    )
    params = {"w": jnp.ones(3)}
    velocity, state = tx.update(grads, tx.init(params), params, value=loss)
    assert float(state.deposits.sum()) == 0.0 and int(state.n_deposits) == 0
    assert int(state.count) == 1
    wall = 40.0 * (float(jnp.log(loss)) - grid.x_max)
    np.testing.assert_allclose(velocity["w"], -wall * grads["w"] / float(loss) * 1e-2, rtol=1e-5)
    hot = scale_by_wand(1e-2, 0.5, 0.5, key=KEY, grid=grid, thermal_init=False)
    zeros = {"w": jnp.zeros(3)}
    v1, s1 = hot.update(zeros, hot.init(params), params, value=loss)
    v2, s2 = hot.update(zeros, s1._replace(velocity=zeros), params, value=loss)
    assert (int(s2.n_deposits), int(s2.count)) == (0, 2)
    assert not np.allclose(v1["w"], v2["w"])  # the off-grid steps do not repeat the noise


def test_one_transform_built_outside_vmap_gives_each_member_its_own_noise():
    tx = wand(1e-3, 0.5, 0.5, key=7)  # an int seed, built once, as optax's noise takes one
    zeros = {"w": jnp.zeros(5)}

    def one(params):
        updates, _ = tx.update(zeros, tx.init(params), params, value=jnp.float32(0.5))
        return updates["w"]

    members = jax.vmap(lambda k: {"w": jax.random.normal(k, (5,))})(jax.random.split(KEY, 4))
    noise = jax.jit(jax.vmap(one))(members)
    assert len({tuple(np.asarray(r).round(7)) for r in noise}) == 4
    # members that start from equal parameters share their noise (common random numbers)
    same = jax.jit(jax.vmap(one))({"w": jnp.ones((3, 5))})
    np.testing.assert_array_equal(same[0], same[1])
    # per_member=False: the key alone decides (the trainer's keys are each member's own)
    fixed = wand(1e-3, 0.5, 0.5, key=KEY, per_member=False)

    def one_fixed(params):
        updates, _ = fixed.update(zeros, fixed.init(params), params, value=jnp.float32(0.5))
        return updates["w"]

    shared = jax.jit(jax.vmap(one_fixed))(members)
    np.testing.assert_array_equal(shared[0], shared[3])


def test_an_int_seed_equals_the_typed_key_of_that_seed():
    params, grads = {"w": jnp.ones(4)}, {"w": jnp.full(4, 0.2)}
    outs = []
    for key in (3, jax.random.key(3), jax.random.PRNGKey(3)):
        tx = wand(1e-3, 0.5, 0.5, key=key)
        outs.append(tx.update(grads, tx.init(params), params, value=jnp.float32(0.4))[0])
    chex.assert_trees_all_equal(outs[0], outs[1])
    chex.assert_trees_all_equal(outs[0], outs[2])


def test_inject_hyperparams_keeps_the_key_out_by_default_and_every_number_logs():
    params, grads = {"w": jnp.ones(4)}, {"w": jnp.full(4, 0.2)}
    for seed in ({}, {"key": 5}):
        tx = optax.inject_hyperparams(wand)(
            learning_rate=3e-3, temperature=0.5, friction=0.5, **seed
        )
        step = jax.jit(lambda s, tx=tx: tx.update(grads, s, params, value=jnp.float32(0.4)))
        _, state = step(tx.init(params))
        logged = {k: float(v) for k, v in state.hyperparams.items()}  # as a logger would
        assert {"learning_rate", "temperature", "friction"} <= set(logged)
        assert ("key" in logged) == bool(seed)  # no key unless one was given: an int
    plain = wand(3e-3, 0.5, 0.5, key=5)
    expected = plain.update(grads, plain.init(params), params, value=jnp.float32(0.4))[0]
    tx = optax.inject_hyperparams(wand)(learning_rate=3e-3, temperature=0.5, friction=0.5, key=5)
    got = tx.update(grads, tx.init(params), params, value=jnp.float32(0.4))[0]
    chex.assert_trees_all_close(got, expected, rtol=1e-6)


@pytest.mark.parametrize("bad", ["nan_loss", "inf_loss", "nan_gradient"])
def test_a_non_finite_step_is_a_zero_update_that_keeps_the_state(bad):
    tx = scale_by_wand(1e-3, 0.5, 0.5, key=KEY)
    params, grads = {"w": jnp.ones(4)}, {"w": jnp.full(4, 0.2)}
    update = jax.jit(lambda g, s, v: tx.update(g, s, params, value=v))
    _, state = update(grads, tx.init(params), jnp.float32(0.4))
    value = {"nan_loss": jnp.nan, "inf_loss": jnp.inf}.get(bad, 0.4)
    g = {"w": grads["w"].at[0].set(jnp.nan)} if bad == "nan_gradient" else grads
    updates, after = update(g, state, jnp.float32(value))
    np.testing.assert_array_equal(jax.tree.leaves(updates)[0], np.zeros(4))
    chex.assert_trees_all_equal(after._replace(count=state.count), state)
    assert int(after.count) == int(state.count) + 1  # count: the steps taken


def test_value_is_the_scalar_loss():
    tx = wand(1e-3, 0.5, 0.5, key=KEY)
    params = {"w": jnp.ones(4)}
    state = tx.init(params)
    with pytest.raises(ValueError, match="scalar loss"):
        tx.update(params, state, params, value=jnp.ones(2))
    with pytest.raises(ValueError, match=">= 0"):
        tx.update(params, state, params, value=-1.0)
    with pytest.raises(ValueError, match="value=loss"):
        tx.update(params, state, params)
