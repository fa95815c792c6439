"""Run directories: refuse a directory that cannot be used as asked, before any compute;
start one afresh or check that a resumed one holds the same settings; write the files
only from one process. Every long job (`grokjax.host.experiment`, `grokjax.landscape`,
`grokjax.host.sweep`) goes through here.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np

from grokjax.errors import ConfigError
from grokjax.host.lock import LOCK_FILE, DirLock, busy, refusal
from grokjax.io import atomic_write_json, json_safe, read_json, remove_temporaries


def _writable(directory: Path) -> bool:
    """Whether a file can really be made in `directory` (os.access says yes to root even
    where the filesystem refuses, as in /proc or /sys)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def on_all_processes(fn: Callable, *args, writer_only: bool = False) -> None:
    """Call `fn(*args)` on every process (on process 0 alone with `writer_only`), then
    wait for all of them, and raise on every process if it raised on any.

    In a multi-process run the processes must take the same branch: one that gave up
    on a refused run directory while the others went on would leave them waiting in
    their first collective until it times out. The wait also orders the files: no
    process checks the run directory after process 0 has started writing it, and none
    returns before process 0 has written its outputs. With one process it is `fn(*args)`.
    """
    if jax.process_count() == 1:
        fn(*args)
        return
    from jax.experimental import multihost_utils

    error = None
    if not writer_only or jax.process_index() == 0:
        try:
            fn(*args)
        except Exception as err:  # re-raised below, after the others have heard of it
            error = err
    failed = np.asarray(multihost_utils.process_allgather(np.int32(error is not None)))
    if error is not None:
        raise error
    if failed.any():
        raise ConfigError(
            f"process {int(np.argmax(failed))} refused the run ({fn.__name__}): see its error"
        )


def check_out_dir(
    out_dir: Path, resume: bool, overwrite: bool, settings: str = "config.json"
) -> None:
    """Refuse, before any compute, a run directory that cannot be used as asked.

    `settings` names the file that records a run's settings (a landscape and a sweep use
    their own); a directory that holds files but not that one is no grokjax run of this
    kind, and neither resumed nor overwritten.
    """
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite are exclusive: choose one")
    who = busy(out_dir) if out_dir.is_dir() else None
    if who:
        raise refusal(out_dir, who)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"out={str(out_dir)!r} is not allowed: it is a file, not a directory")
    parent = out_dir if out_dir.exists() else out_dir.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not _writable(parent):
        raise ConfigError(
            f"out={str(out_dir)!r} is not allowed: {parent} is not a writable directory"
        )
    occupied = out_dir.exists() and any(p.name != LOCK_FILE for p in out_dir.iterdir())
    is_run = (out_dir / settings).is_file()
    if resume and not is_run:
        raise ConfigError(f"out={str(out_dir)!r}: nothing to resume (no {settings})")
    if occupied and overwrite and not is_run:
        raise ConfigError(
            f"out={str(out_dir)!r} is not allowed with overwrite: it holds files but no "
            f"{settings}, so it is not a grokjax run; choose another directory or empty it"
        )
    if occupied and not resume and not overwrite:
        raise ConfigError(
            f"out={str(out_dir)!r} already holds files: pass --resume to continue that run "
            "or --overwrite to replace it"
        )


def empty(directory: Path) -> None:
    """Delete everything in `directory` but its lock (held by this job)."""
    for path in directory.iterdir():
        if path.name == LOCK_FILE:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


@contextlib.contextmanager
def holding(directory: Path, what: str = "out") -> Iterator[None]:
    """Hold `directory`'s lock (`grokjax.host.lock`) on the writing process for the
    block; every process hears of a refusal."""
    lock = DirLock(directory, what)
    taken: list[bool] = []

    def take() -> None:
        lock.__enter__()
        taken.append(True)

    on_all_processes(take, writer_only=True)
    try:
        yield
    finally:
        if taken:
            lock.__exit__(None, None, None)


