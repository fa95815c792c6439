"""One writer per directory: an advisory lock that a job holds for its lifetime.

Every job that writes a directory (`run`, `compare`, `sweep`, `landscape`, a resume, an
overwrite, a report into it) holds `DirLock(directory)`: an exclusive `flock` on the
file `.grokjax.lock` inside it, which records the holder's process id, host and
command. A second writer is refused in one line naming the holder. The kernel drops
the lock when its process dies, however it dies, so a lock left by a dead process is
simply taken (the file still names it, and the taker says so on stderr). The lock is
re-entrant within a process (a sweep holds its directory while each cell's run holds
its own). It is advisory and local: processes on other hosts sharing a network
filesystem may not see it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from grokjax.errors import ConfigError

LOCK_FILE = ".grokjax.lock"
_HELD: dict[Path, list] = {}  # directory -> [open file, depth], this process's locks


def holder(directory: Path) -> dict:
    """What the lock file of `directory` says of its last holder ({} if none)."""
    try:
        return json.loads((Path(directory) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return {}


class DirLock:
    """`with DirLock(directory):` holds the directory's lock (making the directory if it
    is missing; it is removed again if the lock is refused and it was made here)."""

    def __init__(self, directory: str | os.PathLike, what: str = "out"):
        self.directory = Path(directory)
        self.what = what
        self.made = False

    def __enter__(self) -> DirLock:
        key = self.directory.resolve()
        if key in _HELD:
            _HELD[key][1] += 1
            return self
        self.made = not self.directory.exists()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self.directory / LOCK_FILE, "a+")  # noqa: SIM115 (held open)
        except OSError as err:
            raise ConfigError(
                f"{self.what}={str(self.directory)!r} is not allowed: {err.strerror or err}"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            who = holder(self.directory)
            self._unmake()
            raise refusal(self.directory, who, self.what) from None
        before = holder(self.directory)
        if before and not before.get("released") and before.get("pid") != os.getpid():
            print(
                f"grokjax: took over the lock of {self.directory} left by process "
                f"{before.get('pid')} on {before.get('host')}, which no longer holds it",
                file=sys.stderr,
            )
        self._write(handle, released=False)
        _HELD[key] = [handle, 1]
        return self

    def _write(self, handle, released: bool) -> None:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(["grokjax", *sys.argv[1:]])[:200],
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "released": released,
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(record))
        handle.flush()

    def _unmake(self) -> None:
        if self.made:
            with contextlib.suppress(OSError):
                (self.directory / LOCK_FILE).unlink(missing_ok=True)
                self.directory.rmdir()

    def __exit__(self, *_) -> None:
        key = self.directory.resolve()
        entry = _HELD.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            with contextlib.suppress(OSError):  # a full disk: the kernel still drops the lock
                self._write(entry[0], released=True)
            entry[0].close()
            del _HELD[key]


def busy(directory: str | os.PathLike) -> dict | None:
    """The holder's record if another process holds the lock of `directory` now; None
    if nobody does (or this process does). Takes nothing."""
    path = Path(directory)
    if path.resolve() in _HELD or not (path / LOCK_FILE).is_file():
        return None
    with contextlib.suppress(OSError), open(path / LOCK_FILE) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return holder(path) or {"pid": "?", "host": "?"}
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def refusal(directory: str | os.PathLike, who: dict, what: str = "out") -> ConfigError:
    """The one line that refuses a second writer of `directory`."""
    return ConfigError(
        f"{what}={str(directory)!r} is being written by process {who.get('pid', '?')} on "
        f"{who.get('host', '?')} ({who.get('command', 'grokjax')}); wait for it, or stop it"
    )
