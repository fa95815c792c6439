"""The examples in public docstrings run and print what they claim."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "grokjax.data",
        "grokjax.models",
        "grokjax.train",
        "grokjax.wand",
        "grokjax.blend",
        "grokjax.wlmd",
        "grokjax.ageing",
        "grokjax.phases",
        "grokjax.survival",
    ],
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
