"""The README's Python examples run (shrunk to a tiny size) and do what they say."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    text = README.read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))
    assert "gj.jit(jax.vmap(trainer.train" in code  # fast by default, the obvious way
    small = code.replace("modulus=23, train_fraction=0.7", "modulus=11, train_fraction=0.5")
    small = small.replace("steps=1500", "steps=20").replace("every=50", "every=10")
    assert small != code
    namespace: dict = {}
    exec(compile(small, "README.md", "exec"), namespace)
    assert namespace["grid_metrics"]["test_acc"].shape == (3, 8, 3)
    assert namespace["metrics"]["test_acc"].shape == (8, 3)
    assert namespace["summary"]["ensemble"]["generalisation_step"]["n"] == 8
    assert namespace["params"]["w"].shape == (3,)  # the WanD example took a step
    assert 0.0 <= float(namespace["state"].weight) <= 1.0  # the blend example took a step
    # your own model and data: four seeds, and they learned the clusters
    assert namespace["my_metrics"]["test_acc"].shape == (4, 7)
    assert float(namespace["my_metrics"]["test_acc"][:, -1].min()) > 0.5
    # a linen BatchNorm + Dropout model and an NNX model, four seeds each, learned too
    for name in ("bn_metrics", "nnx_metrics"):
        assert namespace[name]["test_acc"].shape == (4, 7)
        assert float(namespace[name]["test_acc"][:, -1].min()) > 0.5, name
    assert "BatchNorm_0" in namespace["bn_state"].model_state["batch_stats"]
