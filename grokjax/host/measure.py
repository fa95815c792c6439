"""Measure a landscape: `run_landscape` drives the WLMD program of `grokjax.landscape`
chunk by chunk through the host loop and writes the run directory; `measure_preset`
adds the analysis (`grokjax.stats.landscape_analysis`) and draws it (`analyse`).

Outputs in the run directory:

    landscape.json    the settings
    landscape.npz     entropy S/kT and visit histogram on the grid, the bin centres, and
                      per-walker estimates (average protocol)
    convergence.json  one row per chunk
    trajectories.npz  the walkers' (x, y) every `record_every` steps
    analysis.json, landscape.png   (`measure_preset`)
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from grokjax.config import override, parse_value, split_assignment
from grokjax.errors import ConfigError
from grokjax.host.loop import Progress, check_profile_dir, run_chunks
from grokjax.host.rundir import open_run_dir
from grokjax.io import atomic_write_json, atomic_write_with, json_safe, read_json, read_metrics
from grokjax.landscape import (
    LandscapeConfig,
    combined,
    convergence_row,
    init_walkers,
    make_chunk,
    make_landscape_sampler,
)
from grokjax.plots import landscape_map_figure
from grokjax.presets import get_preset
from grokjax.stats.landscape_analysis import analysis, equilibrium_curve, known
from grokjax.stats.summary import Record
from grokjax.xla_flags import jit


@dataclasses.dataclass(frozen=True)
class ConvergenceRow(Record):
    """One chunk's row of convergence.json (`grokjax.landscape.convergence_row` defines
    each measure); None where a measure needs a previous chunk or several walkers."""

    chunk: int
    step: int
    seconds: float
    visited_bins: int
    rms_change: float | None = None
    rms_change_in_y: float | None = None
    equilibrium_change: float | None = None
    relative_change_in_y: float | None = None
    structure_in_y: float | None = None
    walker_spread: float | None = None
    walker_spread_in_y: float | None = None


def _with_model_defaults(saved: dict) -> dict:
    """The saved settings as this release writes them: fields added since default to the
    old behaviour, a flat model config of an earlier release reads as the nested one."""
    return json_safe(LandscapeConfig.from_dict(saved).to_dict())


def run_landscape(
    lcfg: LandscapeConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_chunk=None,
    profile_dir: str | os.PathLike | None = None,
) -> dict:
    """Sample the landscape chunk by chunk (checkpointed) and write the run directory.

    Returns {"entropy", "histogram", "x", "y", "convergence", "positions", "files"}.
    """
    out_dir = Path(out_dir)
    check_profile_dir(profile_dir)
    # The samplers first: the user's data and model are checked before the directory.
    built = [make_landscape_sampler(lcfg, g) for g in lcfg.window_grids()]
    record, settings = lcfg.to_dict(), "landscape.json"
    with open_run_dir(out_dir, record, resume, overwrite, settings, _with_model_defaults):
        bar = Progress(lcfg.steps, lcfg.walkers, desc=f"{lcfg.walkers} walkers", enabled=progress)
        samplers = [sm for sm, _ in built]
        init_params = built[0][1]
        states = [
            jit(lambda sm=sm, k=k: init_walkers(lcfg, sm, init_params, k))()
            for k, sm in enumerate(samplers)
        ]
        report = bar.report if progress else None
        chunks = [jit(make_chunk(lcfg, sm, report)) for sm in samplers]
        n_chunks = lcfg.steps // lcfg.chunk_steps
        n_records = lcfg.chunk_steps // lcfg.record_every
        carry = {
            "walkers": tuple(w for w, _ in states),
            "estimates": tuple(e for _, e in states),
            "positions": np.full((n_chunks * n_records, lcfg.walkers, 2), np.nan, np.float32),
            "previous": np.zeros(tuple(g.n_bins for g in lcfg.grids), np.float32),
        }
        rows: list[ConvergenceRow] = []

        def chunk(c: int, carry: dict) -> dict:
            t0 = time.perf_counter()
            stepped = [
                ch(w, e)
                for ch, w, e in zip(chunks, carry["walkers"], carry["estimates"], strict=True)
            ]
            estimates = tuple(e for _, e, _ in stepped)
            positions = carry["positions"]
            pos = np.concatenate([np.asarray(p) for _, _, p in stepped], axis=1)
            positions[c * n_records : (c + 1) * n_records] = pos
            previous = carry["previous"] if c else None
            row, entropy = convergence_row(lcfg, samplers, estimates, previous)
            seconds = round(time.perf_counter() - t0, 3)
            rows.append(ConvergenceRow(c, (c + 1) * lcfg.chunk_steps, seconds, **row))
            atomic_write_json(out_dir / "convergence.json", rows)
            walkers = tuple(w for w, _, _ in stepped)
            return {
                "walkers": walkers,
                "estimates": estimates,
                "positions": positions,
                "previous": entropy,
            }

        def restore(saved: dict, start: int) -> dict:
            done = read_json(out_dir / "convergence.json", "convergence rows")[:start]
            rows.extend(ConvergenceRow(**row) for row in done)
            return {
                "walkers": tuple(saved["walkers"]),
                "estimates": tuple(saved["estimates"]),
                "positions": np.asarray(saved["positions"]),
                "previous": np.asarray(saved["previous"]),
            }

        carry, _ = run_chunks(
            chunk,
            carry,
            n_chunks,
            out_dir,
            resume=resume,
            restore=restore,
            progress=bar,
            chunk_steps=lambda c: lcfg.chunk_steps,
            postfix=lambda _: {"change": rows[-1].rms_change, "spread": rows[-1].walker_spread},
            on_chunk=on_chunk,
            profile_dir=profile_dir,
        )
        bar.close()
        entropy, histogram, per_walker = combined(lcfg, samplers, carry["estimates"])
        positions = carry["positions"]
        x, y = (np.asarray(g.centres) for g in lcfg.grids)
        arrays = {"entropy": entropy, "histogram": histogram, "x": x, "y": y}
        if per_walker is not None:
            arrays["walker_entropy"] = per_walker
        atomic_write_with(out_dir / "landscape.npz", lambda tmp: np.savez(tmp, **arrays))
        atomic_write_with(
            out_dir / "trajectories.npz", lambda tmp: np.savez(tmp, positions=positions)
        )
        files = ["landscape.json", "landscape.npz", "trajectories.npz", "convergence.json"]
        return {**arrays, "convergence": rows, "positions": positions, "files": files}


def _chunked(preset: LandscapeConfig, settings: list[str]) -> list[str]:
    """`settings` with `chunk_steps` following a `steps` that the preset's chunk does not
    divide: the largest chunk up to the preset's that divides the steps and keeps
    `record_every` and `average_every`; refused with that rule when there is none."""
    fields = dict(split_assignment(item) for item in settings)
    if "steps" not in fields or "chunk_steps" in fields:
        return settings
    steps = parse_value("steps", fields["steps"], "int")
    record = int(parse_value("record_every", fields.get("record_every", "0"), "int"))
    average = int(parse_value("average_every", fields.get("average_every", "0"), "int"))
    record, average = record or preset.record_every, average or preset.average_every
    unit = math.lcm(record, average) if record > 0 and average > 0 else 0
    if not isinstance(steps, int) or steps < 1 or unit == 0 or steps % preset.chunk_steps == 0:
        return settings  # the config's own checks speak
    top = min(preset.chunk_steps, steps) // unit * unit
    for chunk in range(top, 0, -unit):
        if steps % chunk == 0:
            return [*settings, f"chunk_steps={chunk}"]
    raise ConfigError(
        f"steps={steps} is not allowed: a multiple of {unit} (record_every={record} and "
        f"average_every={average}), so that a chunk of at most chunk_steps="
        f"{preset.chunk_steps} divides it; or set chunk_steps and those yourself"
    )


def landscape_figure(
    landscape: dict, path: Path | None, trajectories: dict | None = None, title: str = ""
):
    """Heat map of S/kT relative to its maximum at each loss (0 on the equilibrium
    curve) over the visited bins, with the equilibrium curve and trajectories on top;
    drawn by `grokjax.plots.landscape_map_figure`. Returns the Figure."""
    entropy, hist = landscape["entropy"], landscape["histogram"]
    y_eq, s_eq = equilibrium_curve(entropy, hist, landscape["y"])
    shown = np.where(known(entropy, hist), entropy - s_eq[:, None], np.nan)
    return landscape_map_figure(
        landscape["x"], landscape["y"], shown, y_eq, path, trajectories, title
    )


def run_trajectory(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x(t), y(t)) of a grokjax run directory: the median over its members per step."""
    frame = read_metrics(Path(run_dir) / "metrics.parquet")
    med = frame.groupby("step")[["ln_train_loss", "smoothed_test_acc"]].median()
    return med["ln_train_loss"].to_numpy(), med["smoothed_test_acc"].to_numpy()


