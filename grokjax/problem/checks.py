"""The user's data and model checked at the door, before anything is compiled or written.

Each failure is one `ConfigError` line naming `data.task` or `model.name` and what is
wrong (an exception inside the user's code names its file and line: `user_code`).
Built-in tasks and models are correct by construction and skip the checks; each
(config, object) pair is checked once per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.errors import ConfigError
from grokjax.problem import data as data_lib
from grokjax.problem.models import BUILTIN_MODELS, user_model
from grokjax.problem.network import Network
from grokjax.problem.references import user_code
from grokjax.problem.tasks import TASKS

if TYPE_CHECKING:
    from grokjax.problem.data import DataConfig

_CHECKED: dict[tuple, Any] = {}  # keys hold the objects checked, so their ids stay theirs


def check_config(cfg) -> None:
    """Build `cfg`'s network and check the user's data and model (`check_inputs`)."""
    from grokjax.problem.models import make_network

    check_inputs(cfg, make_network(cfg.model, cfg.data.spec))


def check_inputs(cfg, net: Network) -> None:
    """`check_task` and `check_network` for `cfg`, once per (config, user object)."""
    if cfg.data.task not in TASKS and cfg.data.task not in data_lib.BUILTIN:
        source = data_lib.source(cfg.data.task)
        key = ("task", cfg.data, id(source))
        if key not in _CHECKED:
            check_task(cfg.data)
            _CHECKED[key] = source
    if cfg.model.name not in BUILTIN_MODELS:
        obj = user_model(cfg.model.name)
        key = ("model", cfg.data, cfg.model, id(obj))
        if key not in _CHECKED:
            check_network(cfg, net)
            _CHECKED[key] = obj


def _fail(data: DataConfig, what: str) -> None:
    raise ConfigError(f"data.task={data.task!r} is not allowed: {what}")


def _range(values: np.ndarray) -> str:
    return f"{values.min()}..{values.max()}"


def check_task(data: DataConfig) -> None:
    """Make the task's examples (as a run would, with the split seed's draw key) and check
    them against its `Spec`: pool, lengths, shapes, dtypes, finite values, label range."""
    spec = data.spec
    draw_key = jax.random.split(jax.random.key(data.split_seed or 0), 3)[2]  # as data.make
    with user_code("data.task", data.task, "while making its examples"):
        inputs, labels = data_lib.source(data.task).examples(draw_key, data)
    try:
        inputs, labels = np.asarray(inputs), np.asarray(labels)
    except Exception as err:  # ragged lists, objects
        _fail(data, f"its examples are not arrays ({type(err).__name__}: {err})")
    n = inputs.shape[0] if inputs.ndim else 0
    if n == 0:
        _fail(data, "it has no examples (an empty pool)")
    if labels.ndim == 0 or labels.shape[0] != n:
        _fail(data, f"{n} inputs but labels of shape {labels.shape}")
    n_train, n_test = data.n_train, data.n_test
    if n < n_train + n_test:
        _fail(data, f"its pool has {n} examples, fewer than the split's {n_train} + {n_test}")
    if spec.n_examples is not None and n != spec.n_examples:
        _fail(data, f"its Spec says {spec.n_examples} examples but it made {n}")
    if inputs.shape[1:] != tuple(spec.input_shape):
        _fail(data, f"an example has shape {inputs.shape[1:]}, its Spec says {spec.input_shape}")
    if spec.tokens:
        if not np.issubdtype(inputs.dtype, np.integer):
            _fail(data, f"token inputs must be integers (got {inputs.dtype})")
        if inputs.min() < 0 or inputs.max() >= spec.vocab_size:
            _fail(data, f"tokens are 0..{spec.vocab_size - 1}; found {_range(inputs)}")
    else:
        if inputs.dtype == bool or not np.issubdtype(inputs.dtype, np.number):
            _fail(data, f"inputs must be numbers (got {inputs.dtype})")
        bad = int(np.size(inputs) - np.isfinite(inputs).sum())
        if bad:
            _fail(data, f"{bad} input value(s) are NaN or infinite")
    if spec.kind == data_lib.CLASSIFICATION:
        classes = spec.n_labels or spec.n_outputs
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            _fail(
                data,
                f"a classification's labels are integer classes of shape [N] "
                f"(got {labels.dtype} {labels.shape})",
            )
        if labels.min() < 0 or labels.max() >= classes:
            _fail(data, f"labels are classes 0..{classes - 1}; found {_range(labels)}")
    else:
        if labels.shape[1:] != (spec.n_outputs,):
            _fail(data, f"targets of shape [N, {spec.n_outputs}] (got {labels.shape})")
        bad = int(np.size(labels) - np.isfinite(labels).sum())
        if bad:
            _fail(data, f"{bad} target value(s) are NaN or infinite")


def _structure(tree: Any) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, [(x.shape, x.dtype) for x in leaves]


def check_network(cfg, net: Network) -> None:
    """Evaluate the network abstractly (`jax.eval_shape`) on two examples: floating
    parameters, outputs [2, classes or width] in training and evaluation, state kept."""
    spec = cfg.data.spec
    name = cfg.model.name

    def fail(what: str) -> None:
        raise ConfigError(f"model.name={name!r} is not allowed: {what}")

    dtype = jnp.int32 if spec.tokens else jnp.float32
    inputs = jax.ShapeDtypeStruct((2, *spec.input_shape), dtype)
    key = jax.random.key(0)
    with user_code("model.name", name, "when it was initialised"):
        params, state = jax.eval_shape(net.init, key)
    leaves = jax.tree.leaves(params)
    if not leaves:
        fail("it has no trainable parameters")
    not_float = [x.dtype for x in leaves if not jnp.issubdtype(x.dtype, jnp.floating)]
    if not_float:
        fail(f"its parameters must be floating point (found {not_float[0]})")
    with user_code("model.name", name, "in a training step"):
        trained, new_state = jax.eval_shape(net.train_apply, params, state, inputs, key)
    with user_code("model.name", name, "at evaluation"):
        evaluated = jax.eval_shape(net.apply, params, state, inputs)
    if spec.kind == data_lib.CLASSIFICATION:
        allowed = {spec.n_outputs, spec.n_labels or spec.n_outputs}
        wanted = " or ".join(str(c) for c in sorted(allowed))
        what = f"[batch, {wanted}] logits for the task's classes"
    else:
        allowed = {spec.n_outputs}
        what = f"[batch, {spec.n_outputs}] outputs for the task's targets"
    for outputs, when in ((trained, "in training"), (evaluated, "at evaluation")):
        if not isinstance(outputs, jax.ShapeDtypeStruct):
            fail(f"it returned a {type(outputs).__name__} {when}; it must return {what}")
        if outputs.ndim != 2 or outputs.shape[0] != 2 or outputs.shape[1] not in allowed:
            fail(f"it returned outputs of shape {outputs.shape} {when} for 2 examples; {what}")
        if not jnp.issubdtype(outputs.dtype, jnp.floating):
            fail(f"its outputs must be floating point (got {outputs.dtype} {when})")
    if _structure(new_state) != _structure(state):
        fail("a training step changed the structure, shapes or dtypes of its state")
