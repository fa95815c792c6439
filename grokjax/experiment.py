"""Run a seed ensemble to disk: chunked, checkpointed, resumable, with every output file.

A run directory holds
    config.json      the resolved Config, Hparams per member, seeds, preset, versions
    metrics.parquet  one row per (member, evaluation step): every metric, and whether
                     the member has diverged by then (`grokjax.summary`)
    summary.json     per-member threshold steps (None = censored) and ensemble statistics
    accuracy.png, loss.png, weight_norm.png
    checkpoints/     orbax checkpoints of the ensemble state after each chunk
Every file is written atomically. An existing run directory is never overwritten
unless asked (`overwrite=True`); `resume=True` continues it from its last checkpoint
and finishes with the numbers the uninterrupted run would have had.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from grokjax.checkpoint import (
    ChunkCheckpointer,
    atomic_write_json,
    atomic_write_with,
    json_safe,
    read_json,
    remove_temporaries,
    resume_point,
)
from grokjax.config import Config, Hparams
from grokjax.errors import ConfigError
from grokjax.optim import validate_hparams
from grokjax.plots import ensemble_figures
from grokjax.summary import diverged_mask, ensemble_summary, format_table
from grokjax.train import chunk_schedule, make_train, metric_names

OUTPUT_FILES = (
    "config.json",
    "metrics.parquet",
    "summary.json",
    "accuracy.png",
    "loss.png",
    "weight_norm.png",
)


class RunResult(NamedTuple):
    out_dir: Path
    summary: dict
    histories: dict[str, np.ndarray]  # metric -> [members, evaluations]
    steps: np.ndarray  # evaluation steps [evaluations]
    state: Any  # the final TrainState, stacked over members
    files: tuple[str, ...] = ()  # the files written in out_dir (besides checkpoints/)


def member_keys(seeds: Sequence[int]) -> jax.Array:
    """One typed key per member: seed i gives `jax.random.key(i)`."""
    return jnp.stack([jax.random.key(int(s)) for s in seeds])


def member_hparams(hparams: Hparams, n_members: int) -> Hparams:
    """Broadcast each swept number to a [members] float32 array."""
    out = []
    for name, value in zip(Hparams._fields, hparams, strict=True):
        arr = np.asarray(value, np.float32)
        if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] not in (1, n_members)):
            raise ConfigError(
                f"{name} has shape {arr.shape}: allowed a scalar or one value per member "
                f"({n_members})"
            )
        out.append(jnp.asarray(np.broadcast_to(arr, (n_members,))))
    return Hparams(*out)


def default_member_batch() -> int | None:
    """Members vmapped together by default: all of them on accelerators, one on CPU.

    On a CPU the full-batch step is compute-bound, and XLA:CPU runs a member's
    unbatched matmuls faster than the batched matmuls of a vmapped ensemble
    (benchmarks/ensemble_throughput.py prints both).
    """
    return 1 if jax.default_backend() == "cpu" else None


def over_members(fn: Callable, member_batch: int | None) -> Callable:
    """Apply `fn(*args)` over a leading member axis of every argument.

    `member_batch=None` vmaps all members at once; an integer vmaps groups of that
    many members and runs the groups one after another (`lax.map`). The result is the
    same stacked pytree either way.
    """
    if member_batch is None:
        return jax.vmap(fn)
    return lambda *args: jax.lax.map(lambda a: fn(*a), args, batch_size=member_batch)


def member_mesh(devices: int | None | str = "auto") -> Mesh | None:
    """A 1-D mesh over the member axis, or None for one device.

    `devices`: "auto" (every device JAX sees, when there are several: the local ones, or
    all hosts' after `jax.distributed.initialize()`), an int (the first n), or None/1
    (no sharding). Across processes the mesh must hold devices of every process.
    """
    available = jax.devices()
    if devices == "auto":
        devices = len(available)
    if jax.process_count() > 1:
        # Every process runs the same program on its own devices: a process left out of
        # the mesh (or a run on no mesh) would train nothing, or everything again.
        first: dict[int, int] = {}
        for i, device in enumerate(available):
            first.setdefault(device.process_index, i)
        needed = 1 + max(first.values())
        if not isinstance(devices, int) or not needed <= devices <= len(available):
            raise ConfigError(
                f"devices={devices!r} is not allowed in a run of {jax.process_count()} "
                f"processes: 'auto' or an int in {needed}..{len(available)} (a mesh over "
                "devices of every process)"
            )
    if devices is None or devices == 1:
        return None
    if not isinstance(devices, int) or not 1 <= devices <= len(available):
        raise ConfigError(
            f"devices={devices!r} is not allowed: 'auto' or an int in 1..{len(available)}"
        )
    return Mesh(np.asarray(available[:devices]), ("members",))


def padded_members(seeds: list[int], hp: Hparams, n_devices: int) -> tuple[list[int], Hparams]:
    """Members padded to a multiple of the device count by repeating the last member
    (its results are computed and dropped), so every device holds as many members."""
    extra = -len(seeds) % n_devices
    if not extra:
        return seeds, hp
    seeds = seeds + [seeds[-1]] * extra
    hp = Hparams(*(jnp.concatenate([v, jnp.repeat(v[-1:], extra)]) for v in hp))
    return seeds, hp


def over_devices(fn: Callable, mesh: Mesh | None) -> Callable:
    """`fn` over the member axis split across the mesh: each device runs its own members
    (with `over_members` inside), nothing is communicated until the results are read."""
    if mesh is None:
        return fn
    spec = PartitionSpec("members")
    return jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec)


def _host(tree):
    """Device arrays to host numpy; across hosts, gathered from every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


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
        raise ConfigError("resume and overwrite are exclusive: choose one")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"out={str(out_dir)!r} is not allowed: it is a file, not a directory")
    parent = out_dir if out_dir.exists() else out_dir.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not _writable(parent):
        raise ConfigError(
            f"out={str(out_dir)!r} is not allowed: {parent} is not a writable directory"
        )
    occupied = out_dir.exists() and any(out_dir.iterdir())
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
            f"out={str(out_dir)!r} already holds files: pass resume to continue that run "
            "or overwrite to replace it"
        )


