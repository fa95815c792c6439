"""Flax models behind one `init`/`apply` pair, built for a task's `Spec`.

Shape legend: B batch, T positions (3: x, y, '='), D d_model, H heads, K d_head,
M d_mlp, V vocabulary (p + 1), C outputs (classes or the regression target's size),
F features, X/Y/Z an image's height, width and channels.

For token inputs (the modular tasks):

* `transformer`: Nanda et al. (2023) as used by the paper: one layer (or more),
  d_model 128, 4 heads of 32, MLP 512 with ReLU and biases, learned positional
  embedding, causal attention without biases, separate unembedding, no LayerNorm
  (optional). Init: weights N(0, 1/d_model), unembedding N(0, 1/V), biases 0.
  At p = 67 the one-layer model has 215,040 parameters.
* `mlp`: token embeddings of x and y, concatenated, then `n_layers` ReLU layers of
  width d_mlp and a linear read-out.

For float inputs (images, feature vectors, parity bits):

* `mlp`: the input flattened, `n_layers` layers of width d_mlp with `activation` and a
  linear read-out (Omnigrok's 784-200-200-10 is `n_layers=2, d_mlp=200`);
* `cnn` (images [X, Y, Z]): `n_layers` 3x3 convolutions of d_model channels, each
  followed by `activation` and 2x2 average pooling, then one layer of width d_mlp and
  the read-out.
  Both initialise as PyTorch's `nn.Linear`/`nn.Conv2d` do (weights and biases
  uniform in +-1/sqrt(fan_in)), the initialisation the published set-ups scale by
  alpha, so `Hparams.init_scale` means what it means there.

A model of your own (any kind `grokjax.problem.network` takes) is registered with
`register_model` or named 'path/to/file.py:attr' in `ModelConfig.name`.

Only the last position's logits enter the loss, so the final layer computes its
queries, attention output and MLP at that position alone; keys and values still see
every position. The result equals the full causal computation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from grokjax.errors import ConfigError
from grokjax.problem.network import Model, Network, as_network, from_pair, plain_linen
from grokjax.problem.references import load_attribute, user_code
from grokjax.section import Section

if TYPE_CHECKING:
    from grokjax.problem.spec import Spec

N_CTX = 3
ACTIVATIONS: dict[str, Callable] = {"relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu}


def _normal(variance: float) -> Callable:
    return nn.initializers.normal(stddev=math.sqrt(variance))


class _Block(nn.Module):
    d_model: int
    n_heads: int
    d_mlp: int
    layer_norm: bool
    last_only: bool

    @nn.compact
    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        D, H = self.d_model, self.n_heads
        K = D // H
        w = _normal(1.0 / D)
        # Heads are stored side by side ([D, H*K]) so every projection is one 2-D matmul.
        w_q_DxHK = self.param("query", w, (D, H * K))
        w_k_DxHK = self.param("key", w, (D, H * K))
        w_v_DxHK = self.param("value", w, (D, H * K))
        w_o_HKxD = self.param("out", w, (H * K, D))

        B, T, _ = x_BxTxD.shape
        h_BxTxD = nn.LayerNorm(name="ln_attn")(x_BxTxD) if self.layer_norm else x_BxTxD
        S = 1 if self.last_only else T
        q_in_BSxD = h_BxTxD[:, T - S :].reshape(B * S, D)
        h_BTxD = h_BxTxD.reshape(B * T, D)
        q_BxSx1xHxK = (q_in_BSxD @ w_q_DxHK).reshape(B, S, 1, H, K)
        k_Bx1xTxHxK = (h_BTxD @ w_k_DxHK).reshape(B, 1, T, H, K)
        v_Bx1xTxHxK = (h_BTxD @ w_v_DxHK).reshape(B, 1, T, H, K)
        # T = 3: scores and mixing are elementwise products and short sums, which beat
        # thousands of tiny batched matmuls on every backend.
        scores_BxSxTxH = (q_BxSx1xHxK * k_Bx1xTxHxK).sum(-1) / math.sqrt(K)
        causal_SxT = jnp.arange(T)[None, :] <= jnp.arange(T - S, T)[:, None]
        scores_BxSxTxH = jnp.where(causal_SxT[None, :, :, None], scores_BxSxTxH, -jnp.inf)
        attn_BxSxTxH = jax.nn.softmax(scores_BxSxTxH, axis=2)
        z_BxSxHxK = (attn_BxSxTxH[..., None] * v_Bx1xTxHxK).sum(2)
        z_BSxHK = z_BxSxHxK.reshape(B * S, H * K)
        resid_BSxD = x_BxTxD[:, T - S :].reshape(B * S, D) + z_BSxHK @ w_o_HKxD

        h_BSxD = nn.LayerNorm(name="ln_mlp")(resid_BSxD) if self.layer_norm else resid_BSxD
        w_in_DxM = self.param("mlp_in", w, (D, self.d_mlp))
        b_in_M = self.param("mlp_in_bias", nn.initializers.zeros, (self.d_mlp,))
        w_out_MxD = self.param("mlp_out", w, (self.d_mlp, D))
        b_out_D = self.param("mlp_out_bias", nn.initializers.zeros, (D,))
        hidden_BSxM = jax.nn.relu(h_BSxD @ w_in_DxM + b_in_M[None])
        out_BSxD = resid_BSxD + hidden_BSxM @ w_out_MxD + b_out_D[None]
        return out_BSxD.reshape(B, S, D)


class Transformer(nn.Module):
    vocab_size: int
    d_model: int
    n_heads: int
    d_mlp: int
    n_layers: int
    layer_norm: bool
    n_outputs: int
    n_ctx: int = N_CTX

    @nn.compact
    def __call__(self, tokens_BxT: jax.Array) -> jax.Array:
        V, D = self.vocab_size, self.d_model
        w_e_VxD = self.param("embed", _normal(1.0 / D), (V, D))
        w_pos_TxD = self.param("pos_embed", _normal(1.0 / D), (self.n_ctx, D))
        x_BxTxD = w_e_VxD[tokens_BxT] + w_pos_TxD[None, : tokens_BxT.shape[1]]
        for layer in range(self.n_layers):
            last = layer == self.n_layers - 1
            block = _Block(
                D, self.n_heads, self.d_mlp, self.layer_norm, last, name=f"block_{layer}"
            )
            x_BxTxD = block(x_BxTxD)
        if self.layer_norm:
            x_BxTxD = nn.LayerNorm(name="ln_final")(x_BxTxD)
        C = self.n_outputs
        w_u_DxC = self.param("unembed", _normal(1.0 / C), (D, C))
        return x_BxTxD[:, -1] @ w_u_DxC


class MLP(nn.Module):
    """Token embeddings of the first `positions` tokens, concatenated, then ReLU layers."""

    vocab_size: int
    d_model: int
    d_mlp: int
    n_layers: int
    n_outputs: int
    positions: int = 2

    @nn.compact
    def __call__(self, tokens_BxT: jax.Array) -> jax.Array:
        V, D, P = self.vocab_size, self.d_model, self.positions
        w_e_VxD = self.param("embed", _normal(1.0 / D), (V, D))
        h = w_e_VxD[tokens_BxT[:, :P]].reshape(tokens_BxT.shape[0], P * D)
        fan_in = P * D
        for layer in range(self.n_layers):
            w = self.param(f"hidden_{layer}", _normal(1.0 / fan_in), (fan_in, self.d_mlp))
            b = self.param(f"hidden_{layer}_bias", nn.initializers.zeros, (self.d_mlp,))
            h = jax.nn.relu(h @ w + b[None])
            fan_in = self.d_mlp
        w_u = self.param("unembed", _normal(1.0 / fan_in), (fan_in, self.n_outputs))
        return h @ w_u


def _torch_uniform(fan_in: int) -> Callable:
    """PyTorch's default for `nn.Linear` / `nn.Conv2d` weights and biases: U(+-1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _torch_inits(fan_in: int) -> dict:
    return {"kernel_init": _torch_uniform(fan_in), "bias_init": _torch_uniform(fan_in)}


