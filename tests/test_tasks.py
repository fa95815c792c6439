"""Tasks beyond modular arithmetic: the user's own model and data, the new losses, the
built-in tasks (MNIST, digits, sparse parity, teacher-student), and their presets."""

import socket
import subprocess
import sys
import textwrap

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grokjax
from grokjax.config import Config, Hparams
from grokjax.errors import ConfigError
from grokjax.problem import data as data_lib
from grokjax.problem import metrics
from grokjax.problem.models import make_model

# --- the user's own model and data, defined here ---------------------------------------


class TwoLayer(nn.Module):
    """A model grokjax does not know: two dense layers with a tanh."""

    width: int = 16

    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(jnp.tanh(nn.Dense(self.width)(x)))


def blobs(n: int = 90, seed: int = 0):
    """Three Gaussian blobs in 4-D, labels 0..2."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centres = rng.normal(size=(3, 4)) * 2
    return (centres[labels] + rng.normal(size=(n, 4))).astype(np.float32), labels


def user_config(task: str, model: str, **changes) -> Config:
    paths = {
        "data.task": task,
        "model.name": model,
        "steps": 6,
        "eval.every": 2,
        "optim.warmup_steps": 0,
        **changes,
    }
    return Config(**paths)


def test_user_module_and_data_train_as_an_ensemble_equal_to_single_runs():
    task = grokjax.register_task("test-blobs", grokjax.from_arrays(*blobs()))
    model = grokjax.register_model("test-two-layer", TwoLayer())
    cfg = user_config(task, model, batch_size=20)
    assert (cfg.data.n_train, cfg.data.n_test) == (45, 45)
    trainer = grokjax.make_train(cfg)
    hp = Hparams(learning_rate=1e-2, weight_decay=0.1, init_scale=1.5)
    keys = grokjax.member_keys(range(3))
    _, ensemble = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)))(keys, hp)
    single = jax.jit(trainer.train)
    for i in range(3):
        _, alone = single(jax.random.key(i), hp)
        chex.assert_trees_all_close(
            jax.tree.map(lambda x, i=i: x[i], ensemble), alone, rtol=1e-4, atol=1e-5
        )
    assert ensemble["train_acc"].shape == (3, 4)
    assert np.all(np.isfinite(ensemble["train_loss"]))
    # training moved the parameters away from a loss of chance level
    assert np.all(ensemble["train_loss"][:, -1] < ensemble["train_loss"][:, 0])


def test_init_scale_multiplies_every_parameter_of_a_user_model():
    task = grokjax.register_task("test-blobs", grokjax.from_arrays(*blobs()))
    cfg = user_config(task, grokjax.register_model("test-two-layer", TwoLayer()))
    trainer = grokjax.make_train(cfg)
    one = trainer.init(jax.random.key(0), Hparams(init_scale=1.0)).params
    three = trainer.init(jax.random.key(0), Hparams(init_scale=3.0)).params
    chex.assert_trees_all_close(jax.tree.map(lambda p: 3 * p, one), three, rtol=1e-6)
    # and vmapped over alpha, as a sweep would
    scales = Hparams(init_scale=jnp.array([1.0, 3.0]))
    states = jax.vmap(trainer.init, in_axes=(None, scales.axes()))(jax.random.key(0), scales)
    chex.assert_trees_all_close(jax.tree.map(lambda p: p[1], states.params), three, rtol=1e-6)


def test_fixed_split_regression_from_arrays():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 2)).astype(np.float32), rng.normal(size=(30, 2))
    source = grokjax.from_arrays(x[:20], y[:20], x[20:], y[20:])
    task = grokjax.register_task("test-fixed-regression", source)
    cfg = user_config(task, "mlp", loss="mse", **{"model.d_mlp": 8})
    assert cfg.data.spec.kind == "regression" and cfg.data.spec.presplit
    ds = data_lib.make(jax.random.key(5), cfg.data)
    np.testing.assert_array_equal(ds.train_inputs, x[:20])  # the user's split, in order
    np.testing.assert_allclose(ds.test_labels, y[20:].astype(np.float32))
    with pytest.raises(ConfigError, match="loss=.*mse"):
        user_config(task, "mlp")  # cross-entropy on a regression
    with pytest.raises(ConfigError, match="data.train_size"):
        user_config(task, "mlp", loss="mse", **{"data.train_size": 10})


def test_from_arrays_refuses_mismatched_arrays():
    with pytest.raises(ConfigError, match="same N"):
        grokjax.from_arrays(np.zeros((5, 2)), np.zeros(4, int))
    with pytest.raises(ConfigError, match="both test_inputs"):
        grokjax.from_arrays(np.zeros((5, 2)), np.zeros(5, int), np.zeros((2, 2)))


def test_user_task_and_model_by_file_reference_through_the_command(tmp_path):
    user = tmp_path / "mine.py"
    user.write_text(
        textwrap.dedent(
            """
            import flax.linen as nn
            import numpy as np
            import grokjax

            rng = np.random.default_rng(0)
            labels = np.arange(80) % 2
            task = grokjax.from_arrays(rng.normal(size=(80, 3)) + labels[:, None], labels)

            class Net(nn.Module):
                @nn.compact
                def __call__(self, x):
                    return nn.Dense(2)(nn.relu(nn.Dense(8)(x)))
            """
        )
    )
    out = tmp_path / "run"
    args = [
        sys.executable, "-m", "grokjax.cli", "run", "--seeds", "2", "--no-progress",
        "--out", str(out), "--set", f"data.task={user}:task", "--set", f"model.name={user}:Net",
        "--set", "steps=20", "--set", "eval.every=10",
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "summary.json").exists() and (out / "metrics.parquet").exists()
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    with pytest.raises(ConfigError, match="data.task=.*cannot import"):
        Config(**{"data.task": f"{user}:nothing"})
    with pytest.raises(ConfigError, match="model.name=.*cannot import"):
        make_model(Config(**{"model.name": f"{tmp_path}/absent.py:Net"}).model, None)


# --- losses against hand computations -----------------------------------------------------


def test_hinge_by_hand():
    logits = jnp.array([[2.0, 0.5, -1.0], [0.0, 0.2, 0.1]])
    labels = jnp.array([0, 2])
    # margins 1.5 and 0.1 - 0.2 = -0.1: max(0, 1 - m) = 0 and 1.1
    np.testing.assert_allclose(jax.jit(metrics.hinge)(logits, labels), (0.0 + 1.1) / 2, rtol=1e-6)
    # two classes: the binary hinge max(0, 1 - y f) with f = logit_1 - logit_0, y = +-1
    two = jnp.array([[0.3, -0.2], [-0.4, 0.9]])
    y = jnp.array([-1.0, 1.0])
    f = two[:, 1] - two[:, 0]
    want = jnp.maximum(0.0, 1 - y * f).mean()
    np.testing.assert_allclose(metrics.hinge(two, jnp.array([0, 1])), want, rtol=1e-6)


def test_one_hot_mse_by_hand():
    out = jnp.array([[0.5, 0.0, 2.0], [1.0, 1.0, 1.0]])
    labels = jnp.array([2, 0])
    # (0.25 + 0 + 1) + (0 + 1 + 1), over 6 outputs
    np.testing.assert_allclose(jax.jit(metrics.one_hot_mse)(out, labels), 3.25 / 6, rtol=1e-6)


def test_regression_mse_accuracy_and_smoothed_accuracy_by_hand():
    out = jnp.array([[0.0, 0.0], [0.1, 0.0], [0.01, 0.02]])
    target = jnp.zeros((3, 2))
    errors = np.array([0.0, 0.005, 0.00025])  # mean squared error per example
    np.testing.assert_allclose(metrics.mse(out, target), errors.mean(), rtol=1e-5)
    acc = jax.jit(metrics.regression_accuracy, static_argnums=2)(out, target, 1e-3)
    np.testing.assert_allclose(acc, 2 / 3)
    smooth = metrics.smoothed_regression_accuracy(out[1:], target[1:], 1e-3, 7.0)
    by_hand = 1 / (1 + np.exp(-7.0 * (np.log(1e-3) - np.log(errors[1:]))))
    np.testing.assert_allclose(smooth, by_hand.mean(), rtol=1e-5)


def test_objective_records_stablemax_runs_as_softmax_and_hinge_runs_as_hinge():
    eval_cfg = Config().eval
    logits, labels = jnp.array([[3.0, -1.0, 0.5]]), jnp.array([1])
    stable = metrics.make_objective("stablemax", "classification", eval_cfg)
    assert stable.train_loss is metrics.stablemax_cross_entropy
    np.testing.assert_allclose(stable.loss(logits, labels), metrics.cross_entropy(logits, labels))
    hinge = metrics.make_objective("hinge", "classification", eval_cfg)
    np.testing.assert_allclose(hinge.loss(logits, labels), 1 - (-1.0 - 3.0))
    regression = metrics.make_objective("mse", "regression", eval_cfg)
    assert np.isnan(regression.saturated(logits))


# --- built-in tasks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "changes", "shape", "classes", "sizes"),
    [
        ("mnist", {"data.train_size": 1000}, (28, 28, 1), 10, (1000, 4000)),
        ("digits", {"data.train_size": 1000}, (8, 8, 1), 10, (1000, 797)),
        ("parity", {"data.test_size": 200}, (40,), 2, (1000, 200)),
        ("parity", {"data.parity_bits": 43, "data.train_size": 64}, (43,), 2, (64, 1000)),
        ("teacher-student", {"loss": "mse"}, (5,), None, (100, 100)),
    ],
)
def test_builtin_task_shapes_labels_and_split(task, changes, shape, classes, sizes):
    cfg = Config(**{"data.task": task, "model.name": "mlp", **changes})
    ds = data_lib.make(jax.random.key(0), cfg.data)
    assert (cfg.data.n_train, cfg.data.n_test) == sizes
    assert ds.train_inputs.shape == (sizes[0], *shape)
    assert ds.test_inputs.shape == (sizes[1], *shape)
    if classes is None:  # regression: real targets of the teacher's width
        assert ds.train_labels.shape == (sizes[0], 5) and ds.train_labels.dtype == jnp.float32
        assert float(jnp.std(ds.train_labels)) > 0.01
    else:
        labels = np.concatenate([ds.train_labels, ds.test_labels])
        assert labels.dtype == np.int32 and set(np.unique(labels)) == set(range(classes))
    if task in ("mnist", "digits"):
        pixels = np.asarray(ds.train_inputs)
        assert pixels.min() == 0.0 and pixels.max() == 1.0
        # a split: no image is in both halves (the pool has exact duplicates only rarely)
        flat_train = {row.tobytes() for row in pixels.reshape(sizes[0], -1)}
        test = np.asarray(ds.test_inputs).reshape(sizes[1], -1)
        assert sum(row.tobytes() in flat_train for row in test) <= 2


def test_parity_label_is_the_parity_of_the_first_k_bits():
    cfg = Config(**{"data.task": "parity", "model.name": "mlp", "data.parity_k": 3})
    ds = data_lib.make(jax.random.key(3), cfg.data)
    bits = np.asarray(ds.train_inputs)
    assert set(np.unique(bits)) == {-1.0, 1.0}
    odd = (bits[:, :3] < 0).sum(axis=1) % 2
    np.testing.assert_array_equal(ds.train_labels, odd)
    assert 0.4 < odd.mean() < 0.6


def test_teacher_targets_are_the_teachers_outputs():
    cfg = Config(**{"data.task": "teacher-student", "model.name": "mlp", "loss": "mse"})
    a = data_lib.make(jax.random.key(0), cfg.data)
    b = data_lib.make(jax.random.key(0), cfg.data.replace(teacher_scale=2.0))
    np.testing.assert_array_equal(a.train_inputs, b.train_inputs)  # same inputs, same split
    assert not np.allclose(a.train_labels, b.train_labels)  # a different teacher


def test_mnist_loads_with_the_network_disabled(monkeypatch):
    data_lib._mnist_5k.cache_clear()

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    images, labels = data_lib._mnist_5k()
    assert images.shape == (5000, 28, 28, 1) and labels.shape == (5000,)
    assert np.bincount(labels).min() > 400  # every digit, about 500 each


def test_builtin_models_fit_their_inputs():
    mnist = Config(**{"data.task": "mnist", "model.name": "mlp", "model.n_layers": 2,
                      "model.d_mlp": 200})  # fmt: skip
    params = make_model(mnist.model, mnist.data.spec).init(jax.random.key(0))
    assert grokjax.count_params(params) == 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10
    # PyTorch's default initialisation: uniform in +-1/sqrt(fan_in), biases too
    kernel = np.asarray(params["hidden_0"]["kernel"])
    assert np.abs(kernel).max() <= 1 / np.sqrt(784)
    np.testing.assert_allclose(kernel.std(), 1 / np.sqrt(3 * 784), rtol=0.02)
    assert np.abs(np.asarray(params["hidden_0"]["bias"])).max() > 0
    cnn = mnist.replace(**{"model.name": "cnn", "model.d_model": 8, "model.n_layers": 2})
    model = make_model(cnn.model, cnn.data.spec)
    out = model.apply(model.init(jax.random.key(0)), jnp.zeros((2, 28, 28, 1)))
    assert out.shape == (2, 10)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"data.task": "mnist"}, "model.name"),  # the transformer reads tokens
        ({"data.task": "parity", "model.name": "cnn"}, "model.name"),
        ({"data.task": "teacher-student", "model.name": "mlp"}, "loss"),
        ({"data.task": "mnist", "model.name": "mlp", "data.train_size": 5000}, "data.train_size"),
        ({"data.task": "parity", "data.parity_k": 41}, "data.parity_k"),
        ({"data.task": "nope"}, "data.task"),
        ({"model.name": "nope"}, "model.name"),
        ({"model.activation": "sigmoid"}, "model.activation"),
    ],
)
def test_mismatched_settings_name_the_field(changes, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        Config(**changes)


def test_warmup_of_zero_steps_trains_at_the_full_learning_rate():
    schedule = grokjax.warmup(1e-3, 0)
    assert float(schedule(0)) == pytest.approx(1e-3) and float(schedule(100)) == pytest.approx(1e-3)


@pytest.mark.parametrize(
    "name",
    ["mnist-omnigrok", "digits-omnigrok", "parity-merrill", "parity-prieto", "teacher-student"],
)
def test_presets_beyond_modular_arithmetic_learn_in_a_few_steps(name):
    preset = grokjax.get_preset(name)
    cfg = preset.config.replace(steps=40, **{"eval.every": 20, "eval.log_points": 0})
    trainer = grokjax.make_train(cfg)
    _, m = jax.jit(trainer.train)(jax.random.key(0), preset.hparams)
    assert m["train_loss"].shape == (3,)
    assert float(m["train_loss"][-1]) < float(m["train_loss"][0])


def test_sweep_and_compare_take_tasks_beyond_modular_arithmetic(tmp_path):
    from grokjax.host.compare import compare_named
    from grokjax.host.sweep import run_sweep

    task = grokjax.register_task("test-blobs", grokjax.from_arrays(*blobs()))
    cfg = user_config(task, "mlp", **{"model.d_mlp": 16, "steps": 10, "eval.every": 5})
    swept = run_sweep(
        cfg,
        Hparams(learning_rate=1e-2, weight_decay=0.1),
        {"init_scale": (1.0, 4.0), "loss": ("cross_entropy", "hinge")},
        2,
        tmp_path / "sweep",
        progress=False,
    )
    assert len(swept.cells) == 4 and (tmp_path / "sweep" / "cells.csv").exists()
    settings = ["steps=20", "eval.every=10", "eval.log_points=0", "data.train_size=200"]
    compared = compare_named(
        ["digits-omnigrok", "digits-omnigrok-alpha1"],
        range(2),
        settings=settings,
        out_dir=tmp_path / "compare",
        progress=False,
    )
    assert "digits" in compared.text()
