"""The WLMD sampler against densities of states known in closed form.

For a d-dimensional quadratic well U = |q|^2 / 2 the density of states of x = ln U is
Omega(x) ~ exp(d x / 2), so the converged estimate S / kT must grow with slope d / 2;
two independent wells, one per collective variable, give slopes d1 / 2 and d2 / 2.
Slopes are fitted away from the grid's edges (where the walkers' first rush leaves a
Wang-Landau bump) and must be within 3 %.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.landscape import stitch
from grokjax.wanglandau.entropy import Grid, gaussian_kernel, kernel
from grokjax.wanglandau.wlmd import fan_in_walls, make_sampler, reflect

WALKERS = 16


def log_energy(q):
    return jnp.log(0.5 * jnp.sum(q**2))


def run_shared(sampler, params, steps, seed=0):
    keys = jax.random.split(jax.random.key(seed), WALKERS)
    walkers, estimates = jax.vmap(sampler.init, in_axes=(None, 0))(params, keys)
    estimate = jax.tree.map(lambda x: x[0], estimates)

    def body(carry, _):
        walkers, estimate, _ = sampler.step_shared(*carry)
        return (walkers, estimate), None

    (walkers, estimate), _ = jax.jit(lambda c: jax.lax.scan(body, c, length=steps))(
        (walkers, estimate)
    )
    return walkers, estimate


def fitted_slopes(entropy, grids, margin):
    """Least-squares plane (or line) through S over the bins at least `margin` inside."""
    centres = np.meshgrid(*[np.asarray(g.centres) for g in grids], indexing="ij")
    keep = np.ones(entropy.shape, bool)
    for c, g in zip(centres, grids, strict=True):
        keep &= (c > g.x_min + margin) & (c < g.x_max - margin)
    design = np.stack([c[keep] for c in centres] + [np.ones(keep.sum())], axis=1)
    coef, *_ = np.linalg.lstsq(design, np.asarray(entropy)[keep], rcond=None)
    return coef[:-1]


def well_run(d, grid, *, deposit, t_wl, steps, seed=0, **extra):
    """Walkers sharing one estimate in a d-dimensional well on `grid`, started at its
    centre, walls just above its top: (sampler, estimate)."""
    sampler = make_sampler(
        lambda p: log_energy(p["q"])[None],
        [grid],
        timestep=0.005,
        friction=0.01,
        deposit=deposit,
        t_wl=t_wl,
        sigma_bins=2.0,
        walls={"q": jnp.float32(1.05 * np.sqrt(2 * np.exp(grid.x_max)))},
        **extra,
    )
    centre = grid.x_min + grid.bin_width * grid.n_bins / 2
    start = {"q": jnp.full(d, np.sqrt(2 * np.exp(centre) / d), jnp.float32)}
    _, estimate = run_shared(sampler, start, steps, seed=seed)
    return sampler, estimate


@pytest.mark.parametrize(("d", "x_min", "x_max"), [(4, -4.0, 1.0), (64, -1.5, 1.5)])
def test_quadratic_well_entropy_slope_is_half_the_dimension(d, x_min, x_max):
    grid = Grid(x_min, 0.05, int(round((x_max - x_min) / 0.05)))
    sampler, estimate = well_run(
        d, grid, deposit=1.0 if d > 8 else 0.1, t_wl=100.0 if d > 8 else 60.0, steps=200_000
    )
    (slope,) = fitted_slopes(sampler.entropy(estimate), [grid], margin=0.5)
    assert slope == pytest.approx(d / 2, rel=0.03)


def test_two_independent_wells_give_both_slopes():
    d1, d2 = 4, 12
    grids = [Grid(-3.0, 0.1, 35), Grid(-1.5, 0.1, 30)]
    cv = lambda p: jnp.stack([log_energy(p["a"]), log_energy(p["b"])])  # noqa: E731
    sampler = make_sampler(
        cv,
        grids,
        timestep=0.005,
        friction=0.01,
        deposit=1.0,
        t_wl=100.0,
        sigma_bins=1.5,
        walls={"a": jnp.float32(3.0), "b": jnp.float32(3.0)},
    )
    start = {"a": jnp.full(d1, 0.3, jnp.float32), "b": jnp.full(d2, 0.3, jnp.float32)}
    _, estimate = run_shared(sampler, start, 300_000)
    slopes = fitted_slopes(sampler.entropy(estimate), grids, margin=0.5)
    np.testing.assert_allclose(slopes, [d1 / 2, d2 / 2], rtol=0.03)


GRID = Grid(-3.0, 0.1, 40)


def _well_sampler(**kwargs):
    kwargs = {"timestep": 0.01, "friction": 0.1, "deposit": 2.0, "t_wl": 10.0, **kwargs}
    return make_sampler(lambda p: log_energy(p["q"])[None], [GRID], **kwargs)


def test_reflective_walls_fold_positions_back_and_reverse_velocity():
    params = {"w": jnp.array([0.5, 1.3, -1.6]), "b": jnp.array([0.0])}
    velocity = {"w": jnp.array([1.0, 2.0, -3.0]), "b": jnp.array([1.0])}
    walls = {"w": jnp.float32(1.0), "b": jnp.float32(1.0)}
    p, v = reflect(params, velocity, walls)
    np.testing.assert_allclose(p["w"], [0.5, 0.7, -0.4], rtol=1e-6)
    np.testing.assert_allclose(v["w"], [1.0, -2.0, 3.0])
    np.testing.assert_allclose(v["b"], [1.0])
    bounds = fan_in_walls({"m": jnp.ones((16, 3)), "v": jnp.ones(4)}, 2.0)
    assert float(bounds["m"]) == pytest.approx(0.5) and float(bounds["v"]) == pytest.approx(1.0)


def test_each_step_deposits_f_t_per_walker_and_counts_the_visit():
    sampler = _well_sampler()
    walker, estimate = sampler.init({"q": jnp.full(4, 0.5)}, jax.random.key(0))
    step = jax.jit(sampler.step)
    for t in range(1, 15):
        walker, new, _ = step(walker, estimate)
        added = float(jnp.sum(new.deposits - estimate.deposits))
        assert added == pytest.approx(float(2.0 * min(t / 10.0, 10.0 / t)), rel=1e-5)
        assert float(new.histogram.sum()) == t
        estimate = new
    keys = jax.random.split(jax.random.key(1), 3)
    walkers, estimates = jax.vmap(sampler.init, in_axes=(None, 0))({"q": jnp.full(4, 0.5)}, keys)
    shared = jax.tree.map(lambda x: x[0], estimates)
    _, after, c = jax.jit(sampler.step_shared)(walkers, shared)
    assert c.shape == (3, 1)
    assert float(after.deposits.sum()) == pytest.approx(3 * 2.0 * 0.1, rel=1e-5)


def test_off_the_grid_a_walker_deposits_nothing_and_is_pushed_back():
    sampler = _well_sampler(edge_strength=50.0, temperature=1e-8, thermal_init=False)
    start = {"q": jnp.full(4, 3.0)}  # ln U = ln 18 = 2.9, above the grid's top at 1.0
    walker, estimate = sampler.init(start, jax.random.key(0))
    walker, after, c = jax.jit(sampler.step)(walker, estimate)
    assert float(c[0]) > GRID.x_max
    assert float(after.deposits.sum()) == 0 and float(after.histogram.sum()) == 0
    assert int(after.count) == 0
    np.testing.assert_array_less(walker.velocity["q"], 0.0)  # the soft wall points inward


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_mirrored_kernel_deposits_evenly_up_to_the_edges(sigma):
    """A flat histogram (one visit per bin) adds the same to every bin with the kernel
    mirrored at the edges; the cut-and-renormalised kernel gives the edge bins less."""
    grid = Grid(0.0, 1.0, 30)
    total = sum(gaussian_kernel(grid, jnp.int32(c), sigma, mirror=True) for c in range(30))
    np.testing.assert_allclose(total, np.ones(30), rtol=1e-5)
    cut = sum(gaussian_kernel(grid, jnp.int32(c), sigma) for c in range(30))
    assert float(cut[0]) < 0.95 and float(cut[15]) == pytest.approx(1.0, rel=1e-3)
    both = kernel([grid, Grid(0.0, 1.0, 8)], jnp.array([0, 7]), sigma, mirror=True)
    assert both.shape == (30, 8) and float(both.sum()) == pytest.approx(1.0, rel=1e-5)


def test_independent_walkers_differ_and_average_to_one_estimate():
    sampler = _well_sampler()
    keys = jax.random.split(jax.random.key(0), 4)
    walkers, estimates = jax.vmap(sampler.init, in_axes=(None, 0))({"q": jnp.full(4, 0.5)}, keys)
    run = jax.jit(jax.vmap(sampler.step))
    for _ in range(20):
        walkers, estimates, _ = run(walkers, estimates)
    assert not np.allclose(walkers.params["q"][0], walkers.params["q"][1])
    averaged = sampler.average(estimates)
    np.testing.assert_allclose(averaged.deposits[0], estimates.deposits.mean(0), rtol=1e-6)
    np.testing.assert_array_equal(averaged.deposits[0], averaged.deposits[3])
    np.testing.assert_array_equal(averaged.histogram, estimates.histogram)


def test_same_key_is_bit_identical():
    sampler = _well_sampler()

    def run(key):
        walker, estimate = sampler.init({"q": jnp.full(4, 0.5)}, key)
        for _ in range(5):
            walker, estimate, _ = sampler.step(walker, estimate)
        return walker.params["q"], estimate.deposits

    a, b = jax.jit(run)(jax.random.key(3)), jax.jit(run)(jax.random.key(3))
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_fixed_norm_holds_the_global_norm():
    sampler = _well_sampler(fixed_norm=2.0)
    walker, estimate = sampler.init({"q": jnp.full(4, 1.0)}, jax.random.key(0))
    for _ in range(10):
        walker, estimate, _ = sampler.step(walker, estimate)
    assert float(jnp.linalg.norm(walker.params["q"])) == pytest.approx(2.0, rel=1e-5)


def test_without_force_the_velocity_variance_is_kT():
    cv = lambda p: jnp.zeros(1) * jnp.sum(p["q"])  # noqa: E731  (no force at all)
    sampler = make_sampler(
        cv, [GRID], timestep=0.01, friction=0.3, deposit=0.0, temperature=0.7, thermal_init=False
    )
    walker, estimate = sampler.init({"q": jnp.zeros(50_000)}, jax.random.key(0))
    body = lambda c, _: (sampler.step(*c)[:2], None)  # noqa: E731
    (walker, _), _ = jax.jit(lambda c: jax.lax.scan(body, c, length=60))((walker, estimate))
    assert float(jnp.var(walker.velocity["q"])) == pytest.approx(0.7, rel=0.03)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="grids"):
        make_sampler(lambda p: p, [GRID] * 3, timestep=0.01, friction=0.1)
    with pytest.raises(ValueError, match="exclusive"):
        make_sampler(
            lambda p: p, [GRID], timestep=0.01, friction=0.1, walls={"q": 1.0}, fixed_norm=1.0
        )


def test_a_linear_prior_is_part_of_the_estimate():
    """A linear bias (power 1) with a wrong slope: the deposits make up the difference."""
    d, grid = 16, Grid(-2.0, 0.05, 60)
    sampler, estimate = well_run(
        d,
        grid,
        deposit=0.3,
        t_wl=100.0,
        steps=100_000,
        bias_strength=d / 2 - 2.0,
        bias_floor=-5.0,
        bias_power=1.0,
    )
    (slope,) = fitted_slopes(sampler.entropy(estimate), [grid], margin=0.5)
    assert slope == pytest.approx(d / 2, rel=0.03)


def test_windows_stitch_into_the_well_slope():
    """The d = 4 well on [-4, 1] as two overlapping windows (soft edges, walls in
    parameter space at each window's top): the stitched estimate has slope d / 2
    within 3 %."""
    d, width = 4, 0.05
    windows = [Grid(-4.0, width, 60), Grid(-2.0, width, 60)]
    entropies, histograms = [], []
    for k, grid in enumerate(windows):
        sampler, estimate = well_run(d, grid, deposit=0.1, t_wl=60.0, steps=200_000, seed=k)
        assert float(estimate.histogram[0]) > 0 and float(estimate.histogram[-1]) > 0
        entropies.append(np.asarray(sampler.entropy(estimate))[:, None])
        histograms.append(np.asarray(estimate.histogram)[:, None])
    whole = Grid(-4.0, width, 100)
    entropy, histogram = stitch(np.stack(entropies), np.stack(histograms), [0, 40], 100)
    # Only visits on a window's grid count (the top window's walls allow a little more).
    assert np.isfinite(entropy).all()
    assert 0.85 * 2 * WALKERS * 200_000 < histogram.sum() <= 2 * WALKERS * 200_000
    (slope,) = fitted_slopes(entropy[:, 0], [whole], margin=0.5)
    assert slope == pytest.approx(d / 2, rel=0.03)


def test_stitch_undoes_window_offsets():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(20, 3)).cumsum(0)
    starts, m = [0, 5, 10], 10
    pieces = np.stack([truth[a : a + m] + rng.normal() * 50 for a in starts])
    entropy, histogram = stitch(pieces, np.ones_like(pieces), starts, 20)
    np.testing.assert_allclose(entropy - entropy[0, 0], truth - truth[0, 0], atol=1e-4)
    assert histogram.sum() == pieces.size
