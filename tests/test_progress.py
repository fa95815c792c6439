"""The Fourier progress measures on a hand-built network whose frequencies are known."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.config import Config, Hparams
from grokjax.errors import ConfigError
from grokjax.problem import data as data_lib
from grokjax.problem.metrics import cross_entropy
from grokjax.problem.progress import (
    PROGRESS_NAMES,
    fourier_basis,
    frequency_norms,
    gini,
    progress_measures,
)
from grokjax.train import make_train, metric_names

P = 23
KEYS = (3, 7)


class FourierAdder(nn.Module):
    """Nanda et al.'s algorithm written out: embed a as (cos w_k a, sin w_k a) for the
    key frequencies, multiply the two rotations (cos and sin of w_k (a + b)), read out
    scale * sum_k cos(w_k (a + b - c)) for each residue c; the '=' logit is very low."""

    scale: float = 4.0

    @nn.compact
    def __call__(self, tokens_BxT):
        x = np.arange(P + 1)
        c = np.arange(P)
        rows, cols = [], []
        for k in KEYS:
            w = 2 * np.pi * k / P
            rows += [np.cos(w * x), np.sin(w * x)]
            cols += [np.cos(w * c), np.sin(w * c)]
        embed = self.param("embed", lambda *_: jnp.asarray(np.stack(rows, 1), jnp.float32))
        unembed_np = np.zeros((2 * len(KEYS), P + 1))
        unembed_np[:, :P] = np.stack(cols)
        unembed = self.param("unembed", lambda *_: jnp.asarray(unembed_np, jnp.float32))
        ea, eb = embed[tokens_BxT[:, 0]], embed[tokens_BxT[:, 1]]
        cos_a, sin_a, cos_b, sin_b = ea[:, 0::2], ea[:, 1::2], eb[:, 0::2], eb[:, 1::2]
        rotated = jnp.stack([cos_a * cos_b - sin_a * sin_b, sin_a * cos_b + cos_a * sin_b], -1)
        logits = self.scale * rotated.reshape(tokens_BxT.shape[0], -1) @ unembed
        return logits.at[:, P].set(-100.0)


class RandomNet(nn.Module):
    """The same shapes with Gaussian embedding and unembedding: no preferred frequency."""

    @nn.compact
    def __call__(self, tokens_BxT):
        embed = self.param("embed", nn.initializers.normal(1.0), (P + 1, 64))
        unembed = self.param("unembed", nn.initializers.normal(1.0), (64, P + 1))
        h = jax.nn.relu(embed[tokens_BxT[:, 0]] + embed[tokens_BxT[:, 1]])
        return h @ unembed


def _split():
    cfg = Config(**{"data.modulus": P, "data.train_fraction": 0.5}).data
    return data_lib.make(jax.random.key(0), cfg)


def _measures(module, n_key=2):
    ds = _split()
    params = module.init(jax.random.key(1), ds.train_inputs[:2])
    out = progress_measures(module.apply, params, ds, P, n_key)
    return {k: float(v) for k, v in out.items()}, params, ds


def test_basis_is_orthonormal_for_odd_and_even_p():
    for p in (23, 24):
        F = fourier_basis(p)
        np.testing.assert_allclose(F @ F.T, np.eye(p), atol=1e-5)


def test_frequency_norms_find_the_key_frequencies_of_the_hand_built_embedding():
    module = FourierAdder()
    params = module.init(jax.random.key(0), jnp.zeros((1, 3), jnp.int32))
    norms = np.asarray(frequency_norms(params["params"]["embed"][:P], fourier_basis(P)))
    assert set(np.argsort(norms)[-2:] + 1) == set(KEYS)
    # Each key frequency carries its cos and sin columns: sum_x cos^2 + sin^2 = p.
    np.testing.assert_allclose(norms[np.array(KEYS) - 1], [P, P], rtol=1e-4)
    others = np.delete(norms, np.array(KEYS) - 1)
    assert others.max() < 1e-6


def test_hand_built_network_measures():
    m, params, ds = _measures(FourierAdder())
    assert m["key_frequency_share"] == pytest.approx(1.0, abs=1e-6)
    # Its logits are functions of a + b in the key directions only: restricting to them
    # changes nothing, and removing them leaves the same logit for every residue.
    module = FourierAdder()
    inputs = jnp.concatenate([ds.train_inputs, ds.test_inputs])
    labels = jnp.concatenate([ds.train_labels, ds.test_labels])
    full = float(cross_entropy(module.apply(params, inputs), labels))
    assert m["restricted_loss"] == pytest.approx(full, rel=1e-4)
    assert m["excluded_loss"] == pytest.approx(np.log(P), rel=1e-4)
    assert full < 0.5 * np.log(P)
    # Four of the p embedding components (cos and sin of 3 and 7) carry all the norm.
    assert m["gini_embed"] == pytest.approx((P - 4) / P, abs=1e-5)
    assert m["gini_unembed"] == pytest.approx((P - 4) / P, abs=1e-5)


def test_random_network_has_no_fourier_structure():
    m, _, _ = _measures(RandomNet())
    n_freq = (P - 1) // 2
    assert m["key_frequency_share"] < 3 * 2 / n_freq  # two of eleven, up to chance
    assert m["gini_embed"] < 0.35 and m["gini_unembed"] < 0.35
    # Neither ablation helps a network that is not computing with those frequencies.
    assert m["restricted_loss"] > 0.9 * np.log(P)


def test_gini_known_values():
    assert float(gini(jnp.ones(10))) == pytest.approx(0.0, abs=1e-6)
    assert float(gini(jnp.array([0.0, 0.0, 0.0, 1.0]))) == pytest.approx(0.75)
    x = np.array([1.0, 2.0, 3.0, 7.0])
    by_pairs = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size * x.sum())
    assert float(gini(jnp.asarray(x))) == pytest.approx(by_pairs)


def test_trainer_records_them_at_every_evaluation():
    cfg = Config(steps=20, **{"data.modulus": 11, "eval.every": 10, "eval.progress_frequencies": 3})
    assert set(PROGRESS_NAMES) <= set(metric_names(cfg))
    _, metrics = jax.jit(make_train(cfg).train)(jax.random.key(0), Hparams(learning_rate=1e-3))
    for name in PROGRESS_NAMES:
        assert metrics[name].shape == (3,) and np.isfinite(metrics[name]).all()
    assert not set(PROGRESS_NAMES) & set(
        metric_names(cfg.replace(**{"eval.progress_frequencies": 0}))
    )


@pytest.mark.parametrize(
    "changes, allowed",
    [
        (
            {"data.task": "parity", "model.name": "mlp"},
            "0: the Fourier progress measures need a modular task",
        ),
        ({"data.modulus": 11, "eval.progress_frequencies": 6}, "an integer in 0..5"),
        ({"eval.progress_frequencies": -1}, "a non-negative integer"),
    ],
)
def test_bad_progress_settings_are_refused(changes, allowed):
    with pytest.raises(ConfigError, match="progress_frequencies") as error:
        Config(**{"eval.progress_frequencies": 2, **changes})
    assert allowed in str(error.value)
