"""The one host loop of every long job: chunks, checkpoints, exact resume, progress,
profiling and `on_chunk` hooks.

A job (an ensemble, a landscape) is a carry (device state and the host arrays it fills)
and a `chunk(c, carry) -> carry` that runs chunk c of the compiled program and does the
job's own bookkeeping. `run_chunks` resumes from the last good checkpoint, runs the
chunks left, checkpoints the carry after each, and calls the hooks. A `Progress` bar
counts steps as the device takes them (`Progress.report` is a `jax.debug.callback`
target for the compiled program), not only between chunks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from grokjax.errors import ConfigError
from grokjax.host.checkpoint import Accept, ChunkCheckpointer, Upgrade, resume_point


class Progress:
    """A progress bar over `total` steps that members (or walkers) advance from inside
    compiled code.

    The program calls `report(steps_taken)` through `jax.debug.callback` after each of
    its segments, for one member or a batch of them; the bar shows the mean over the
    `n_members` members, so it reaches `total` when every member has taken `total` steps.
    `chunk_done(steps_in_chunk)` squares the count with the chunk's schedule after each
    chunk. With `enabled=False` nothing is drawn and nothing counted.
    """

    def __init__(self, total: int, n_members: int, *, desc: str = "", enabled: bool = True):
        self.total = total
        self.n_members = n_members
        self.enabled = enabled
        self.bar = None
        self.desc = desc
        self._lock = threading.Lock()
        self._chunk_start = self._shown = self._member_steps = 0

    def begin(self, initial: int) -> None:
        """Open the bar at `initial` steps (those of the chunks already checkpointed)."""
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self._chunk_start = self._shown = initial
        self._member_steps = initial * self.n_members
        self.bar = tqdm(total=self.total, initial=initial, unit="step", desc=self.desc)

    def report(self, steps_taken) -> None:
        """Add the steps of one segment of one member or a batch of members."""
        if self.bar is None:
            return
        with self._lock:
            self._member_steps += int(np.sum(steps_taken))
            self._draw(self._member_steps // self.n_members)

    def chunk_done(self, steps_in_chunk: int, **postfix: Any) -> None:
        """The chunk has finished: the bar stands at its end, whatever was reported."""
        if self.bar is None:
            return
        with self._lock:
            self._chunk_start += int(steps_in_chunk)
            self._member_steps = self._chunk_start * self.n_members
            self._draw(self._chunk_start)
            if postfix:
                self.bar.set_postfix(**postfix)

    def _draw(self, position: int) -> None:
        position = min(position, self.total)
        if position > self._shown:
            self.bar.update(position - self._shown)
            self._shown = position

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_profile_dir(profile_dir: str | os.PathLike | None) -> None:
    """Refuse, before any compute, a profile directory that is a file or cannot be made."""
    if profile_dir is None:
        return
    path = Path(profile_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"profile={str(path)!r} is not allowed: it is a file, not a directory")
    parent = path if path.exists() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"profile={str(path)!r} is not allowed: {parent} is not writable")


def run_chunks(
    chunk: Callable[[int, Any], Any],
    carry: Any,
    n_chunks: int,
    out_dir: Path,
    *,
    resume: bool = False,
    restore: Callable[[Any, int], Any] = lambda saved, start: saved,
    saved: Callable[[Any], Any] = lambda carry: carry,
    progress: Progress | None = None,
    chunk_steps: Callable[[int], int] | None = None,
    postfix: Callable[[Any], dict] | None = None,
    on_chunk: Callable[[int], None] | None = None,
    profile_dir: str | os.PathLike | None = None,
    upgrade: Upgrade | None = None,
    meta: Callable[[int, Any], dict] | None = None,
    accept: Accept | None = None,
) -> tuple[Any, int]:
    """Run chunks `start..n_chunks-1` of a job, checkpointing after each.

    Args:
        chunk: `chunk(c, carry) -> carry`, chunk c of the job.
        carry: the job's state before its first chunk (also the checkpoint template).
        n_chunks: chunks in the whole job.
        out_dir: the run directory; checkpoints go to `out_dir/checkpoints`.
        resume: start after the last checkpoint that verifies (`grokjax.host.checkpoint`).
        restore: `restore(saved, start)` turns the checkpoint restored to resume at
            chunk `start` back into a carry (e.g. onto the mesh).
        saved: what of the carry is checkpointed (default all of it).
        progress: the bar to open and advance; `chunk_steps(c)` steps per chunk,
            `postfix(carry)` shown beside it.
        on_chunk: called with c after chunk c is checkpointed.
        profile_dir: a JAX profiler trace of the first two chunks run (the first
            includes compilation), for TensorBoard or Perfetto.
        upgrade: reads a checkpoint of an earlier release whose structure differs
            (`grokjax.host.checkpoint.restore_by_paths`).
        meta: `meta(c, carry)` is saved in checkpoint c's manifest (what it belongs to).
        accept: `accept(c, meta)` says whether checkpoint c fits this job and where it
            resumes (`grokjax.host.checkpoint.Resumable`); default: any, at c + 1.
    Returns:
        (the final carry, the number of chunks run now).
    """
    check_profile_dir(profile_dir)
    checkpointer = ChunkCheckpointer(Path(out_dir) / "checkpoints")
    start = 0
    if resume:
        start, restored = resume_point(checkpointer, saved(carry), out_dir, upgrade, accept)
        if restored is not None:
            carry = restore(restored, start)
    if progress is not None:
        progress.begin(sum(chunk_steps(c) for c in range(start)) if chunk_steps else 0)
    for c in range(start, n_chunks):
        if profile_dir is not None and c == start:
            jax.profiler.start_trace(str(profile_dir))
        carry = chunk(c, carry)
        if profile_dir is not None and c == min(start + 1, n_chunks - 1):
            jax.block_until_ready(carry)
            jax.profiler.stop_trace()
        checkpointer.save(c, saved(carry), meta(c, carry) if meta else None)
        if progress is not None and chunk_steps is not None:
            progress.chunk_done(chunk_steps(c), **(postfix(carry) if postfix else {}))
        if on_chunk is not None:
            on_chunk(c)
    checkpointer.close()
    return carry, n_chunks - start