def analyse(
    out_dir: Path,
    trajectories: dict[str, Path] | None = None,
    x_band: tuple[float, float] | None = None,
    title: str = "",
) -> dict:
    """Read `landscape.npz` in out_dir; write analysis.json and landscape.png there
    (`grokjax.stats.landscape_analysis.analysis`)."""
    out_dir = Path(out_dir)
    with np.load(out_dir / "landscape.npz") as npz:
        landscape = {k: npz[k] for k in npz.files}
    rows_path = out_dir / "convergence.json"
    rows = read_json(rows_path, "convergence rows") if rows_path.is_file() else None
    curves = {name: run_trajectory(d) for name, d in (trajectories or {}).items()}
    result = analysis(landscape, x_band, rows, curves)
    for name, run_dir in (trajectories or {}).items():
        result["trajectories"][name] = {"run": str(run_dir), **result["trajectories"][name]}
    landscape_figure(landscape, out_dir / "landscape.png", curves, title)
    atomic_write_json(out_dir / "analysis.json", result)
    return result


def measure_preset(
    name: str,
    trajectories: Sequence[str] = (),
    *,
    settings: Sequence[str] = (),
    out_dir: str | os.PathLike,
    **options,
) -> str:
    """Measure the landscape preset `name` with 'field=value' `settings` (landscape
    fields, or its network's as `model.<path>`), analyse it with the `NAME=RUN_DIR`
    `trajectories` overlaid, and say what was found and written. `options` go to
    `grokjax.landscape.run_landscape`."""
    preset = get_preset(name, "landscape").config
    lcfg = override(preset, _chunked(preset, list(settings)))
    runs = {}
    for item in trajectories:
        label, _, run_dir = item.partition("=")
        if not run_dir or not (Path(run_dir) / "metrics.parquet").is_file():
            raise ConfigError(
                f"trajectory={item!r} is not allowed: NAME=RUN_DIR with a metrics.parquet"
            )
        runs[label] = Path(run_dir)
    out_dir = Path(out_dir)
    landscape = run_landscape(lcfg, out_dir, **options)
    result = analyse(out_dir, runs, title=name)
    barrier, verdict = result["barrier"], result.get("convergence", {})
    lines = [
        f"converged: {verdict.get('converged')} ({verdict.get('reason')})",
        f"visited bins {result['visited_bins']}; barrier dip {barrier['dip']} "
        f"(ln L band {result['x_band'][0]:.2f} to {result['x_band'][1]:.2f})",
    ]
    for label, row in result["trajectories"].items():
        lines.append(
            f"{label}: median S_eq - S = {row['median_entropy_gap']}, "
            f"median A_eq - A = {row['median_accuracy_gap']} over {row['points_on_grid']} points"
        )
    files = [*landscape["files"], "analysis.json", "landscape.png"]
    return "\n".join([*lines, f"wrote {out_dir}/: {', '.join(files)}"])
