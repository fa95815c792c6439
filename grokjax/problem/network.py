"""Every kind of model as the trainer runs it: a `Network` of three pure functions.

    init(key) -> (params, state)
    apply(params, state, inputs_BxI) -> outputs_BxC                     evaluation
    train_apply(params, state, inputs_BxI, key) -> (outputs_BxC, state)   one training step

`params` are the trainable parameters: the only part the optimizer, the weight norm,
`init_scale`, the ageing observables and the landscapes see. `state` holds the rest
(BatchNorm's running averages, NNX random-number streams, any non-trainable variable;
None for a model without any): the trainer carries it beside the parameters, a training
step updates it, evaluation reads it and changes nothing. `key` is that step's key
(`grokjax.train` draws it from the member's loop key and the step count).

What `ModelConfig.name` may name (`as_network`):

* a `flax.linen.Module` (an instance, a class built with its defaults, or a function of
  the task's `Spec` returning one):
  - `__call__(x)`: parameters only (as the built-in models);
  - `__call__(x, train: bool)`, the flax examples' convention: called with `train=True`
    in training, with every collection but 'params' (e.g. 'batch_stats') mutable and
    `rngs={'dropout': key}`, and with `train=False` at evaluation (running averages, no
    dropout);
* a Flax NNX module: an `nnx.Module` class (or `functools.partial` of one, or any
  callable) whose constructor takes `rngs` (and the task's `Spec` if it has a parameter
  named `spec`), or a function of the `Spec` returning one. It is constructed per member
  with `nnx.Rngs(key)` from the member's init key; `nnx.Param` variables are the
  parameters, every other variable the state (`nnx.split(model, nnx.Param, ...)`).
  Training calls the module after `model.train()`, evaluation after `model.eval()`
  (dropout off, running averages); a `__call__` with a `train` or `rngs` parameter is
  also given `train=` or `rngs=nnx.Rngs(dropout=key)`. Dropout layers built with `rngs`
  draw from their own stream, carried in the state;
* a `Model(init, apply)` pair: parameters only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from grokjax.errors import ConfigError

if TYPE_CHECKING:
    from grokjax.problem.spec import Spec


class Model(NamedTuple):
    """A parameters-only model: `init(key) -> params`, `apply(params, inputs_BxI) -> outputs`."""

    init: Callable[[jax.Array], Any]
    apply: Callable[[Any, jax.Array], jax.Array]


class Network(NamedTuple):
    """A model as the trainer runs it; `kind` 'linen', 'nnx' or 'pair'; `stateful`: `state`
    holds something; `stochastic`: a training step draws from its key."""

    init: Callable[[jax.Array], tuple[Any, Any]]
    apply: Callable[[Any, Any, jax.Array], jax.Array]
    train_apply: Callable[[Any, Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
    kind: str = "pair"
    stateful: bool = False
    stochastic: bool = False


def dummy_inputs(spec: Spec) -> jax.Array:
    """One all-zero example of the task's inputs, [1, ...], for `init`."""
    return jnp.zeros((1, *spec.input_shape), jnp.int32 if spec.tokens else jnp.float32)


def from_pair(model: Model) -> Network:
    def init(key):
        return model.init(key), None

    def apply(params, state, inputs):
        return model.apply(params, inputs)

    def train_apply(params, state, inputs, key):
        return model.apply(params, inputs), state

    return Network(init, apply, train_apply, "pair")


def _parameters(fn: Callable) -> dict[str, inspect.Parameter]:
    """The parameters `fn` is called with (a class's: its `__init__`'s, without self;
    NNX's metaclass hides them from `inspect.signature(cls)`)."""
    try:
        if isinstance(fn, type):
            return dict(list(inspect.signature(fn.__init__).parameters.items())[1:])
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # builtins and some C callables have none
        return {}


def plain_linen(module: nn.Module, spec: Spec) -> Model:
    """The `Model` pair of a parameters-only linen module."""
    dummy = dummy_inputs(spec)
    return Model(
        lambda key: module.init(key, dummy)["params"],
        lambda params, inputs: module.apply({"params": params}, inputs),
    )


def from_linen(module: nn.Module, spec: Spec) -> Network:
    dummy = dummy_inputs(spec)
    takes_train = "train" in _parameters(type(module).__call__)
    if not takes_train:
        collections = _linen_collections(module, dummy, {})
        if not collections:  # parameters only, as the built-in models
            return from_pair(plain_linen(module, spec))._replace(kind="linen")
    else:
        collections = _linen_collections(module, dummy, {"train": False})
    mode = (lambda train: {"train": train}) if takes_train else (lambda train: {})

    def init(key):
        rngs = {"params": key, "dropout": jax.random.fold_in(key, 1)}
        variables = dict(module.init(rngs, dummy, **mode(False)))
        params = variables.pop("params", {})
        return params, (variables or None)

    def variables(params, state):
        return {"params": params, **(state or {})}

    def apply(params, state, inputs):
        if collections:  # a module without a train switch may still write its state
            outputs, _ = module.apply(
                variables(params, state), inputs, **mode(False), mutable=list(collections)
            )
            return outputs
        return module.apply(variables(params, state), inputs, **mode(False))

    def train_apply(params, state, inputs, key):
        rngs = {"dropout": key}
        if collections:
            outputs, updated = module.apply(
                variables(params, state),
                inputs,
                **mode(True),
                mutable=list(collections),
                rngs=rngs,
            )
            return outputs, {**state, **updated}
        return module.apply(variables(params, state), inputs, **mode(True), rngs=rngs), state

    return Network(init, apply, train_apply, "linen", bool(collections), takes_train)


