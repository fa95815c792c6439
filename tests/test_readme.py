"""The README's and the guide's Python examples run (shrunk to a tiny size) and do what
they say; the README keeps the commands CI and new users copy, and stays short."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide.md"

# Copied word for word by users and by CI (.ci/run runs the test command).
RUN_COMMAND = "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && grokjax run"
TEST_COMMAND = (
    'python3 -m venv .venv && . .venv/bin/activate && pip install -q -e ".[test]" '
    "&& python -m pytest -q"
)


def _python_blocks(path: Path) -> str:
    return "\n".join(re.findall(r"```python\n(.*?)```", path.read_text(), re.S))


def test_readme_and_guide_python_examples_run():
    code = _python_blocks(README)
    assert "gj.jit(jax.vmap(trainer.train" in code  # fast by default, the obvious way
    code += "\n" + _python_blocks(GUIDE)  # your own model and data, WanD, the blend
    small = code.replace(
        "data.modulus=23, train_fraction=0.7", "data.modulus=11, train_fraction=0.5"
    )
    small = small.replace("steps=1500", "steps=20").replace("every=50", "every=10")
    assert small != code
    namespace: dict = {}
    exec(compile(small, "README.md+docs/guide.md", "exec"), namespace)
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


def test_readme_keeps_the_quick_start_commands_and_ci_runs_its_test_command():
    lines = README.read_text().splitlines()
    assert RUN_COMMAND in lines
    assert TEST_COMMAND in lines
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[test]" && python -m pytest -q' in ci


def test_readme_is_short_and_tours_every_subcommand(capsys):
    from grokjax.cli import main

    text = README.read_text()
    assert len(text.splitlines()) <= 300
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = re.search(r"\{([a-z,]+)\}", capsys.readouterr().out).group(1).split(",")
    assert len(listed) >= 5
    for command in listed:
        assert f"grokjax {command}" in text, command


def test_readme_links_resolve():
    for path in (README, GUIDE):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.name}: {target}"
