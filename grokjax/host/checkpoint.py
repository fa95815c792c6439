"""Verified chunk checkpoints (orbax) for resumable runs.

orbax writes each checkpoint to a temporary directory and renames it when complete, so an
interrupted save never replaces a good checkpoint. After orbax has finished, a manifest of
the checkpoint's SHA-256 checksums is written into it (`grokjax.io`, atomically);
`ChunkCheckpointer.restore_latest` restores the newest checkpoint that matches its
manifest (one without was interrupted before it was verified), says which ones it
skipped, and falls back to the older one orbax keeps.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from grokjax.errors import ConfigError
from grokjax.io import atomic_write_json
from grokjax.problem.metrics import path_names


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def to_saveable(tree: Any) -> Any:
    """Typed PRNG keys become their raw uint32 data (orbax stores plain arrays)."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def from_saveable(tree: Any, template: Any) -> Any:
    """Undo `to_saveable`, using `template` to know which leaves were keys."""
    return jax.tree.map(
        lambda x, t: jax.random.wrap_key_data(x, impl=jax.random.key_impl(t)) if _is_key(t) else x,
        tree,
        template,
    )


MANIFEST = "grokjax-manifest.json"
OPTIONAL = ("histories",)  # checkpointed dicts whose keys may be fewer than today's


