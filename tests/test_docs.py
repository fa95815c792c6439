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
