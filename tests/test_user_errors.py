"""The user's data, model and code checked at the door: each bad input below, written in a
user's file and named with `--set data.task=` or `--set model.name=`, is one line naming
the field and what is wrong (the user's file and line when their code raised), exit
status 2, nothing written, and nothing compiled."""

import textwrap
from pathlib import Path

import pytest
import user_zoo

import grokjax.host.experiment
from grokjax.cli import main

GOOD_TASK = f"{Path(user_zoo.__file__)}:task"

HEAD = """
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from flax import nnx
from grokjax import Source, Spec, from_arrays

rng = np.random.default_rng(0)
x = rng.normal(size=(60, 4)).astype(np.float32)
y = np.arange(60) % 3

def pool(spec, inputs, labels):
    return Source(lambda cfg: spec, lambda key, cfg: (inputs, labels))
"""

CLS = "classification"


def pool(spec: str, inputs: str = "x", labels: str = "y") -> str:
    """A user's Source whose Spec is `spec` and whose examples are `inputs`, `labels`."""
    return f"task = pool(Spec({spec}), {inputs}, {labels})"


def linen(body: str, train: bool = False) -> str:
    """A user's linen module whose __call__ is `body`."""
    signature = "self, x, train: bool" if train else "self, x"
    lines = textwrap.indent(textwrap.dedent(body).strip(), " " * 8)
    return f"class model(nn.Module):\n    @nn.compact\n    def __call__({signature}):\n{lines}"


def nnx_module(init: str, instance: str = "") -> str:
    """A user's NNX module whose __init__ is `init`."""
    lines = textwrap.indent(textwrap.dedent(init).strip(), " " * 8)
    call = "    def __call__(self, x):\n        return self.out(x)"
    signature = "self, width, rngs" if "width" in init else "self, rngs"
    return f"class model(nnx.Module):\n    def __init__({signature}):\n{lines}\n{call}\n{instance}"


# (case, code defining `task` or `model`, words the message must contain); a line
# marked "# raises" must be named as file:line.
TASKS = [
    ("labels -1..1", pool(f"'{CLS}', (4,), 3, 60", labels="y - 1"), "0..2; found -1..1"),
    ("labels at the class count", pool(f"'{CLS}', (4,), 3, 60", labels="y + 1"), "found 1..3"),
    ("NaN inputs", pool(f"'{CLS}', (4,), 3, 60", "x * np.nan"), "NaN or infinite"),
    ("infinite inputs", "x[3, 1] = np.inf\ntask = from_arrays(x, y)  # raises", "NaN or inf"),
    ("empty dataset", "task = from_arrays(x[:0], y[:0])  # raises", "no examples"),
    ("pool smaller than the split", pool(f"'{CLS}', (4,), 3, 100"), "fewer than the split"),
    ("wrong feature shape", pool(f"'{CLS}', (5,), 3, 60"), "has shape (4,)"),
    ("lengths differ", pool(f"'{CLS}', (4,), 3, 60", labels="y[:40]"), "labels of shape (40,)"),
    ("float class labels", pool(f"'{CLS}', (4,), 3, 60", labels="y * 1.0"), "integer classes"),
    (
        "tokens outside the vocabulary",
        pool(f"'{CLS}', (2,), 3, 60, vocab_size=5", "np.full((60, 2), 7)"),
        "tokens are 0..4",
    ),
    (
        "regression targets of another width",
        pool("'regression', (4,), 2, 60", labels="np.zeros((60, 3), np.float32)"),
        "[N, 2]",
    ),
    (
        "splits of different shapes",
        "task = from_arrays(x, y, x[:10, :3], y[:10])  # raises",
        "differ from the training split",
    ),
    (
        "examples() raises",
        f"def bad(key, cfg):\n    return 1 / 0  # raises\n"
        f"task = Source(lambda cfg: Spec('{CLS}', (4,), 3, 60), bad)",
        "ZeroDivisionError",
    ),
    (
        "spec() raises",
        "def spec(cfg):\n    return {}['width']  # raises\ntask = Source(spec, lambda k, c: 0)",
        "KeyError",
    ),
    (
        "spec() returns no Spec",
        "task = Source(lambda c: (4,), lambda k, c: (x, y))",
        "not a grokjax",
    ),
    (
        "a factory that raises",
        "def task():\n    raise RuntimeError('no data today')  # raises",
        "no data today",
    ),
    ("a syntax error", "task = from_arrays(x, y  # raises\nz = (", "SyntaxError"),
    (
        "a missing package",
        "import no_such_package_here  # raises\ntask = from_arrays(x, y)",
        "no_such_package_here",
    ),
    ("a missing attribute", "other = from_arrays(x, y)", "has no attribute 'task'"),
]