def _checksums(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under `directory` but the manifest, by relative path."""
    files = [p for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST]
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
    }


Path_ = tuple[str, ...]
# upgrade(path, saved) -> the value of the leaf at `path` read from an older checkpoint's
# leaves `saved` ({path: array}), or None to read `saved[path]` as it is.
Upgrade = Callable[[Path_, dict[Path_, Any]], Any]


def restore_by_paths(saved: Any, template: Any, upgrade: Upgrade | None = None) -> Any:
    """`template`'s structure filled from `saved` (a checkpoint restored as it was
    written: dicts and lists) leaf by leaf, matched by the names on their paths; each
    leaf must have the template's shape. `upgrade` may supply a leaf first (a field
    renamed or added since); a leaf neither has raises KeyError."""
    found = {path_names(p): v for p, v in jax.tree_util.tree_flatten_with_path(saved)[0]}
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, like in paths:
        key = path_names(path)
        value = upgrade(key, found) if upgrade is not None else None
        if value is None:
            value = found[key]
        value = np.asarray(value)
        if value.shape != tuple(like.shape):
            raise KeyError(f"{'.'.join(key)}: shape {value.shape}, wanted {like.shape}")
        leaves.append(value.astype(like.dtype))
    return jax.tree_util.tree_unflatten(treedef, leaves)


class DiskFull(ConfigError):
    """No room for a checkpoint: the message names the last intact one and how to go on."""


class _FailedSaveFilter(logging.Filter):
    """Drops the log records of a failed checkpoint save that surface later (asyncio's
    "exception was never retrieved" when orbax's futures are collected)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return ".orbax-checkpoint-tmp" not in record.getMessage()


_NOISY = ("absl", "asyncio")


@contextlib.contextmanager
def _quiet():
    """orbax's background threads log their failures (and tracebacks) to stderr; a
    failure reaches the caller as one exception instead."""
    loggers = [logging.getLogger(name) for name in _NOISY]
    levels, hook, stderr = [lg.level for lg in loggers], threading.excepthook, sys.stderr
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    threading.excepthook = lambda args: None
    sys.stderr = io.StringIO()  # tensorstore's callbacks print through it
    try:
        yield
    except BaseException:
        time.sleep(1.0)  # the failed save's threads wind down (and print) meanwhile
        gc.collect()  # and its abandoned futures report here, not at exit
        for logger in loggers:  # what still surfaces later is dropped
            if not any(isinstance(f, _FailedSaveFilter) for f in logger.filters):
                logger.addFilter(_FailedSaveFilter())
        raise
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        threading.excepthook = hook
        sys.stderr = stderr


class Resumable(NamedTuple):
    """Where an accepted checkpoint resumes: the first chunk to run, and the template
    (shapes) to restore it with."""

    start: int
    template: Any


Accept = Callable[[int, dict], "Resumable | None"]


class CheckpointCorrupt(Exception):
    """A checkpoint whose files do not match the checksums written when it was saved."""


class ChunkCheckpointer:
    """Saves `{state, history, ...}` after each finished chunk; restores the newest good one."""

    def __init__(self, directory: Path, max_to_keep: int = 2):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler()
        )

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, chunk: int, item: dict, meta: dict | None = None) -> None:
        """Save `item` as checkpoint `chunk`, then its manifest: the files' checksums and
        `meta` (what it belongs to and covers). No room on the disk raises `DiskFull`,
        before orbax writes or when it fails for lack of space; orbax's threads say
        nothing of it on stderr."""
        saveable = to_saveable(item)
        held = sum(
            x.nbytes if hasattr(x, "nbytes") else np.asarray(x).nbytes
            for x in jax.tree.leaves(saveable)
        )
        need = int(1.5 * held) + 2**18  # a global array's nbytes: without fetching it
        free = shutil.disk_usage(self.directory).free
        if free < need:
            raise DiskFull(self._full(chunk, free, need))
        try:
            with _quiet():
                self._manager.save(chunk, args=ocp.args.StandardSave(saveable))
                self._manager.wait_until_finished()
        except Exception as err:
            text = str(err)
            if "No space left" in text or "RESOURCE_EXHAUSTED" in text:
                shutil.rmtree(self.directory / f"{chunk}.orbax-checkpoint-tmp", ignore_errors=True)
                free = shutil.disk_usage(self.directory).free
                raise DiskFull(self._full(chunk, free, need)) from None
            raise
        if jax.process_index() == 0:
            step_dir = self.directory / str(chunk)
            manifest = {"sha256": _checksums(step_dir), "meta": meta or {}}
            atomic_write_json(step_dir / MANIFEST, manifest)

    def _full(self, chunk: int, free: int, need: int) -> str:
        intact = [c for c in self.steps() if (self.directory / str(c) / MANIFEST).is_file()]
        last = f"checkpoint {intact[-1]} is the last intact one" if intact else "no checkpoint yet"
        return (
            f"out={str(self.directory.parent)!r}: the disk is full ({free / 1e6:.1f} MB free; "
            f"checkpoint {chunk} needs about {need / 1e6:.1f} MB); {last}: free some space, "
            "then --resume continues the run"
        )

    def meta(self, chunk: int) -> dict:
        """The `meta` checkpoint `chunk` was saved with ({} for one saved without)."""
        try:
            manifest = json.loads((self.directory / str(chunk) / MANIFEST).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        meta = manifest.get("meta") if isinstance(manifest, dict) else None
        return meta if isinstance(meta, dict) else {}

    def discard_from(self, first: int) -> None:
        """Delete the checkpoints from chunk `first` on (a resume recomputes them)."""
        for step in self.steps():
            if step >= first:
                self._manager.delete(step)

    def verify(self, chunk: int) -> None:
        """Raise CheckpointCorrupt unless checkpoint `chunk` matches its manifest."""
        step_dir = self.directory / str(chunk)
        manifest = step_dir / MANIFEST
        if not manifest.is_file():
            raise CheckpointCorrupt(f"checkpoint {chunk} has no manifest (save interrupted)")
        try:
            expected = json.loads(manifest.read_text())["sha256"]
        except (ValueError, KeyError, UnicodeDecodeError) as err:
            raise CheckpointCorrupt(f"checkpoint {chunk}: unreadable manifest ({err})") from None
        found = _checksums(step_dir)
        bad = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        if bad:
            raise CheckpointCorrupt(
                f"checkpoint {chunk}: {len(bad)} file(s) differ from their checksums "
                f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})"
            )

    def _saved_part(self, chunk: int, template: dict) -> dict:
        """`template` with its `OPTIONAL` dicts cut to the keys checkpoint `chunk` holds (a
        run recorded before a metric existed has no history of it)."""
        try:
            metadata = self._manager.item_metadata(chunk)
        except Exception:  # no readable metadata: restore as asked, and fail there
            return template
        cut = dict(template)
        for name in OPTIONAL:
            if isinstance(template.get(name), dict):
                try:
                    held = set(metadata[name].keys())
                except (KeyError, TypeError, AttributeError):
                    continue
                cut[name] = {k: v for k, v in template[name].items() if k in held}
        return cut

    def restore(self, chunk: int, template: dict, upgrade: Upgrade | None = None) -> dict:
        """Restore checkpoint `chunk` (verified first) with the shapes of `template`; of the
        `OPTIONAL` dicts only the keys the checkpoint holds come back. A checkpoint an
        earlier release wrote with another structure is read leaf by leaf, by path, with
        `upgrade` supplying what it named otherwise or lacked (`restore_by_paths`)."""
        self.verify(chunk)
        template = self._saved_part(chunk, template)
        dtype = lambda x: x.dtype if isinstance(x, jax.Array) else np.asarray(x).dtype  # noqa: E731
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(np.shape(x), dtype(x)), to_saveable(template)
        )
        try:
            restored = self._manager.restore(chunk, args=ocp.args.StandardRestore(abstract))
        except Exception as err:  # orbax raises many kinds on a damaged checkpoint
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            try:
                restored = restore_by_paths(self._manager.restore(chunk), abstract, upgrade)
            except Exception:
                raise CheckpointCorrupt(
                    f"checkpoint {chunk} cannot be restored ({type(err).__name__}: {first})"
                ) from None
        return from_saveable(restored, template)

    def restore_latest(
        self,
        template: dict,
        upgrade: Upgrade | None = None,
        accept: Accept | None = None,
    ) -> tuple[int, dict | None, list[str], int | None]:
        """(first chunk to run, restored, notes, the checkpoint used) from the newest
        checkpoint that `accept(chunk, meta)` takes for this run (a `Resumable`; None passes
        it by; default: each, at chunk + 1) and that verifies and restores. `notes` says
        which were passed by or failed; the checkpoints from the first chunk to run on are
        deleted (recomputed, with the same numbers). (0, None, notes, None) when none is
        usable; CheckpointCorrupt when some are damaged and none is usable."""
        notes: list[str] = []
        damaged = False
        for chunk in reversed(self.steps()):
            plan = accept(chunk, self.meta(chunk)) if accept else Resumable(chunk + 1, template)
            if plan is None:
                notes.append(f"checkpoint {chunk} belongs to another run or schedule; not used")
                continue
            try:
                restored = self.restore(chunk, plan.template, upgrade)
            except CheckpointCorrupt as err:
                notes.append(str(err))
                damaged = True
                continue
            self.discard_from(plan.start)
            return plan.start, restored, notes, chunk
        if damaged:
            raise CheckpointCorrupt("; ".join(notes))
        self.discard_from(0)
        return 0, None, notes, None

    def close(self) -> None:
        self._manager.close()


def resume_point(
    checkpointer: ChunkCheckpointer,
    template: dict,
    out_dir: Path,
    upgrade: Upgrade | None = None,
    accept: Accept | None = None,
):
    """`restore_latest`'s (first chunk to run, restored item or None), its notes said on
    stderr; a resume with only damaged checkpoints is refused in one line, deleting nothing."""
    try:
        start, restored, notes, used = checkpointer.restore_latest(template, upgrade, accept)
    except CheckpointCorrupt as err:
        raise ConfigError(
            f"out={str(out_dir)!r}: no checkpoint of this run can be restored ({err}); "
            "the directory is left as it is: --overwrite starts the run again"
        ) from None
    where = f"resuming from checkpoint {used}" if used is not None else "starting afresh"
    for note in notes:
        print(f"grokjax: {note}; {where}", file=sys.stderr)
    return start, restored