def _with_config_defaults(saved: dict) -> dict:
    """Fields added to Config after a run was written default to the old behaviour."""
    return {**saved, "config": {**json_safe(Config().to_dict()), **saved.get("config", {})}}


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
    normalise=_with_config_defaults,
) -> None:
    """Resume: check the saved settings equal `record` (after `normalise`), naming the
    first field that differs; otherwise start the directory afresh and write `record`
    with the jax version and backend. Temporaries an interrupted write left are removed.
    """
    record = json_safe(record)  # compared with what was saved: JSON against JSON
    if resume:
        saved = read_json(out_dir / settings, "the run's settings")
        if not isinstance(saved, dict):
            raise ConfigError(f"out={str(out_dir)!r}: {settings} does not hold a grokjax run")
        saved.pop("versions", None)
        difference = first_difference(normalise(saved), record)
        if difference:
            raise ConfigError(
                f"out={str(out_dir)!r} holds a run with another configuration: {difference}; "
                "resume needs the same preset, fields, hparams and seeds"
            )
        remove_temporaries(out_dir)
        return
    try:
        if overwrite and out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        versions = {"jax": jax.__version__, "backend": jax.default_backend()}
        atomic_write_json(out_dir / settings, {**record, "versions": versions})
    except OSError as err:
        raise ConfigError(
            f"out={str(out_dir)!r} is not allowed: {err.strerror or err} ({err.filename})"
        ) from None


def _record(cfg: Config, hparams: Hparams, seeds: Sequence[int], preset: str | None) -> dict:
    return {
        "preset": preset,
        "config": cfg.to_dict(),
        "hparams": {k: np.asarray(v).tolist() for k, v in hparams._asdict().items()},
        "seeds": [int(s) for s in seeds],
    }


