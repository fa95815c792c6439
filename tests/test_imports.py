"""Importing grokjax, and making its figures, change no process-wide state.

Run in a fresh interpreter: the test process itself has already imported everything and
applied the command's XLA flags (conftest.py).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import importlib, json, os, pkgutil, sys
    import matplotlib
    matplotlib.use("svg")  # a user's own choice, which grokjax must leave alone
    before = {"xla": os.environ.get("XLA_FLAGS"), "backend": matplotlib.get_backend()}

    import grokjax
    for info in pkgutil.walk_packages(grokjax.__path__, "grokjax."):
        importlib.import_module(info.name)
    after_import = {"xla": os.environ.get("XLA_FLAGS"), "backend": matplotlib.get_backend()}

    import numpy as np
    from grokjax.plots import ensemble_figures
    from grokjax.host.sweep import from_censored_steps, survival_figure
    steps = np.array([0, 10, 20])
    values = np.array([[0.1, 0.5, 0.9], [0.2, 0.6, 1.0]])
    histories = {k: values for k in ("train_acc", "test_acc", "smoothed_test_acc",
                                     "train_loss", "test_loss", "weight_norm")}
    written = ensemble_figures(histories, steps, __import__("pathlib").Path(sys.argv[1]), "t")
    survival_figure({"a": from_censored_steps([10, None], 20)}, sys.argv[1] + "/s.png", "t")
    import matplotlib.pyplot as plt
    after_figures = {"xla": os.environ.get("XLA_FLAGS"), "backend": matplotlib.get_backend(),
                     "open_figures": len(plt.get_fignums()),
                     "written": [p.name for p in written]}
    print(json.dumps({"before": before, "import": after_import, "figures": after_figures,
                      "modules": sorted(m for m in sys.modules if m.startswith("grokjax"))}))
    """
)


def test_import_leaves_xla_flags_and_matplotlib_backend_unchanged(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_cpu_enable_fast_math=false", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = str(ROOT)
    env.pop("MPLBACKEND", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {"xla": "--xla_cpu_enable_fast_math=false", "backend": "svg"}
    assert seen["before"] == expected
    assert seen["import"] == expected, "import grokjax changed process-wide state"
    figures = seen["figures"]
    assert {k: figures[k] for k in expected} == expected, "making a figure changed the backend"
    assert figures["open_figures"] == 0  # grokjax's figures never join pyplot's list
    assert figures["written"] == ["accuracy.png", "loss.png", "weight_norm.png"]
    assert "grokjax.cli" in seen["modules"] and "grokjax.xla_flags" in seen["modules"]


def test_recommended_cpu_flags_are_opt_in_and_respect_the_users_own():
    from grokjax.xla_flags import RECOMMENDED_CPU_FLAGS, use_recommended_cpu_flags

    env = {}
    assert use_recommended_cpu_flags(env) == list(RECOMMENDED_CPU_FLAGS)
    assert env["XLA_FLAGS"] == " ".join(RECOMMENDED_CPU_FLAGS)
    assert use_recommended_cpu_flags(env) == []  # applying twice adds nothing
    name = RECOMMENDED_CPU_FLAGS[0].split("=")[0]
    own = {"XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {name}=default"}
    assert use_recommended_cpu_flags(own) == []
    assert own["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {name}=default"
    other = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    use_recommended_cpu_flags(other)
    assert other["XLA_FLAGS"].split() == [
        "--xla_force_host_platform_device_count=2",
        *RECOMMENDED_CPU_FLAGS,
    ]


def test_compile_options_are_per_compilation_and_respect_the_users_own():
    import jax.numpy as jnp

    import grokjax as gj
    from grokjax.xla_flags import RECOMMENDED_CPU_OPTIONS, compiler_options

    assert compiler_options("cpu", {}) == RECOMMENDED_CPU_OPTIONS
    assert compiler_options("gpu", {}) == {} and compiler_options("tpu", {}) == {}
    name = next(iter(RECOMMENDED_CPU_OPTIONS))
    assert compiler_options("cpu", {"XLA_FLAGS": f"--{name}=default"}) == {}
    before = os.environ.get("XLA_FLAGS")
    fast = gj.jit(lambda x: jnp.sin(x).sum())
    assert float(fast(jnp.zeros(3))) == 0.0
    assert os.environ.get("XLA_FLAGS") == before  # nothing process-wide
    assert fast.lower(jnp.zeros(3)).compile() is not None


def test_the_command_changes_no_process_wide_setting(capsys):
    from grokjax.cli import main

    before = os.environ.get("XLA_FLAGS")
    assert main(["presets"]) == 0
    assert os.environ.get("XLA_FLAGS") == before


def test_every_compile_site_goes_through_grokjax_jit():
    """No module of the package calls jax.jit itself: each compiles with `xla_flags.jit`."""
    import ast

    offenders = []
    for path in sorted((ROOT / "grokjax").rglob("*.py")):
        if path.name == "xla_flags.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            func = getattr(node, "func", None)
            if (
                isinstance(node, ast.Call)
                and isinstance(func, ast.Attribute)
                and func.attr in ("jit", "pmap")
                and isinstance(func.value, ast.Name)
                and func.value.id == "jax"
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