def _linen_collections(module: nn.Module, dummy: jax.Array, kwargs: dict) -> tuple[str, ...]:
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    shapes = jax.eval_shape(lambda r: module.init(r, dummy, **kwargs), rngs)
    return tuple(sorted(c for c in shapes if c != "params"))


def _nnx():
    from flax import nnx

    return nnx


def is_nnx_builder(obj: Any) -> bool:
    """Whether `obj` builds a Flax NNX module: an `nnx.Module` class, or a callable with
    a parameter named `rngs` (a `functools.partial` of such a class, a factory)."""
    if isinstance(obj, type):
        return _is_nnx_class(obj)
    return callable(obj) and "rngs" in _parameters(obj)


def from_nnx(build: Callable, spec: Spec, field: str = "model.name") -> Network:
    nnx = _nnx()
    takes = _parameters(build)
    missing = [
        name
        for name, p in takes.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and name not in ("rngs", "spec")
    ]
    if missing:
        raise ConfigError(
            f"{field}: the NNX module's constructor needs {', '.join(missing)}, which "
            "grokjax cannot give: bind them with functools.partial or a function of "
            "(spec, rngs)"
        )
    extra = {"spec": spec} if "spec" in takes else {}

    def construct(key):
        return build(rngs=nnx.Rngs(key), **extra)

    abstract = nnx.eval_shape(lambda: construct(jax.random.key(0)))
    if not isinstance(abstract, nnx.Module):
        raise ConfigError(
            f"{field}: the NNX constructor returned a {type(abstract).__name__}, not an nnx.Module"
        )
    call = _parameters(type(abstract).__call__)
    abstract.train()
    train_graph, _, rest = nnx.split(abstract, nnx.Param, ...)
    abstract.eval()
    eval_graph, _, _ = nnx.split(abstract, nnx.Param, ...)
    stateful = bool(jax.tree.leaves(rest))
    takes_rngs = "rngs" in call

    def kwargs(train: bool, key=None) -> dict:
        out = {"train": train} if "train" in call else {}
        if takes_rngs and key is not None:
            out["rngs"] = nnx.Rngs(key, dropout=key)
        return out

    def init(key):
        _, params, state = nnx.split(construct(key), nnx.Param, ...)
        return nnx.to_pure_dict(params), (nnx.to_pure_dict(state) if stateful else None)

    def merged(graph, params, state):
        return nnx.merge(graph, params, state) if stateful else nnx.merge(graph, params)

    def apply(params, state, inputs):
        return merged(eval_graph, params, state)(inputs, **kwargs(False))

    def train_apply(params, state, inputs, key):
        module = merged(train_graph, params, state)
        outputs = module(inputs, **kwargs(True, key))
        if not stateful:
            return outputs, state
        _, _, state = nnx.split(module, nnx.Param, ...)
        return outputs, nnx.to_pure_dict(state)

    return Network(init, apply, train_apply, "nnx", stateful, takes_rngs)


def as_network(obj: Any, spec: Spec, name: str = "") -> Network:
    """A `Network` from anything `ModelConfig.name` may name (see the module docstring);
    `name` is the config's value, for messages."""
    field = f"model.name={name!r}" if name else "model.name"
    if isinstance(obj, Network):
        return obj
    if isinstance(obj, Model):
        return from_pair(obj)
    if isinstance(obj, nn.Module):
        return from_linen(obj, spec)
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        return from_linen(obj(), spec)  # a Module class with default fields
    if isinstance(obj, type) and not _is_nnx_class(obj):
        raise ConfigError(f"{field} names the class {obj.__name__}: {_KINDS}")
    nnx_module = _nnx().Module
    if isinstance(obj, nnx_module):
        raise ConfigError(
            f"{field} names an nnx.Module instance: grokjax initialises every member from "
            "its own key, so name the class (its constructor takes rngs) or a function of "
            "(spec, rngs) that builds it"
        )
    if is_nnx_builder(obj):
        return from_nnx(obj, spec, field)
    if callable(obj):
        built = obj(spec)
        if callable(built) and not isinstance(built, (Model, Network, nn.Module)):
            if not is_nnx_builder(built) and not isinstance(built, type):
                raise ConfigError(
                    f"{field} names a function of the task's Spec that returned a "
                    f"{type(built).__name__}: {_KINDS}"
                )
        return as_network(built, spec, name)
    raise ConfigError(f"{field} names a {type(obj).__name__}: {_KINDS}")


_KINDS = (
    "give a flax linen Module, an NNX module class (its constructor takes rngs), a grokjax "
    "Model or a function of the task's Spec returning one"
)


def _is_nnx_class(obj: type) -> bool:
    return issubclass(obj, _nnx().Module)
