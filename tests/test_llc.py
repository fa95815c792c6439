"""The local learning coefficient: SGLD recovers LLCs known in closed form, a run records
it at every `llc.every`-th evaluation without changing anything else, and bad settings
fail with one line naming the field."""

import doctest
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grokjax.problem.llc
from grokjax.config import Config, Hparams, override
from grokjax.errors import ConfigError
from grokjax.problem.llc import LLCConfig, estimate
from grokjax.train import chunk_schedule, make_train, metric_names

HP = Hparams(learning_rate=3e-3, weight_decay=1.0)

# Small steps and many draws for the closed forms: at step eps the SGLD chain of a
# quadratic direction of curvature nbeta * h overestimates its 1/2 by the factor
# 1 / (1 - eps nbeta h / 4), under 1 % here. Tolerances are 4-5 standard deviations of
# the estimate, measured over 12 keys: 0.7 % for the quadratics, 1.5 % for the quartic
# (128 chains), 2 % for the minibatches.
EXACT = LLCConfig(
    step_size=2e-3,
    nbeta=10.0,
    localization=0.0,
    num_chains=64,
    num_burnin_steps=500,
    num_draws=2000,
)
estimate_jit = jax.jit(estimate, static_argnums=(0, 4))


def test_docstring_example():
    result = doctest.testmod(grokjax.problem.llc)
    assert result.attempted > 0 and result.failed == 0


def quadratic(h):
    return lambda w, _batch: 0.5 * jnp.sum(h * w**2)


@pytest.mark.parametrize("d", [10, 20])
def test_regular_quadratic_has_llc_half_its_dimension(d):
    """Equipartition: 1/2 sum_i h_i w_i^2 with no localization has llc = d/2."""
    h = jnp.linspace(1.0, 2.0, d)
    out = estimate_jit(quadratic(h), jnp.zeros(d), jnp.zeros(1), jax.random.key(0), EXACT)
    assert float(out.llc) == pytest.approx(d / 2, rel=0.04)
    assert float(out.init_loss) == 0.0 and float(out.mean_loss) > 0


def test_llc_scales_with_the_number_of_curved_directions():
    """Flat directions count for nothing: 20 parameters of which 10 curve give 10/2,
    and twice the curved directions twice the estimate."""
    key = jax.random.key(1)
    h10 = jnp.concatenate([jnp.linspace(1.0, 2.0, 10), jnp.zeros(10)])
    h20 = jnp.linspace(1.0, 2.0, 20)
    llc10 = float(estimate_jit(quadratic(h10), jnp.zeros(20), jnp.zeros(1), key, EXACT).llc)
    llc20 = float(estimate_jit(quadratic(h20), jnp.zeros(20), jnp.zeros(1), key, EXACT).llc)
    assert llc10 == pytest.approx(5.0, rel=0.05)
    assert llc20 / llc10 == pytest.approx(2.0, rel=0.06)


def test_singular_quartic_has_llc_a_quarter_per_direction():
    """sum_i w_i^4 / 4 is degenerate at 0 (zero Hessian): each direction counts 1/4,
    not 1/2 (the posterior's E[nbeta L] = d / 4 exactly, L being of degree 4)."""
    d = 8
    loss = lambda w, _batch: 0.25 * jnp.sum(w**4)  # noqa: E731
    cfg = EXACT.replace(num_chains=128)
    out = estimate_jit(loss, jnp.zeros(d), jnp.zeros(1), jax.random.key(2), cfg)
    assert float(out.llc) == pytest.approx(d / 4, rel=0.06)


def test_minibatches_estimate_the_full_batch_loss():
    """A loss that is a mean over examples: minibatch SGLD (drawn with the estimate's
    own key) gives the full batch's value within its noise, and nbeta defaults to
    B / ln B."""
    d, n = 10, 64
    h_N = jnp.linspace(0.5, 1.5, n)

    def loss(w, h_B):
        return 0.5 * jnp.mean(h_B) * jnp.sum(w**2)

    cfg = LLCConfig(step_size=2e-3, localization=0.0, num_chains=64, num_burnin_steps=300)
    cfg = cfg.replace(num_draws=1000, batch_size=16)
    assert cfg.inverse_temperature(n) == pytest.approx(16 / math.log(16))
    out = estimate_jit(loss, jnp.zeros(d), h_N, jax.random.key(3), cfg)
    assert float(out.llc) == pytest.approx(d / 2, rel=0.1)


