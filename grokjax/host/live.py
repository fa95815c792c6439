"""The live view of a run in progress: what a running ensemble appends after every chunk,
and how a reader (the dashboard, a report) tells running, finished, interrupted and
diverged runs apart.

A run directory being trained holds, beside the files of `grokjax.host.experiment`,
    live.jsonl    one JSON line per chunk: {"lo", "hi", "steps", "metrics": {name:
                  [[value per evaluation lo..hi-1] per member]}} (NaN as null). A resumed
                  run rewrites it with one line of every evaluation it restored, then
                  appends; a reader skips a last line cut short by a kill.
    status.json   {"state": "running" | "finished", "pid", "host", "started", "updated",
                  "evaluations", "diverged_members"}, rewritten atomically.
`run_state` reads "running" as "interrupted" when the writing process is gone (same host,
no such pid) or has not written for `STALE_S` seconds. Appending is the only cost a run
pays (`benchmarks/live_overhead.py` measures it); `run_ensemble(live=False)` turns it off.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from grokjax.io import atomic_write_bytes, atomic_write_json, json_safe

LIVE_FILE = "live.jsonl"
STATUS_FILE = "status.json"
STALE_S = 6 * 3600.0  # a "running" status not updated for this long on another host
STATES = ("running", "finished", "interrupted", "diverged", "failed")


def _line(lo: int, steps_E: np.ndarray, metrics: Mapping[str, np.ndarray]) -> bytes:
    record = {
        "lo": int(lo),
        "hi": int(lo + len(steps_E)),
        "steps": np.asarray(steps_E).tolist(),
        "metrics": json_safe({k: np.asarray(v, np.float64) for k, v in metrics.items()}),
    }
    return (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()


class LiveStream:
    """Appends a running ensemble's evaluations to `live.jsonl` and keeps `status.json`.

    `append(lo, hi, histories)` after each chunk, with the full [members, evaluations]
    histories (the evaluations lo..hi-1 are new); the first call also writes every
    evaluation before lo (restored by a resume). `finish(diverged_members)` marks the
    run finished.
    """

    def __init__(self, out_dir: Path, steps_E: np.ndarray):
        self.out_dir = Path(out_dir)
        self.steps_E = np.asarray(steps_E)
        self.started = False
        self.status = {
            "state": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "updated": time.time(),
            "evaluations": 0,
            "total_evaluations": int(self.steps_E.size),
            "diverged_members": [],
        }

    def _write_status(self) -> None:
        self.status["updated"] = time.time()
        atomic_write_json(self.out_dir / STATUS_FILE, self.status)

    def append(self, lo: int, hi: int, histories: Mapping[str, np.ndarray]) -> None:
        path = self.out_dir / LIVE_FILE
        if not self.started:
            prefix = {k: v[:, :lo] for k, v in histories.items()}
            atomic_write_bytes(path, _line(0, self.steps_E[:lo], prefix) if lo else b"")
            self.started = True
        with open(path, "ab") as f:
            f.write(_line(lo, self.steps_E[lo:hi], {k: v[:, lo:hi] for k, v in histories.items()}))
        self.status["evaluations"] = int(hi)
        self._write_status()

    def interrupted(self, error: BaseException | None = None) -> None:
        """Mark the run interrupted (stopped) or, when `error` ended it, failed with the
        error's one line: what it finished is in its checkpoints and stream, and
        `resume=True` continues it. Best effort: a full disk must not hide the error."""
        failed = error is not None and not isinstance(error, KeyboardInterrupt)
        self.status["state"] = "failed" if failed else "interrupted"
        if failed:
            text = " ".join(str(error).split())[:500]
            self.status["error"] = f"{type(error).__name__}: {text}"
        with contextlib.suppress(OSError):
            self._write_status()

    def finish(self, diverged_members: Sequence[int]) -> None:
        self.status["state"] = "finished"
        self.status["diverged_members"] = [int(m) for m in diverged_members]
        self._write_status()


def read_live(run_dir: Path) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """The evaluations streamed so far: (steps [E], {name: [members, E]}) with NaN for
    missing values, or None when the run has no (readable) live stream. A line that does
    not parse (a kill mid-write) ends the stream there."""
    path = Path(run_dir) / LIVE_FILE
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    steps: list[np.ndarray] = []
    parts: dict[str, list[np.ndarray]] = {}
    for line in raw.splitlines():
        try:
            record = json.loads(line)
            block_steps = np.asarray(record["steps"], np.int64)
            block = {
                k: np.asarray(v, dtype=object).astype(np.float64).reshape(-1, block_steps.size)
                for k, v in record["metrics"].items()
            }
        except (ValueError, KeyError, TypeError):
            break
        if steps and set(block) != set(parts):
            break
        steps.append(block_steps)
        for k, v in block.items():
            parts.setdefault(k, []).append(v)
    if not steps:
        return None
    return np.concatenate(steps), {k: np.concatenate(v, axis=1) for k, v in parts.items()}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    return True


def run_state(run_dir: Path) -> str:
    """One of `STATES` for a run directory, from its status.json and summary.json.

    finished: summary.json written (or status says so), no member diverged; diverged:
    finished with at least one diverged member; running: status "running" and its
    process alive; failed: the run ended on an error (status.json's "error" says which);
    interrupted: otherwise (a checkpoint or a stream but no writer).
    """
    run_dir, status = Path(run_dir), _status(run_dir)
    if (run_dir / "summary.json").is_file() or status.get("state") == "finished":
        diverged = status.get("diverged_members")
        if diverged is None:
            diverged = _summary_diverged(run_dir)
        return "diverged" if diverged else "finished"
    if status.get("state") == "failed":
        return "failed"
    if status.get("state") == "running":
        pid, host = status.get("pid"), status.get("host")
        if host == socket.gethostname() and isinstance(pid, int):
            return "running" if _process_alive(pid) else "interrupted"
        fresh = time.time() - float(status.get("updated", 0.0)) < STALE_S
        return "running" if fresh else "interrupted"
    return "interrupted"


def run_error(run_dir: Path) -> str:
    """The error a failed run ended on, as its status.json records it ('' if none)."""
    return str(_status(run_dir).get("error", ""))


def _status(run_dir: Path) -> dict:
    """status.json ({} when missing or unreadable)."""
    try:
        status = json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def _summary_diverged(run_dir: Path) -> list[int]:
    try:
        members = json.loads((run_dir / "summary.json").read_text())["members"]
        return [i for i, m in enumerate(members) if m.get("diverged_step") is not None]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