def _linear(width: int, fan_in: int, name: str) -> nn.Dense:
    return nn.Dense(width, **_torch_inits(fan_in), name=name)


class DenseMLP(nn.Module):
    """Flattened float inputs, hidden layers of `hidden` widths, a linear read-out."""

    hidden: Sequence[int]
    n_outputs: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x_BxI: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        h_BxF = x_BxI.reshape(x_BxI.shape[0], -1)
        for layer, width in enumerate(self.hidden):
            h_BxF = act(_linear(width, h_BxF.shape[-1], f"hidden_{layer}")(h_BxF))
        return _linear(self.n_outputs, h_BxF.shape[-1], "unembed")(h_BxF)


class CNN(nn.Module):
    """3x3 convolutions with average pooling, one hidden dense layer, a read-out."""

    channels: int
    n_layers: int
    d_mlp: int
    n_outputs: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x_BxXxYxZ: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        h = x_BxXxYxZ
        for layer in range(self.n_layers):
            conv = nn.Conv(
                self.channels, (3, 3), **_torch_inits(9 * h.shape[-1]), name=f"conv_{layer}"
            )
            h = act(conv(h))
            if min(h.shape[1:3]) >= 2:
                h = nn.avg_pool(h, (2, 2), strides=(2, 2))
        h_BxF = h.reshape(h.shape[0], -1)
        h_BxF = act(_linear(self.d_mlp, h_BxF.shape[-1], "hidden")(h_BxF))
        return _linear(self.n_outputs, h_BxF.shape[-1], "unembed")(h_BxF)


