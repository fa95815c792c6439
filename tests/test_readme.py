"""The README's Python example runs (shrunk to a tiny size) and does what it says."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    text = README.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert "jax.jit(jax.vmap(trainer.train" in code
    small = code.replace("modulus=47, steps=1500", "modulus=11, steps=20, d_model=32, d_mlp=64")
    assert small != code
    namespace: dict = {}
    exec(compile(small, "README.md", "exec"), namespace)
    assert namespace["grid_metrics"]["test_acc"].shape == (3, 8, 3)
    assert namespace["metrics"]["test_acc"].shape == (8, 3)
    assert namespace["summary"]["ensemble"]["generalisation_step"]["n"] == 8
