"""The examples in public docstrings run and print what they claim."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "grokjax.problem.data",
        "grokjax.problem.models",
        "grokjax.train",
        "grokjax.optim.wand",
        "grokjax.optim.blend",
        "grokjax.wanglandau.wlmd",
        "grokjax.problem.ageing",
        "grokjax.stats.phases",
        "grokjax.stats.survival",
    ],
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# docs/reference.md is generated from the code's tables by scripts/make_reference.py.

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _make_reference():
    spec = importlib.util.spec_from_file_location(
        "make_reference", ROOT / "scripts" / "make_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_is_up_to_date():
    make_reference = _make_reference()
    assert (ROOT / "docs" / "reference.md").read_text() == make_reference.render(), (
        "docs/reference.md is stale: run python scripts/make_reference.py"
    )


def test_reference_check_flag(tmp_path):
    make_reference = _make_reference()
    out = tmp_path / "reference.md"
    assert make_reference.main(["--check", "--out", str(out)]) == 1  # missing
    out.write_text(make_reference.render() + "stale\n")
    assert make_reference.main(["--check", "--out", str(out)]) == 1
    assert make_reference.main(["--out", str(out)]) == 0
    assert make_reference.main(["--check", "--out", str(out)]) == 0


def test_reference_lists_every_preset_and_field():
    import grokjax.presets as presets
    from grokjax.config import field_paths

    text = (ROOT / "docs" / "reference.md").read_text()
    for kind in presets.REGISTRY.values():
        for name in kind:
            assert f"| `{name}` |" in text, name
    for path in field_paths():
        assert f"| `{path}` |" in text, path


def test_a_short_run_writes_the_listed_files(tmp_path):
    from grokjax.cli import main

    files = _make_reference().RUN_FILES
    out = tmp_path / "run"
    small = ["--set", "data.modulus=11", "--set", "model.d_model=32", "--set", "model.d_mlp=64"]
    args = ["run", "--steps", "20", "--seeds", "1", "--set", "eval.every=10", *small]
    assert main([*args, "--no-progress", "--out", str(out)]) == 0
    for name, when, _ in files:
        if when == "always" or name == "report.html":
            assert (out / name.rstrip("/")).exists(), name
    listed = {name for name, _, _ in files}
    from grokjax.host import experiment

    assert set(getattr(experiment, "OUTPUT_FILES", ())) <= listed


def test_the_other_listed_files_are_named_in_the_code():
    source = "\n".join(p.read_text() for p in (ROOT / "grokjax").rglob("*.py"))
    for command, name, _ in _make_reference().OTHER_FILES:
        if name.startswith("<"):
            continue
        stem = name.rsplit(".", 1)[0]
        assert f'"{name}"' in source or f'"{stem}"' in source, (command, name)
