"""Objects a config names by reference: 'path/to/file.py:attr' or 'package.module:attr'."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from grokjax.errors import ConfigError


def load_attribute(reference: str, field: str) -> Any:
    """The object 'path/to/file.py:attr' or 'package.module:attr' names (cached by
    Python's module cache); a one-line error naming `field` otherwise."""
    where, _, attr = reference.rpartition(":")
    try:
        if where.endswith(".py"):
            path = Path(where).resolve()
            name = "grokjax_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
            module = sys.modules.get(name)
            if module is None:
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or not path.is_file():
                    raise FileNotFoundError(where)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
        else:
            module = importlib.import_module(where)
        return getattr(module, attr)
    except (ImportError, FileNotFoundError, AttributeError) as err:
        raise ConfigError(
            f"{field}={reference!r} is not allowed: cannot import it ({type(err).__name__}: "
            f"{err}); write path/to/file.py:attribute or package.module:attribute"
        ) from None