def run_ensemble(
    cfg: Config,
    hparams: Hparams,
    seeds: Sequence[int],
    out_dir: str | os.PathLike,
    *,
    preset: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
    member_batch: int | None | str = "auto",
    devices: int | None | str = "auto",
    profile_dir: str | os.PathLike | None = None,
) -> RunResult:
    """Train one member per seed (vmapped, jitted) and write the run directory.

    Args:
        cfg: static configuration (already validated on construction).
        hparams: swept numbers, scalars or one value per member.
        seeds: member seeds; member i starts from `jax.random.key(seeds[i])`.
        out_dir: the run directory.
        preset: name recorded in config.json.
        resume: continue the run in `out_dir` from its last checkpoint.
        overwrite: delete whatever `out_dir` holds first.
        progress: show a progress bar.
        on_chunk: called with the chunk index after each chunk is checkpointed.
        member_batch: members vmapped together ("auto": `default_member_batch()`;
            None: all). Groups run in sequence; it changes speed, not the maths.
        devices: shard the members over this many devices (`member_mesh`; "auto": all
            of them when there are several). Members are padded to a multiple of the
            device count by repeating the last one, whose copies are dropped.
        profile_dir: write a JAX profiler trace of the first two chunks (the first
            includes compilation) there, for TensorBoard or Perfetto.
    Returns:
        A `RunResult`; the same numbers are in the files.
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) < 1:
        raise ConfigError("seeds=0 is not allowed: at least 1 seed")
    validate_hparams(hparams)
    if member_batch == "auto":
        member_batch = default_member_batch()
    if member_batch is not None and (not isinstance(member_batch, int) or member_batch < 1):
        raise ConfigError(f"member_batch={member_batch!r} is not allowed: None or an int >= 1")
    n_members = len(seeds)
    hp = member_hparams(hparams, n_members)
    pairs = list(zip(seeds, *(np.asarray(v).tolist() for v in hp), strict=True))
    if len(set(pairs)) != n_members:
        raise ConfigError(
            f"seeds={seeds} is not allowed: members with the same hparams need distinct seeds"
        )
    mesh = member_mesh(devices)
    out_dir = Path(out_dir)
    on_all_processes(check_out_dir, out_dir, resume, overwrite)
    record = _record(cfg, hp, seeds, preset)
    on_all_processes(prepare_out_dir, out_dir, record, resume, overwrite, writer_only=True)

    trainer = make_train(cfg)
    names = metric_names(cfg)
    run_seeds, run_hp = seeds, hp
    if mesh is not None:
        run_seeds, run_hp = padded_members(seeds, hp, mesh.size)
        run_hp = jax.device_put(run_hp, NamedSharding(mesh, PartitionSpec("members")))
    init_fn = jax.jit(over_devices(jax.vmap(trainer.init), mesh))
    run_fn = jax.jit(
        lambda state, hp, segs: over_devices(
            lambda s, h: over_members(lambda a, b: trainer.run(a, b, segs), member_batch)(s, h),
            mesh,
        )(state, hp)
    )

    steps_E = cfg.eval_steps
    chunks = chunk_schedule(cfg)
    n_chunks, per_chunk = chunks.shape

    state = init_fn(member_keys(run_seeds), run_hp)
    histories = {k: np.full((n_members, steps_E.size), np.nan, np.float32) for k in names}
    checkpointer = ChunkCheckpointer(out_dir / "checkpoints")
    start, restored = 0, None
    if resume:
        template = {"state": state, "histories": histories}
        start, restored = resume_point(checkpointer, template, out_dir)
    if restored is not None:
        state = restored["state"]
        if mesh is not None:
            state = jax.device_put(state, NamedSharding(mesh, PartitionSpec("members")))
        histories = {k: np.asarray(restored["histories"][k]) for k in names}

    progress = progress and jax.process_index() == 0  # one bar, not one per process
    bar = None
    if progress:
        from tqdm.auto import tqdm

        done = int(chunks[:start].sum())
        bar = tqdm(total=cfg.steps, initial=done, unit="step", desc=f"{n_members} members")
    t0 = time.perf_counter()
    for c in range(start, n_chunks):
        if profile_dir is not None and c == start:
            jax.profiler.start_trace(str(profile_dir))
        state, metrics = run_fn(state, run_hp, jnp.asarray(chunks[c]))
        if profile_dir is not None and c == min(start + 1, n_chunks - 1):
            jax.block_until_ready(state)
            jax.profiler.stop_trace()
        metrics = _host(metrics)
        lo = c * per_chunk
        hi = min(lo + per_chunk, steps_E.size)
        for k in names:
            histories[k][:, lo:hi] = metrics[k][:n_members, : hi - lo]
        checkpointer.save(c, {"state": state, "histories": histories})
        if bar is not None:
            bar.update(int(chunks[c].sum()))
            bar.set_postfix(test_acc=f"{np.median(histories['test_acc'][:, hi - 1]):.3f}")
        if on_chunk is not None:
            on_chunk(c)
    if bar is not None:
        bar.close()
    checkpointer.close()
    if progress:
        print(f"trained {n_chunks - start} chunk(s) in {time.perf_counter() - t0:.1f} s")

    summary = ensemble_summary(histories, steps_E, cfg, seeds)
    diverged_ME = diverged_mask(histories, cfg.divergence_loss)
    title = preset or f"{cfg.task} mod {cfg.modulus}"
    figures: list[Path] = []

    def write_outputs() -> None:
        _write_metrics(out_dir / "metrics.parquet", histories, diverged_ME, steps_E, seeds, hp)
        atomic_write_json(out_dir / "summary.json", summary)
        shown = {k: np.where(diverged_ME, np.nan, v) for k, v in histories.items()}
        figures.extend(
            ensemble_figures(shown, steps_E, out_dir, title, diverged_steps=_diverged(summary))
        )

    on_all_processes(write_outputs, writer_only=True)
    if mesh is not None:
        state = _drop_padding(state, n_members)
    files = ("config.json", "metrics.parquet", "summary.json")
    files += tuple(p.name for p in figures) or ("accuracy.png", "loss.png", "weight_norm.png")
    return RunResult(out_dir, summary, histories, steps_E, state, files)


def _diverged(summary: dict) -> list[int]:
    return [m["diverged_step"] for m in summary["members"] if m["diverged_step"] is not None]


def _drop_padding(state, n_members: int):
    """The first `n_members` of every leaf, in one jitted program.

    Each eager slice of an array sharded over several processes is a program with its
    own collectives, dispatched without waiting for the one before; on CPU (gloo) a few
    dozen of them, one per leaf of the state, were seen to hang both processes. One
    program per run has not.
    """
    return jax.jit(lambda tree: jax.tree.map(lambda x: x[:n_members], tree))(state)


def _write_metrics(path: Path, histories, diverged_ME, steps_E, seeds, hp: Hparams) -> None:
    n_members, n_evals = next(iter(histories.values())).shape
    frame = pd.DataFrame(
        {
            "member": np.repeat(np.arange(n_members), n_evals),
            "seed": np.repeat(np.asarray(seeds), n_evals),
            **{k: np.repeat(np.asarray(v), n_evals) for k, v in hp._asdict().items()},
            "step": np.tile(steps_E, n_members),
            **{k: v.reshape(-1) for k, v in histories.items()},
            "diverged": diverged_ME.reshape(-1),
        }
    )
    atomic_write_with(path, lambda tmp: frame.to_parquet(tmp, index=False))


def print_summary(result: RunResult) -> None:
    print(format_table(result.summary))
    print(f"\nwrote {result.out_dir}/: {', '.join(result.files)}, checkpoints/")
