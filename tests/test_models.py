import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.config import Config
from grokjax.problem.models import count_params, make_model


def test_paper_transformer_has_215040_parameters_at_p67():
    params = make_model(
        Config(**{"data.modulus": 67}).model, Config(**{"data.modulus": 67}).data.spec
    ).init(jax.random.key(0))
    assert count_params(params) == 215_040


@pytest.mark.parametrize(("d_model", "d_mlp"), [(32, 128), (64, 256), (128, 512)])
def test_width_variants_count(d_model, d_mlp):
    p, v = 67, 68
    cfg = Config(**{"data.modulus": p, "model.d_model": d_model, "model.d_mlp": d_mlp})
    params = make_model(cfg.model, cfg.data.spec).init(jax.random.key(0))
    attn = 4 * d_model * d_model
    mlp = 2 * d_model * d_mlp + d_mlp + d_model
    assert count_params(params) == 2 * v * d_model + 3 * d_model + attn + mlp


def test_init_scales_match_the_paper():
    params = make_model(
        Config(**{"data.modulus": 67}).model, Config(**{"data.modulus": 67}).data.spec
    ).init(jax.random.key(1))
    block = params["block_0"]
    np.testing.assert_allclose(np.std(block["mlp_in"]), 1 / math.sqrt(128), rtol=0.05)
    np.testing.assert_allclose(np.std(params["unembed"]), 1 / math.sqrt(68), rtol=0.05)
    assert not np.any(block["mlp_in_bias"]) and not np.any(block["mlp_out_bias"])


def _full_causal_reference(params, tokens, n_heads):
    """Plain computation of every position, then the last position's logits."""
    x = params["embed"][tokens] + params["pos_embed"][None]
    b = params["block_0"]
    heads = lambda w: w.reshape(w.shape[0], n_heads, -1)  # noqa: E731
    q = jnp.einsum("btd,dhk->bhtk", x, heads(b["query"]))
    k = jnp.einsum("btd,dhk->bhtk", x, heads(b["key"]))
    v = jnp.einsum("btd,dhk->bhtk", x, heads(b["value"]))
    scores = q @ jnp.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    mask = jnp.tril(jnp.ones((3, 3), bool))
    attn = jax.nn.softmax(jnp.where(mask[None, None], scores, -jnp.inf), axis=-1)
    z = jnp.einsum("bhts,bhsk->bthk", attn, v)
    x = x + jnp.einsum("bthk,hkd->btd", z, b["out"].reshape(n_heads, -1, x.shape[-1]))
    hidden = jax.nn.relu(x @ b["mlp_in"] + b["mlp_in_bias"][None, None])
    x = x + hidden @ b["mlp_out"] + b["mlp_out_bias"][None, None]
    return (x @ params["unembed"])[:, -1]


def test_last_position_shortcut_equals_full_causal_forward():
    cfg = Config(**{"data.modulus": 13, "model.d_model": 32, "model.d_mlp": 64})
    model = make_model(cfg.model, cfg.data.spec)
    params = model.init(jax.random.key(0))
    tokens = jax.random.randint(jax.random.key(1), (50, 3), 0, 14)
    ours = jax.jit(model.apply)(params, tokens)
    ref = _full_causal_reference(params, tokens, cfg.model.n_heads)
    chex.assert_trees_all_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "overrides",
    [
        {"model.n_layers": 2, "model.layer_norm": True},
        {"model.name": "mlp"},
        {"model.name": "mlp", "model.n_layers": 2},
    ],
)
def test_variants_give_p_plus_1_logits(overrides):
    cfg = Config(**overrides, **{"data.modulus": 11, "model.d_model": 32, "model.d_mlp": 64})
    model = make_model(cfg.model, cfg.data.spec)
    params = model.init(jax.random.key(0))
    logits = jax.jit(model.apply)(params, jnp.zeros((5, 3), jnp.int32))
    chex.assert_shape(logits, (5, 12))
    chex.assert_tree_all_finite(logits)