# A token MLP that trains in a second, with short chains: the run tests check where and
# that the LLC is recorded, not its value.
RUN = {
    "data.modulus": 11,
    "model.name": "mlp",
    "model.d_model": 16,
    "model.d_mlp": 32,
    "eval.every": 10,
    "llc.num_chains": 2,
    "llc.num_burnin_steps": 5,
    "llc.num_draws": 10,
}


def test_run_records_llc_at_every_llc_every_th_evaluation_and_nothing_else_changes():
    cfg = Config(**RUN, **{"llc.every": 2}, steps=40)  # evaluations 0, 10, ..., 40
    keys = jax.vmap(jax.random.key)(jnp.arange(2))
    _, on = jax.jit(jax.vmap(make_train(cfg).train, in_axes=(0, None)))(keys, HP)
    off_cfg = cfg.replace(**{"llc.every": 0})
    _, off = jax.jit(jax.vmap(make_train(off_cfg).train, in_axes=(0, None)))(keys, HP)
    names = metric_names(cfg)
    assert "llc" in names and tuple(n for n in names if n != "llc") == metric_names(off_cfg)
    assert "llc" not in off and set(on) == set(off) | {"llc"}
    llc = np.asarray(on["llc"])
    due = np.arange(cfg.eval_steps.size) % 2 == 0  # steps 0, 20, 40
    assert np.isfinite(llc[:, due]).all() and np.isnan(llc[:, ~due]).all()
    assert (llc[:, due][:, 1:] > 0).all()  # trained parameters sit near a minimum
    # Its own key: the other metrics are those of the run without it.
    chex.assert_trees_all_close({k: on[k] for k in off}, off, rtol=1e-5, atol=1e-6)


def test_llc_does_not_depend_on_chunking_and_padding_takes_none():
    """The key is folded from the step, so chunks give the single call's numbers; the
    zero-step evaluations padding the last chunk estimate nothing."""
    cfg = Config(**RUN, **{"llc.every": 1, "eval.chunk_evals": 4}, steps=50)
    trainer = make_train(cfg)
    key = jax.random.key(0)
    _, whole = jax.jit(trainer.train)(key, HP)
    chunks = chunk_schedule(cfg)  # [[0, 10, 10, 10], [10, 10, 0, 0]]
    assert chunks.shape == (2, 4) and (chunks[-1, -2:] == 0).all()
    run = jax.jit(trainer.run)
    state = trainer.init(key, HP)
    parts = []
    for segs in chunks:
        state, metrics = run(state, HP, jnp.asarray(segs))
        parts.append(np.asarray(metrics["llc"]))
    chunked = np.concatenate(parts)
    # Two programs round differently; another key would differ by the chains' spread.
    np.testing.assert_allclose(chunked[:6], whole["llc"], rtol=1e-2)
    assert np.isfinite(chunked[:6]).all() and np.isnan(chunked[6:]).all()


def test_llc_settings_by_dotted_path_and_set():
    cfg = Config(**{"llc.every": 5})
    assert cfg.llc.every == 5 and cfg.replace(**{"llc.every": 0}).llc == LLCConfig()
    cfg = override(Config(), ["llc.every=3", "llc.nbeta=none", "llc.step_size=1e-3"])
    assert (cfg.llc.every, cfg.llc.nbeta, cfg.llc.step_size) == (3, None, 1e-3)
    assert override(Config(), ["llc.nbeta=2"]).llc.nbeta == 2.0
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert Config.from_dict({k: v for k, v in cfg.to_dict().items() if k != "llc"}).llc.every == 0


@pytest.mark.parametrize(
    "field, value",
    [
        ("llc.every", -1),
        ("llc.step_size", 0.0),
        ("llc.step_size", math.nan),
        ("llc.nbeta", -2.0),
        ("llc.localization", -1.0),
        ("llc.num_chains", 0),
        ("llc.num_draws", 0),
        ("llc.num_burnin_steps", -1),
        ("llc.batch_size", 0),
        ("llc.batch_size", 10**6),  # more than the training set
    ],
)
def test_bad_llc_settings_fail_with_one_line_naming_the_field(field, value):
    with pytest.raises(ConfigError) as error:
        Config(**{field: value})
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{field}=")


def test_default_nbeta_needs_batches_of_two():
    with pytest.raises(ConfigError, match=r"^llc\.nbeta=None is not allowed") as error:
        Config(**{"llc.every": 1, "llc.batch_size": 1})
    assert "\n" not in str(error.value)
    Config(**{"llc.every": 1, "llc.batch_size": 1, "llc.nbeta": 1.0})  # given: fine
