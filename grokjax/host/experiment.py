"""Run a seed ensemble to disk: chunked, checkpointed, resumable, with every output file.

A run directory holds
    config.json      the resolved Config, Hparams per member, seeds, preset, versions
    metrics.parquet  one row per (member, evaluation step): every metric, and whether
                     the member has diverged by then (`grokjax.stats.summary`)
    summary.json     per-member threshold steps (None = censored) and ensemble statistics
    accuracy.png, loss.png, weight_norm.png
    checkpoints/     orbax checkpoints of the ensemble state after each chunk
    live.jsonl, status.json   the evaluations so far, appended after every chunk, and
                     whether the run is running or finished (`grokjax.host.live`)
    tensorboard/     with `tensorboard=True`: one TensorBoard event stream per member
Every file is written atomically. An existing run directory is never overwritten
unless asked (`overwrite=True`); `resume=True` continues it from its last checkpoint
and finishes with the numbers the uninterrupted run would have had.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from grokjax.config import (
    Config,
    Hparams,
    apply_overrides,
    override,
    parse_value,
    split_assignment,
    validate_hparams,
)
from grokjax.errors import ConfigError
from grokjax.host.checkpoint import Resumable
from grokjax.host.devices import (
    default_member_batch,
    drop_padding,
    member_mesh,
    over_devices,
    over_members,
    pad_members,
    padded_members,
    shard_members,
    to_host,
)
from grokjax.host.live import LiveStream
from grokjax.host.loop import Progress, check_profile_dir, run_chunks
from grokjax.host.rundir import first_difference, on_all_processes, open_run_dir
from grokjax.host.tensorboard import TensorBoardStream
from grokjax.io import atomic_write_json, atomic_write_with, json_safe, read_json
from grokjax.optim.wand import legacy_wand_leaf
from grokjax.plots import describe_run, ensemble_figures
from grokjax.presets import preset_changes
from grokjax.stats.summary import Summary, diverged_mask, ensemble_summary, format_table
from grokjax.train import chunk_schedule, make_train, metric_names
from grokjax.xla_flags import jit


class RunResult(NamedTuple):
    out_dir: Path
    summary: Summary  # reads as summary.json too: result.summary["ensemble"]
    histories: dict[str, np.ndarray]  # metric -> [members, evaluations]
    steps: np.ndarray  # evaluation steps [evaluations]
    state: Any  # the final TrainState, stacked over members
    files: tuple[str, ...] = ()  # the files written in out_dir (besides checkpoints/)

    def text(self) -> str:
        """The summary table and the files written."""
        wrote = f"wrote {self.out_dir}/: {', '.join(self.files)}, checkpoints/"
        return f"{format_table(self.summary)}\n\n{wrote}"


class ChunkEvals(NamedTuple):
    """One chunk's evaluations, as `run_ensemble` hands them to `on_chunk`.

    `chunk` its index; `steps` [E] the evaluation steps it recorded; `metrics` metric
    name -> [members, E]; `seeds` [members]; `hparams` `Hparams` name -> [members];
    `out_dir` the run directory.

    Example (one W&B run per member, say, or one table; any tracker works alike):
        >>> def log(chunk: ChunkEvals) -> None:  # doctest: +SKIP
        ...     for record in chunk.records():
        ...         run = runs[record["member"]]  # e.g. wandb.init(config=...) per member
        ...         run.log({k: record[k] for k in chunk.metrics}, step=record["step"])
    """

    chunk: int
    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    seeds: tuple[int, ...]
    hparams: dict[str, np.ndarray]
    out_dir: Path

    def records(self) -> list[dict[str, Any]]:
        """One flat dict per member and evaluation: member, seed, step, the member's
        hyperparameters and every metric (NaN where not recorded)."""
        out = []
        for m, seed in enumerate(self.seeds):
            numbers = {k: float(v[m]) for k, v in self.hparams.items()}
            for e, step in enumerate(self.steps):
                metrics = {k: float(v[m, e]) for k, v in self.metrics.items()}
                out.append({"member": m, "seed": seed, "step": int(step), **numbers, **metrics})
        return out


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


def with_config_defaults(saved: dict) -> dict:
    """The saved settings as this release writes them: fields added to `Config` or
    `Hparams` since default to the old behaviour, and a flat config of an earlier release
    reads as the nested one."""
    out = {**saved, "config": json_safe(Config.from_dict(saved.get("config", {})).to_dict())}
    hparams = saved.get("hparams")
    if isinstance(hparams, dict) and isinstance(saved.get("seeds"), list):
        n = len(saved["seeds"])
        defaults = member_hparams(Hparams(), n)._asdict()
        out["hparams"] = {
            k: hparams.get(k, np.asarray(defaults[k]).tolist()) for k in Hparams._fields
        }
    return out


def run_identity(record: dict) -> str:
    """A digest of what makes a run this run (config, hyperparameters, seeds, preset),
    its budget aside: every checkpoint records it, and a resume restores only its own."""
    mine = json_safe(record)
    config = {k: v for k, v in mine["config"].items() if k != "steps"}
    if not (config.get("llc") or {}).get("every"):  # off, the LLC changes nothing: a run
        config.pop("llc", None)  # from before it existed keeps its identity
    mine = {**mine, "config": config}
    return hashlib.sha256(json.dumps(mine, sort_keys=True).encode()).hexdigest()[:16]


def _digest(steps: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(steps, np.int64).tobytes()).hexdigest()[:16]


def topology(mesh, member_batch, n_members: int, n_run: int) -> dict:
    """Where a run's members ran: backend, devices, processes, padding, member batch and
    the jax versions (config.json's "topology")."""
    import jaxlib

    return {
        "backend": jax.default_backend(),
        "devices": 1 if mesh is None else int(mesh.size),
        "processes": jax.process_count(),
        "members": n_members,
        "padded_members": n_run,
        "member_batch": "all" if member_batch is None else member_batch,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
    }


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
    on_chunk: Callable[[ChunkEvals], None] | None = None,
    member_batch: int | None | str = "auto",
    devices: int | None | str = "auto",
    profile_dir: str | os.PathLike | None = None,
    live: bool = True,
    tensorboard: bool = False,
) -> RunResult:
    """Train one member per seed (vmapped, jitted) and write the run directory.

    `hparams` are scalars or one value per member; member i starts from
    `jax.random.key(seeds[i])`; `preset` is the name recorded in config.json. `on_chunk`
    gets each checkpointed chunk's `ChunkEvals`, so a tracker (W&B, MLflow, Aim) logs in a
    few lines. `member_batch`: members vmapped together ("auto": `default_member_batch()`;
    None: all), groups in sequence: it changes speed, not the maths. `devices`: shard the
    members over this many devices (`member_mesh`), padded by repeating the last member.
    `profile_dir`: a profiler trace of the first two chunks (`run_chunks`). `live`:
    live.jsonl and status.json for the dashboard (`grokjax.host.live`); `tensorboard`:
    event files under out_dir/tensorboard (`grokjax.host.tensorboard`). The returned
    `RunResult` holds the numbers of the files.
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
    check_profile_dir(profile_dir)
    mesh = member_mesh(devices)
    run_seeds, run_hp = seeds, hp
    if mesh is not None:
        run_seeds, run_hp = padded_members(seeds, hp, mesh.size)
    bar = Progress(
        cfg.steps,
        len(run_seeds),
        desc=f"{n_members} members",
        enabled=progress and jax.process_index() == 0,  # one bar, not one per process
    )
    # The user's data and model are checked here, before the directory is touched.
    trainer = make_train(cfg, report=bar.report if bar.enabled else None)
    out_dir, record = Path(out_dir), _record(cfg, hp, seeds, preset)
    where = topology(mesh, member_batch, n_members, len(run_seeds))
    prepare = (with_config_defaults, where, "config.steps")
    with open_run_dir(out_dir, record, resume, overwrite, "config.json", *prepare) as saved:
        # The budget the run was started (or last extended) with.
        saved_steps = cfg.steps
        if saved is not None:
            saved_steps = with_config_defaults(saved).get("config", {}).get("steps")
        run_hp = shard_members(run_hp, mesh)
        names = metric_names(cfg)
        init_fn = jit(over_devices(jax.vmap(trainer.init), mesh))
        run_fn = jit(
            lambda state, hp, segs: over_devices(
                lambda s, h: over_members(lambda a, b: trainer.run(a, b, segs), member_batch)(s, h),
                mesh,
            )(state, hp)
        )
        steps_E = cfg.eval_steps
        chunks = chunk_schedule(cfg)
        n_chunks, per_chunk = chunks.shape
        sinks: list = []  # what follows the run chunk by chunk, on the writing process
        if jax.process_index() == 0:
            sinks += [LiveStream(out_dir, steps_E)] if live else []
            numbers = {k: np.asarray(v) for k, v in hp._asdict().items()}
            sinks += [TensorBoardStream(out_dir, steps_E, seeds, numbers)] if tensorboard else []

        def chunk(c: int, carry: dict) -> dict:
            state, metrics = run_fn(carry["state"], run_hp, jnp.asarray(chunks[c]))
            metrics = to_host(metrics)
            lo = c * per_chunk
            hi = min(lo + per_chunk, steps_E.size)
            histories = carry["histories"]
            for k in names:
                histories[k][:, lo:hi] = metrics[k][:n_members, : hi - lo]
            for sink in sinks:
                sink.append(lo, hi, histories)
            nonlocal latest
            latest = ChunkEvals(
                c,
                steps_E[lo:hi].copy(),
                {k: v[:, lo:hi].copy() for k, v in histories.items()},
                tuple(seeds),
                {k: np.asarray(v).copy() for k, v in hp._asdict().items()},
                out_dir,
            )
            return {"state": state, "histories": histories, "last": hi - 1}

        def restore(saved: dict, start: int) -> dict:
            # A metric added since the checkpoint was written reads NaN where it was not
            # recorded; a run extended since has more evaluations than it recorded.
            histories = {k: np.full((n_members, steps_E.size), np.nan, np.float32) for k in names}
            for k in names:
                if k in saved["histories"]:
                    old = np.asarray(saved["histories"][k])[:, : steps_E.size]
                    histories[k][:, : old.shape[1]] = old
            state = pad_members(saved["state"], len(run_seeds))
            return {"state": shard_members(state, mesh), "histories": histories}

        identity = run_identity(record)

        def meta(c: int, carry: dict) -> dict:
            """What checkpoint c belongs to and covers."""
            evals = min((c + 1) * per_chunk, steps_E.size)
            return {
                "run": identity,
                "evals": evals,
                "steps": _digest(steps_E[:evals]),
                "of": int(steps_E.size),
            }

        def accept(c: int, meta: dict) -> Resumable | None:
            """Checkpoint c resumes this run if it belongs to it (config, hyperparameters,
            seeds; the budget aside) and ends on a chunk boundary of this schedule whose
            evaluation steps it shares (a run extended from fewer steps)."""
            template = saved_of(carry)
            if not meta:  # a checkpoint of an earlier release: this run, if not extended
                return Resumable(c + 1, template) if saved_steps == cfg.steps else None
            evals = meta.get("evals", 0)
            if meta.get("run") != identity or not 0 < evals <= steps_E.size:
                return None
            if _digest(steps_E[:evals]) != meta.get("steps"):  # its evaluations are ours
                return None
            if evals % per_chunk and evals != steps_E.size:
                return None
            shape = (n_members, int(meta.get("of", steps_E.size)))
            old = {k: np.zeros(shape, np.float32) for k in template["histories"]}
            return Resumable(-(-evals // per_chunk), {**template, "histories": old})

        def saved_of(carry: dict) -> dict:
            """What a checkpoint holds: the real members' state (no device padding, so a
            resume may use other devices; a run of several processes keeps its padding,
            and resumes on the same processes and devices) and the histories."""
            state = carry["state"]
            if len(run_seeds) > n_members and jax.process_count() == 1:
                state = drop_padding(state, n_members)
            return {"state": state, "histories": carry["histories"]}

        latest: ChunkEvals | None = None  # the last chunk's evaluations, for on_chunk

        carry = {
            "state": init_fn(member_keys(run_seeds), run_hp),
            "histories": {k: np.full((n_members, steps_E.size), np.nan, np.float32) for k in names},
        }
        t0 = time.perf_counter()
        try:
            carry, n_run = run_chunks(
                chunk,
                carry,
                n_chunks,
                out_dir,
                resume=resume,
                restore=restore,
                saved=saved_of,
                progress=bar,
                chunk_steps=lambda c: int(chunks[c].sum()),
                postfix=lambda carry: {
                    "test_acc": f"{np.median(carry['histories']['test_acc'][:, carry['last']]):.3f}"
                },
                on_chunk=None if on_chunk is None else lambda c: on_chunk(latest),
                profile_dir=profile_dir,
                upgrade=lambda path, found: legacy_wand_leaf(path, found, ("state", "step")),
                meta=meta,
                accept=accept,
            )
        except BaseException as error:
            for sink in sinks:
                sink.interrupted(error)
            raise
        bar.close()
        if bar.enabled:
            print(f"trained {n_run} chunk(s) in {time.perf_counter() - t0:.1f} s")
        state, histories = carry["state"], carry["histories"]

        summary = ensemble_summary(histories, steps_E, cfg.eval, seeds)
        diverged_ME = diverged_mask(histories, cfg.eval.divergence_loss)
        changes = preset_changes(preset, cfg, hparams)
        title = describe_run(preset, changes) or cfg.data.describe()
        figures: list[Path] = []

        def write_outputs() -> None:
            _write_metrics(out_dir / "metrics.parquet", histories, diverged_ME, steps_E, seeds, hp)
            atomic_write_json(out_dir / "summary.json", summary)
            shown = {k: np.where(diverged_ME, np.nan, v) for k, v in histories.items()}
            area = summary.ensemble["grokking_area"]
            note = f"grokking area {area.text(2)} decades ({area.n_censored}/{area.n} censored)"
            gone = [m.diverged_step for m in summary.members if m.diverged_step is not None]
            figures.extend(ensemble_figures(shown, steps_E, out_dir, title, gone, note))

        on_all_processes(write_outputs, writer_only=True)
        for sink in sinks:
            sink.finish([i for i, m in enumerate(summary.members) if m.diverged_step is not None])
        if mesh is not None:
            state = drop_padding(state, n_members)
        files = ("config.json", "metrics.parquet", "summary.json")
        files += tuple(p.name for p in figures) or ("accuracy.png", "loss.png", "weight_norm.png")
        files += ("live.jsonl", "status.json") if live else ()
        return RunResult(out_dir, summary, histories, steps_E, state, files)


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


def run_preset(
    name: str,
    seeds: Sequence[int],
    *,
    settings: Sequence[str] = (),
    out_dir: str | os.PathLike,
    **options: Any,
) -> RunResult:
    """`run_ensemble` of the preset `name` with 'field=value' `settings` (dotted paths,
    flat names or hparams; `grokjax.config.apply_overrides`); `options` go to it."""
    from grokjax.presets import get_preset

    preset = get_preset(name)
    cfg, hparams = apply_overrides(preset.config, preset.hparams, list(settings))
    return run_ensemble(cfg, hparams, seeds, out_dir, preset=name, **options)


def resume_run(
    out_dir: str | os.PathLike,
    *,
    settings: Sequence[str] = (),
    seeds: Sequence[int] | None = None,
    preset: str | None = None,
    **options: Any,
) -> RunResult:
    """Continue the run in `out_dir` as it was started: its preset, config fields,
    hyperparameters and seeds come from its config.json (`grokjax run --out D --resume`).

    `settings` ('field=value') may repeat what the run holds; one that contradicts it is
    refused naming the field, and so are other `seeds` or `preset`. 'steps=N' with N
    above the run's budget extends it: its numbers equal an uninterrupted N-step run's
    (`run_ensemble(resume=True)`). `options` go to `run_ensemble`.
    """
    out_dir = Path(out_dir)
    where = f"out={str(out_dir)!r}"
    if not (out_dir / "config.json").is_file():
        raise ConfigError(f"{where}: nothing to resume (no config.json)")
    saved = with_config_defaults(read_json(out_dir / "config.json", "the run's settings"))
    try:
        cfg = Config.from_dict(saved["config"])
        hp = Hparams(**{k: np.asarray(v, np.float32) for k, v in saved["hparams"].items()})
        run_seeds = [int(s) for s in saved["seeds"]]
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{where}: config.json does not hold a grokjax run ({err})") from None
    run_preset_name = saved.get("preset")
    if preset is not None and preset != run_preset_name:
        raise ConfigError(
            f"--preset {preset} is not allowed with --resume: the run in {out_dir} was started "
            f"from preset {run_preset_name!r} (--resume alone continues it)"
        )
    if seeds is not None and [int(s) for s in seeds] != run_seeds:
        raise ConfigError(
            f"--seeds/--seed-start (seeds {list(seeds)}) are not allowed with --resume: the "
            f"run in {out_dir} has seeds {run_seeds} (--resume alone continues it)"
        )
    steps = cfg.steps
    for item in settings:
        field, text = split_assignment(item)
        if field == "steps":
            steps = parse_value(field, text, "int")
            continue
        if field in Hparams._fields:
            value = np.float32(parse_value(field, text, "float"))
            held = np.asarray(getattr(hp, field), np.float32)
            if not np.all(held == value):
                raise ConfigError(
                    f"--set {field}={text} contradicts the run in {out_dir} ({field} "
                    f"{held.tolist()}): a resume continues the run as it was started"
                )
            continue
        changed = first_difference(
            {"config": cfg.to_dict()}, {"config": override(cfg, [item]).to_dict()}
        )
        if changed:
            raise ConfigError(
                f"--set {item} contradicts the run in {out_dir} ({changed}): a resume "
                "continues the run as it was started (--steps N extends it)"
            )
    if steps < cfg.steps:
        raise ConfigError(
            f"--steps {steps} is not allowed with --resume: the run in {out_dir} has "
            f"{cfg.steps} steps; a resume can extend a run, not shorten it"
        )
    if steps != cfg.steps:
        cfg = cfg.replace(steps=steps)
    return run_ensemble(cfg, hp, run_seeds, out_dir, preset=run_preset_name, resume=True, **options)