MODELS = [
    ("2 outputs for 3 classes", linen("return nn.Dense(2)(x)"), "shape (2, 2)"),
    ("outputs of one dimension", linen("return nn.Dense(3)(x).sum(-1)"), "shape (2,)"),
    ("integer outputs", linen("return nn.Dense(3)(x).astype(jnp.int32)"), "floating point"),
    (
        "no parameters",
        "from grokjax import Model\nmodel = Model(lambda key: {}, lambda p, x: x[:, :3])",
        "no trainable parameters",
    ),
    (
        "__call__ raises",
        linen("h = nn.Dense(8)(x)\nreturn h @ jnp.ones((5, 3))  # raises"),
        "TypeError",
    ),
    (
        "__call__(x, train) raises in training",
        linen(
            "if train:\n    raise ValueError('broken')  # raises\nreturn nn.Dense(3)(x)", train=True
        ),
        "in a training step",
    ),
    (
        "a random layer without a train switch",
        linen("return nn.Dropout(0.5, deterministic=False)(nn.Dense(3)(x))"),
        "'dropout' stream",
    ),
    (
        "a stream grokjax does not give",
        "import jax\n"
        + linen(
            "noise = jax.random.normal(self.make_rng('noise'), x.shape)  # raises\n"
            "return nn.Dense(3)(x + noise)",
            train=True,
        ),
        "noise",
    ),
    (
        "an NNX instance",
        nnx_module("self.out = nnx.Linear(4, 3, rngs=rngs)", "model = model(nnx.Rngs(0))"),
        "nnx.Module instance",
    ),
    (
        "an NNX constructor needing more",
        nnx_module("self.out = nnx.Linear(4, width, rngs=rngs)"),
        "needs width",
    ),
    (
        "an NNX constructor that raises",
        nnx_module("self.out = nnx.Linear(7, 3, rngs=rngs)\nassert False, 'broke'  # raises"),
        "AssertionError: broke",
    ),
    ("not a model", "model = 3", "names a int"),
]

CASES = [("data.task", *case) for case in TASKS] + [("model.name", *case) for case in MODELS]
IDS = [case for _, case, _, _ in CASES]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("grokjax: error: "), err
    return lines[0]


@pytest.mark.parametrize(("field", "case", "code", "words"), CASES, ids=IDS)
def test_bad_user_input_is_one_line_status_2_nothing_written_nothing_compiled(
    field, case, code, words, tmp_path, capsys, monkeypatch
):
    assert len(CASES) >= 20
    source = textwrap.dedent(HEAD) + "\n" + code + "\n"
    user = tmp_path / "mine.py"
    user.write_text(source)
    attr = "task" if field == "data.task" else "model"
    task = f"{user}:{attr}" if field == "data.task" else GOOD_TASK
    model = f"{user}:{attr}" if field == "model.name" else "mlp"

    def compiled(*args, **kwargs):
        raise AssertionError("the training program was compiled")

    monkeypatch.setattr(grokjax.host.experiment, "jit", compiled)
    out = tmp_path / "out"
    args = ["run", "--set", f"data.task={task}", "--set", f"model.name={model}", "--steps", "10"]
    args += ["--set", "eval.every=5", "--out", str(out), "--no-progress"]
    args += ["--set", "loss=mse"] if "regression" in code else []
    assert main(args) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{field}=" in line and words in line, line
    if "# raises" in code:  # the user's own line, by file and number
        number = source.splitlines().index(next(s for s in source.splitlines() if "# raises" in s))
        assert f"{user}:{number + 1}" in line, line
    assert not out.exists()


def test_a_users_raising_model_is_named_through_the_python_api_too():
    import flax.linen as nn

    import grokjax as gj
    from grokjax.errors import ConfigError

    class Broken(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(x) @ x  # shapes that do not fit

    task = gj.register_task("errors-zoo", user_zoo.task)
    model = gj.register_model("errors-broken", Broken())
    with pytest.raises(
        ConfigError,
        match=r"model.name='errors-broken': your code raised at .*test_user_errors.py:\d+",
    ):
        gj.make_train(gj.Config(**{"data.task": task, "model.name": model}))
