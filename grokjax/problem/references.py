"""The user's own code: objects a config names by reference ('path/to/file.py:attr' or
'package.module:attr'), and errors raised inside the user's code, named by field, file
and line."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import re
import sys
import sysconfig
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grokjax.errors import ConfigError

_PACKAGE = str(Path(__file__).resolve().parents[1])  # grokjax/
_LIBRARIES = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def _is_library(filename: str) -> bool:
    if filename.startswith("<frozen") or not filename:
        return True
    try:
        path = str(Path(filename).resolve())
    except OSError:
        return False
    return path.startswith(_PACKAGE) or path.startswith(_LIBRARIES) or "site-packages" in path


def user_frame(err: BaseException) -> str:
    """'file:line (in function)' of the innermost frame of `err` outside grokjax, the
    standard library and installed packages: the user's own line; '' when none is."""
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}:{err.lineno}"
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        if not _is_library(frame.filename):
            return f"{frame.filename}:{frame.lineno} (in {frame.name})"
    return ""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    if isinstance(err, SyntaxError):
        text = err.msg or text
    text = re.sub(r"\s*\(https?://[^)]*\)", "", text)  # flax's links to its docs
    return text.splitlines()[0][:300] if text else ""


def user_error(field: str, value: Any, err: BaseException, doing: str = "") -> ConfigError:
    """The one-line error for an exception raised inside the user's code named by
    `field` (its value `value`): the field, the user's file and line, the exception (a
    grokjax ConfigError the user's code raised, e.g. from `from_arrays`, by its text)."""
    where = user_frame(err)
    at = f" at {where}" if where else ""
    during = f" {doing}" if doing else ""
    kind = "" if isinstance(err, ConfigError) else f"{type(err).__name__}: "
    hint = RNG_HINT if type(err).__name__ == "InvalidRngError" else ""
    text = f"{kind}{_first_line(err)}{hint}"
    return ConfigError(f"{field}={value!r}: your code raised{at}{during}: {text}")


RNG_HINT = (
    "; grokjax gives the 'dropout' stream, with train=True, to a linen module whose "
    "__call__ takes train"
)


@contextlib.contextmanager
def user_code(field: str, value: Any, doing: str = "") -> Iterator[None]:
    """Run the user's code named by `field`: any exception it raises becomes
    `user_error`'s one line (grokjax's own errors about it, already naming the field,
    pass as they are)."""
    try:
        yield
    except ConfigError as err:
        if str(err).startswith(field) or not user_frame(err):
            raise
        raise user_error(field, value, err, doing) from None
    except Exception as err:
        raise user_error(field, value, err, doing) from None


def load_attribute(reference: str, field: str) -> Any:
    """The object 'path/to/file.py:attr' or 'package.module:attr' names (cached by
    Python's module cache); a one-line error naming `field` otherwise, with the user's
    file and line when the module raised while it was imported (a syntax error too)."""
    where, _, attr = reference.rpartition(":")

    def cannot(reason: str) -> ConfigError:
        return ConfigError(
            f"{field}={reference!r} is not allowed: cannot import it ({reason}); "
            "write path/to/file.py:attribute or package.module:attribute"
        )

    try:
        if where.endswith(".py"):
            module = _load_file(Path(where))
        else:
            try:
                module = importlib.import_module(where)
            except ModuleNotFoundError as err:
                if not (err.name and where.startswith(err.name)):
                    raise  # a module the user's module imports
                module = None
    except Exception as err:  # the user's module raised while it was imported
        raise user_error(field, reference, err, "while it was imported") from None
    if module is None:
        raise cannot(f"no file {where}" if where.endswith(".py") else f"no module {where!r}")
    if not attr or not hasattr(module, attr):
        raise cannot(f"{where} has no attribute {attr!r}")
    return getattr(module, attr)


def _load_file(path: Path):
    """The module of the Python file `path`, executed once per process; None if absent."""
    path = path.resolve()
    name = "grokjax_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or not path.is_file():
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