def dense_mlp(hidden: Sequence[int], n_outputs: int, activation: str = "relu") -> DenseMLP:
    """The float-input MLP (also the teacher of the teacher-student task)."""
    return DenseMLP(tuple(hidden), n_outputs, activation)


BUILTIN_MODELS = ("transformer", "mlp", "cnn")
_REGISTERED: dict[str, Any] = {}


def register_model(name: str, model: Any) -> str:
    """Make `model` (anything `make_network` takes) `ModelConfig(name=name)` in this process."""
    if name in BUILTIN_MODELS or ":" in name:
        raise ConfigError(f"register_model: {name!r} is a built-in model or an import path")
    _REGISTERED[name] = model
    return name


def user_model(name: str) -> Any:
    """The object the (non-built-in) model `name` names: registered, or imported."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    return load_attribute(name, "model.name")


def builtin_module(cfg: ModelConfig, spec: Spec) -> nn.Module:
    """The built-in network `cfg.name` for a task of `spec` (the config checked they fit)."""
    if cfg.name == "transformer":
        sizes = (cfg.d_model, cfg.n_heads, cfg.d_mlp, cfg.n_layers, cfg.layer_norm)
        return Transformer(spec.vocab_size, *sizes, spec.n_outputs, spec.input_shape[0])
    if cfg.name == "cnn":
        return CNN(cfg.d_model, cfg.n_layers, cfg.d_mlp, spec.n_outputs, cfg.activation)
    if spec.tokens:
        positions = spec.input_shape[0] - int(spec.query_last)
        return MLP(spec.vocab_size, cfg.d_model, cfg.d_mlp, cfg.n_layers, spec.n_outputs, positions)
    return dense_mlp((cfg.d_mlp,) * cfg.n_layers, spec.n_outputs, cfg.activation)


def make_network(cfg: ModelConfig, spec: Spec) -> Network:
    """The network `cfg.name` for the task `spec` (`DataConfig.spec`) as a `Network`.

    On a modular task the built-in networks read p + 1 tokens and write p + 1 logits,
    and the loss and accuracies are taken over all of them, as in Nanda et al. (the '='
    class is never a label, so predicting it counts as wrong). Measured on x+y mod 67
    with 4 seeds, this full-vocabulary loss generalises at a median of 600 steps against
    465 with the '=' logit dropped; the paper reads about 700.

    Example:
        >>> from grokjax.problem.data import DataConfig
        >>> net = make_network(ModelConfig(), DataConfig(modulus=67).spec)
        >>> params, state = net.init(jax.random.key(0))
        >>> sum(x.size for x in jax.tree.leaves(params)), state
        (215040, None)
    """
    if cfg.name in BUILTIN_MODELS:
        return from_pair(plain_linen(builtin_module(cfg, spec), spec))._replace(kind="linen")
    obj = user_model(cfg.name)
    with user_code("model.name", cfg.name, "while its network was built"):
        return as_network(obj, spec, cfg.name)


def make_model(cfg: ModelConfig, spec: Spec) -> Model:
    """The parameters-only `Model` view of `make_network`; refused for a model with state."""
    net = make_network(cfg, spec)
    if net.stateful:
        raise ConfigError(
            f"model.name={cfg.name!r}: the model has state besides its parameters; use make_network"
        )
    return Model(lambda key: net.init(key)[0], lambda params, x: net.apply(params, None, x))


def count_params(params: dict) -> int:
    return sum(x.size for x in jax.tree.leaves(params))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig(Section):
    """The network (`grokjax.problem.models`): `name` ('transformer', 'mlp', 'cnn', a model
    registered with `grokjax.register_model`, or 'path/to/file.py:attr'), `n_layers`,
    `d_model` (the CNN's channels), `n_heads`, `d_mlp`, `layer_norm` (transformer), and
    `activation` of the float-input MLP and the CNN ('relu', 'tanh', 'gelu')."""

    PATH: ClassVar[str] = "model"

    name: str = "transformer"
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    layer_norm: bool = False
    activation: str = "relu"

    def __post_init__(self) -> None:
        if not (self.name in BUILTIN_MODELS or self.name in _REGISTERED or ":" in self.name):
            self.fail(
                "name",
                f"one of {', '.join(BUILTIN_MODELS)}, a registered model or "
                "path/to/file.py:attribute",
            )
        self.one_of("activation", tuple(ACTIVATIONS))
        self.positive_int("n_layers", "d_model", "n_heads", "d_mlp")
        if self.d_model % self.n_heads:
            self.fail("n_heads", f"a divisor of model.d_model={self.d_model}")
