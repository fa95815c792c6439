"""Files as grokjax writes and reads them: atomic writes, strict JSON, one table reader.

Every file is written to a temporary `.<name>.<random>.tmp<suffix>` beside it and renamed
into place, so a reader (or a resumed run) sees the old file or the new one, never half
of one; `remove_temporaries` clears what a killed writer left. JSON is strict (no NaN or
Infinity tokens: `to_json` writes NaN as null and infinities as "inf" / "-inf", which
`Config`-style readers turn back into floats).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grokjax.errors import ConfigError


class RunDataError(ConfigError):
    """A run directory that cannot be read; the message names the file and why."""


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}(\.tmp(\.\w+)?|\.\w+)$")  # ours, and older ones


def remove_temporaries(directory: Path) -> list[Path]:
    """Delete the temporaries an interrupted atomic write left in `directory`; return them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if p.is_file() and _TEMPORARY.match(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


@contextlib.contextmanager
def _naming(path: Path):
    """An OSError of an atomic write names the file being written, not its temporary."""
    try:
        yield
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), str(path)) from None


def atomic_write_with(path: Path, writer: Callable[[str], Any]) -> None:
    """Call `writer(tmp_path)` and move the finished file into place; an error names
    `path`, not the temporary."""
    path = Path(path)
    with _naming(path):
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
        )
    os.close(fd)
    try:
        with _naming(path):
            writer(tmp)
            os.chmod(tmp, _default_mode())  # mkstemp makes 0600; give the usual permissions
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write_with(path, write)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def json_safe(obj: Any) -> Any:
    """`obj` with NaN as None and +-inf as "inf" / "-inf", numpy numbers as Python ones,
    tuples as lists: what strict JSON can hold."""
    if isinstance(obj, Mapping):  # dicts, and typed results that read as their JSON
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    return obj


def to_json(obj: Any) -> str:
    """Strict JSON text of `obj` (see `json_safe`); refuses anything else non-finite."""
    return json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, to_json(obj))


def read_json(path: Path, what: str = "file", error: type[ConfigError] = ConfigError) -> Any:
    """Parse a JSON file grokjax wrote, or raise a one-line `error` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{what} {str(path)!r} cannot be read as JSON: {err}") from None


def read_metrics(path: Path):
    """A run's metrics.parquet as a DataFrame, or RunDataError naming the file."""
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several kinds for a damaged file
        raise RunDataError(f"{path}: not a readable Parquet file ({error})") from None


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table of `rows` under `head`; cells as `str` gives them."""
    lines = ["| " + " | ".join(map(str, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)
