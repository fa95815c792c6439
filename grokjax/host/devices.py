"""How an ensemble's members map onto the hardware: vmapped groups, a device mesh,
several processes. The only module besides `grokjax.host.rundir` that knows about devices.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from grokjax.config import Hparams
from grokjax.errors import ConfigError
from grokjax.xla_flags import jit


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


def to_host(tree):
    """Device arrays to host numpy; across hosts, gathered from every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def drop_padding(state, n_members: int):
    """The first `n_members` of every leaf, in one jitted program.

    Each eager slice of an array sharded over several processes is a program with its
    own collectives, dispatched without waiting for the one before; on CPU (gloo) a few
    dozen of them, one per leaf of the state, were seen to hang both processes. One
    program per run has not.
    """
    return jit(lambda tree: jax.tree.map(lambda x: x[:n_members], tree))(state)


def pad_members(state, n_run: int):
    """`state` (a leading member axis) padded to `n_run` members by repeating its last,
    as `padded_members` pads the seeds; unchanged when it has them already."""
    n = jax.tree.leaves(state)[0].shape[0]
    if n >= n_run:
        return state
    return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], n_run - n, 0)]), state)


def shard_members(tree, mesh: Mesh | None):
    """`tree` placed with its leading (member) axis split over `mesh` (unchanged without one)."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("members")))


def parse_member_batch(text: str) -> int | None | str:
    """The `--member-batch` text: 'auto', 'all' (None) or a positive integer."""
    if text in ("auto", "all"):
        return None if text == "all" else "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"member_batch={text!r} is not allowed: 'auto', 'all' or an int >= 1")
    return value


def parse_devices(text: str) -> int | str:
    """The `--devices` text: 'auto' or a positive integer."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        allowed = "'auto' or a positive integer"
        raise ConfigError(f"devices={text!r} is not allowed: {allowed}") from None


def hardware(
    devices: str = "auto",
    member_batch: str = "auto",
    distributed: bool = False,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> dict:
    """`run_ensemble`'s `devices` and `member_batch` from their command-line texts; with
    `distributed`, first join the other processes (`jax.distributed.initialize` with
    these, None: its environment variables or cluster auto-detection), since JAX must
    meet them before anything starts its backend."""
    given = {"--coordinator": coordinator, "--num-processes": num_processes}
    given = [flag for flag, v in {**given, "--process-id": process_id}.items() if v is not None]
    if given and not distributed:
        verb = "is" if len(given) == 1 else "are"
        raise ConfigError(f"{', '.join(given)} {verb} not allowed without --distributed")
    out = dict(devices=parse_devices(devices), member_batch=parse_member_batch(member_batch))
    if distributed:
        try:
            jax.distributed.initialize(
                coordinator_address=coordinator,
                num_processes=num_processes,
                process_id=process_id,
            )
        except (ValueError, RuntimeError) as err:  # no coordinator given or found
            first = " ".join(str(err).split())[:200]
            raise ConfigError(
                f"--distributed could not join the other processes ({first}): give "
                "--coordinator HOST:PORT, --num-processes and --process-id, or run under "
                "a cluster that JAX detects (Slurm, Open MPI, Cloud TPU)"
            ) from None
    return out