def first_difference(saved: Any, wanted: Any, path: str = "") -> str | None:
    """The first dotted field where two JSON-like records differ, with both values."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        for key in [*wanted, *(k for k in saved if k not in wanted)]:
            found = first_difference(saved.get(key), wanted.get(key), f"{path}{key}.")
            if found:
                return found
        return None
    if saved != wanted:
        return f"{path.rstrip('.')} (saved {saved!r}, now {wanted!r})"
    return None


def prepare_out_dir(
    out_dir: Path,
    record: dict,
    resume: bool,
    overwrite: bool,
    settings: str = "config.json",
    normalise: Callable[[dict], dict] = lambda saved: saved,
    topology: dict | None = None,
    extendable: str | None = None,
) -> int | None:
    """Resume: check the saved settings equal `record` (after `normalise`), naming the
    first field that differs, and remove the temporaries an interrupted write left;
    otherwise start the directory afresh. The settings are written with the jax version,
    the backend and `topology`; a resume on another topology says so on stderr (its
    numbers may differ by float round-off). The integer at the dotted path `extendable`
    (a run's 'config.steps') may grow on a resume, not shrink; the old value is returned
    (None when it did not change).
    """
    record = json_safe(record)  # compared with what was saved: JSON against JSON
    topology = json_safe(topology or {})
    if resume:
        saved = read_json(out_dir / settings, "the run's settings")
        if not isinstance(saved, dict):
            raise ConfigError(f"out={str(out_dir)!r}: {settings} does not hold a grokjax run")
        saved.pop("versions", None)
        before = saved.pop("topology", None)
        saved = normalise(saved)
        grown = None
        if extendable:
            old, new = _at(saved, extendable), _at(record, extendable)
            if isinstance(old, int) and isinstance(new, int) and old != new:
                if new < old:
                    raise ConfigError(
                        f"out={str(out_dir)!r}: {extendable} (saved {old}, now {new}): a "
                        "resume can extend a run, not shorten it"
                    )
                grown = old
                saved = _with(saved, extendable, new)
        difference = first_difference(saved, record)
        if difference:
            raise ConfigError(
                f"out={str(out_dir)!r} holds a run with another configuration: {difference}; "
                "a resume continues the run as it was started (--steps N extends it)"
            )
        if before and topology and before != topology:
            changed = ", ".join(
                f"{k} {before.get(k)} -> {topology.get(k)}"
                for k in topology
                if before.get(k) != topology.get(k)
            )
            print(
                f"grokjax: resuming {out_dir} on another topology ({changed}); numbers after "
                "the resume point may differ from an uninterrupted run by float round-off",
                file=sys.stderr,
            )
        remove_temporaries(out_dir)
        if grown is not None or (topology and before != topology):
            _write_settings(out_dir / settings, record, topology)
        return grown
    try:
        if overwrite and out_dir.exists():
            empty(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_settings(out_dir / settings, record, topology)
    except OSError as err:
        raise ConfigError(
            f"out={str(out_dir)!r} is not allowed: {err.strerror or err} ({err.filename})"
        ) from None
    return None


@contextlib.contextmanager
def open_run_dir(
    out_dir: Path, record: dict, resume: bool, overwrite: bool, settings: str, *prepare: Any
) -> Iterator[dict | None]:
    """How every job opens its directory: `check_out_dir` on every process, then, holding
    the lock, `prepare_out_dir` (with `prepare`: normalise, topology, extendable) on the
    writing process. Yields the settings as saved before (None unless resuming)."""
    on_all_processes(check_out_dir, out_dir, resume, overwrite, settings)
    with holding(out_dir):  # one writer: a second process is refused, naming this one
        saved = read_json(out_dir / settings, "the run's settings") if resume else None
        args = (out_dir, record, resume, overwrite, settings, *prepare)
        on_all_processes(prepare_out_dir, *args, writer_only=True)
        yield saved


def _write_settings(path: Path, record: dict, topology: dict) -> None:
    versions = {"jax": jax.__version__, "backend": jax.default_backend()}
    extra = {"topology": topology} if topology else {}
    atomic_write_json(path, {**record, "versions": versions, **extra})


def _at(record: dict, path: str) -> Any:
    for key in path.split("."):
        record = record.get(key) if isinstance(record, dict) else None
    return record


def _with(record: dict, path: str, value: Any) -> dict:
    head, _, rest = path.partition(".")
    return {**record, head: _with(record.get(head, {}), rest, value) if rest else value}
