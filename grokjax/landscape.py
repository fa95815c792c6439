"""The grokking entropy landscape S(ln L_train, A_test) of a network, measured by WLMD.

`run_landscape(lcfg, out_dir)` samples the density of states of the network `lcfg.model`
(a `Config`: task, modulus, widths, data split) over two collective variables,

    x = ln L_train   (cross-entropy on the full training set)
    y = A_test       (the paper's smoothed test accuracy, mean sigmoid(s * margin))

with the WLMD sampler of `grokjax.wlmd`: walkers start from independent
initialisations on one data split, move under the Langevin thermostat and the entropy
force, and deposit into S. With `protocol="average"` (the paper's) each walker keeps its
own estimate and all continue from their mean every `average_every` steps; with
`"shared"` every walker deposits into one estimate at every step.

The run is chunked: after each chunk of `chunk_steps` steps the walkers, the estimates,
the recorded walker positions and a convergence row (how much S changed since the last
chunk; how far the walkers' own estimates disagree) are checkpointed, so an
interrupted run resumes exactly. Outputs in the run directory:

    landscape.json    the settings
    landscape.npz     entropy S/kT and visit histogram on the grid, the bin centres, and
                      per-walker estimates (average protocol)
    convergence.json  one row per chunk
    trajectories.npz  the walkers' (x, y) every `record_every` steps
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from grokjax import data as data_lib
from grokjax.checkpoint import ChunkCheckpointer, atomic_write_json, atomic_write_with
from grokjax.config import Config
from grokjax.entropy import Grid
from grokjax.errors import ConfigError
from grokjax.experiment import check_out_dir, prepare_out_dir
from grokjax.metrics import cross_entropy, smoothed_accuracy
from grokjax.models import make_model
from grokjax.optim import rescale_to_norm
from grokjax.wlmd import Estimate, Sampler, Walker, fan_in_walls, make_sampler

PROTOCOLS = ("average", "shared")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LandscapeConfig:
    """A WLMD landscape run: the network and data (`model`), the grid, the sampler.

    Grid: x = ln L_train in [x_min, x_max) with bins of `x_bin`; y = smoothed test
    accuracy in [0, 1] with `y_bins` bins. Sampler: `timestep` dt, `friction` c_f,
    `temperature` kT, Wang-Landau `deposit` F and `t_wl`, kernel `sigma_bins`, the
    bias (`bias_strength` beta (x - L0)^`bias_power` above `bias_floor` L0 on x; power 2
    is the paper's, 1 a linear prior), and the finite
    volume: per-tensor reflective walls at `wall_scale` / sqrt(fan-in), or the global
    norm held at `fixed_norm` (then `wall_scale` is ignored). `walkers` walkers,
    `protocol` 'average' (every `average_every` steps) or 'shared'; `steps` per walker,
    in chunks of `chunk_steps`; positions recorded every `record_every` steps.
    """

    model: Config
    x_min: float = -12.0
    x_max: float = 3.0
    x_bin: float = 0.05
    y_bins: int = 50
    timestep: float = 1e-3
    friction: float = 0.01
    temperature: float = 1.0
    deposit: float = 1.0
    t_wl: float = 1000.0
    sigma_bins: float = 2.0
    bias_strength: float = 0.0
    bias_floor: float = -8.0
    bias_power: float = 2.0
    wall_scale: float = 3.0
    fixed_norm: float | None = None
    walkers: int = 8
    protocol: str = "average"
    average_every: int = 1000
    steps: int = 100_000
    chunk_steps: int = 10_000
    record_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        def fail(field: str, value: Any, allowed: str) -> None:
            raise ConfigError(f"{field}={value!r} is not allowed: {allowed}")

        if not isinstance(self.model, Config):
            fail("model", self.model, "a grokjax Config")
        if not self.x_max - self.x_min >= 4 * self.x_bin > 0:
            fail("x_max", self.x_max, "at least 4 bins of x_bin > 0 above x_min")
        if not isinstance(self.y_bins, int) or self.y_bins < 4:
            fail("y_bins", self.y_bins, "an integer >= 4")
        if not self.bias_power > 0:
            fail("bias_power", self.bias_power, "a positive number")
        for name in ("timestep", "temperature", "t_wl", "sigma_bins"):
            if not getattr(self, name) > 0:
                fail(name, getattr(self, name), "a positive number")
        if not 0 < self.friction <= 1:
            fail("friction", self.friction, "a number in (0, 1]")
        for name in ("deposit", "bias_strength", "wall_scale"):
            if getattr(self, name) < 0:
                fail(name, getattr(self, name), "a number >= 0")
        if self.fixed_norm is not None and not self.fixed_norm > 0:
            fail("fixed_norm", self.fixed_norm, "a positive number or None")
        if self.protocol not in PROTOCOLS:
            fail("protocol", self.protocol, f"one of {', '.join(PROTOCOLS)}")
        for name in ("walkers", "steps", "chunk_steps", "record_every", "average_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                fail(name, value, "a positive integer")
        if self.steps % self.chunk_steps:
            fail("chunk_steps", self.chunk_steps, f"a divisor of steps={self.steps}")
        if self.chunk_steps % self.record_every:
            fail("record_every", self.record_every, f"a divisor of chunk_steps={self.chunk_steps}")
        if self.protocol == "average" and self.chunk_steps % self.average_every:
            fail(
                "average_every", self.average_every, f"a divisor of chunk_steps={self.chunk_steps}"
            )

    @property
    def grids(self) -> tuple[Grid, Grid]:
        n_x = int(round((self.x_max - self.x_min) / self.x_bin))
        return Grid(self.x_min, self.x_bin, n_x), Grid(0.0, 1.0 / self.y_bins, self.y_bins)

    def replace(self, **changes: Any) -> LandscapeConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model"] = self.model.to_dict()
        return out


def collective_variables(lcfg: LandscapeConfig):
    """(cv_fn, init_fn): params -> [ln L_train, smoothed A_test], and key -> params."""
    cfg = lcfg.model
    model = make_model(cfg)
    ds = data_lib.make(jax.random.key(cfg.split_seed or 0), cfg)

    def cv_fn(params) -> jax.Array:
        loss = cross_entropy(model.apply(params, ds.train_inputs), ds.train_labels)
        test = smoothed_accuracy(
            model.apply(params, ds.test_inputs), ds.test_labels, cfg.smooth_slope
        )
        return jnp.stack([jnp.log(loss), test])

    return cv_fn, model.init


def make_landscape_sampler(lcfg: LandscapeConfig) -> tuple[Sampler, Any]:
    """The WLMD sampler for `lcfg` and the model's init function."""
    cv_fn, init_params = collective_variables(lcfg)
    walls = None
    if lcfg.fixed_norm is None:
        walls = fan_in_walls(jax.eval_shape(init_params, jax.random.key(0)), lcfg.wall_scale)
    sampler = make_sampler(
        cv_fn,
        lcfg.grids,
        timestep=lcfg.timestep,
        friction=lcfg.friction,
        temperature=lcfg.temperature,
        deposit=lcfg.deposit,
        t_wl=lcfg.t_wl,
        sigma_bins=lcfg.sigma_bins,
        bias_strength=lcfg.bias_strength,
        bias_floor=lcfg.bias_floor,
        bias_power=lcfg.bias_power,
        walls=walls,
        fixed_norm=lcfg.fixed_norm,
    )
    return sampler, init_params


def init_walkers(lcfg: LandscapeConfig, sampler: Sampler, init_params) -> tuple[Walker, Estimate]:
    """Walkers from independent initialisations (one key each), inside the finite volume."""
    keys = jax.random.split(jax.random.key(lcfg.seed), lcfg.walkers)

    def one(key):
        param_key, walker_key = jax.random.split(key)
        params = init_params(param_key)
        if lcfg.fixed_norm is not None:
            params = rescale_to_norm(params, lcfg.fixed_norm)
        else:
            bounds = fan_in_walls(params, lcfg.wall_scale)
            params = jax.tree.map(lambda p, b: jnp.clip(p, -b, b), params, bounds)
        return sampler.init(params, walker_key)

    walkers, estimates = jax.vmap(one)(keys)
    if lcfg.protocol == "shared":
        estimates = jax.tree.map(lambda x: x[0], estimates)
    return walkers, estimates


def make_chunk(lcfg: LandscapeConfig, sampler: Sampler):
    """chunk(walkers, estimates) -> (walkers, estimates, positions [records, walkers, 2])."""
    n_records = lcfg.chunk_steps // lcfg.record_every

    if lcfg.protocol == "shared":

        def advance(walkers, estimate):
            walkers, estimate, c = sampler.step_shared(walkers, estimate)
            return walkers, estimate, c

    else:
        vstep = jax.vmap(sampler.step)

        def advance(walkers, estimates):
            # Average before the step, so the estimates a chunk ends with still show
            # how far the walkers drifted apart since the last average.
            due = (walkers.step[0] > 0) & (walkers.step[0] % lcfg.average_every == 0)
            averaged = sampler.average(estimates)
            estimates = jax.tree.map(lambda a, b: jnp.where(due, a, b), averaged, estimates)
            return vstep(walkers, estimates)

    def record(carry, _):
        def body(carry, _):
            walkers, estimates, _ = carry
            return advance(walkers, estimates), None

        first = advance(*carry[:2])
        carry, _ = jax.lax.scan(body, first, length=lcfg.record_every - 1)
        return carry, carry[2]

    def chunk(walkers, estimates):
        c0 = jnp.zeros((lcfg.walkers, 2), jnp.float32)
        (walkers, estimates, _), positions = jax.lax.scan(
            record, (walkers, estimates, c0), length=n_records
        )
        return walkers, estimates, positions

    return chunk


def combined(
    lcfg: LandscapeConfig, sampler: Sampler, estimates: Estimate
) -> tuple[np.ndarray, np.ndarray]:
    """The landscape's S/kT and histogram: the walkers' mean estimate, summed visits."""
    if lcfg.protocol == "shared":
        return np.asarray(sampler.entropy(estimates)), np.asarray(estimates.histogram)
    mean = jax.tree.map(lambda x: x.mean(0), estimates)
    return np.asarray(sampler.entropy(mean)), np.asarray(estimates.histogram.sum(0))


def convergence_row(lcfg, sampler, estimates, previous: np.ndarray | None) -> dict:
    """Change of S since the last chunk and walker disagreement, over the visited bins.

    Both are root-mean-square values after removing the mean over visited bins (S is
    defined up to a constant); walker disagreement is the spread of the walkers' own
    estimates (average protocol only; None for a shared estimate).
    """
    entropy, histogram = combined(lcfg, sampler, estimates)
    visited = histogram > 0
    row: dict[str, Any] = {"visited_bins": int(visited.sum())}

    def centred(s):
        return s[visited] - s[visited].mean()

    row["rms_change"] = (
        None
        if previous is None or not visited.any()
        else float(np.sqrt(np.mean((centred(entropy) - centred(previous)) ** 2)))
    )
    if lcfg.protocol == "average" and visited.any():
        per_walker = np.asarray(jax.vmap(sampler.entropy)(estimates))
        spread = np.stack([centred(s) for s in per_walker]).std(0)
        row["walker_spread"] = float(np.sqrt(np.mean(spread**2)))
    else:
        row["walker_spread"] = None
    return row, entropy


def run_landscape(
    lcfg: LandscapeConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_chunk=None,
) -> dict:
    """Sample the landscape chunk by chunk (checkpointed) and write the run directory.

    Returns {"entropy", "histogram", "x", "y", "convergence", "positions"} as numpy.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir, resume, overwrite, settings="landscape.json")
    prepare_out_dir(
        out_dir, lcfg.to_dict(), resume, overwrite, settings="landscape.json", normalise=dict
    )
    sampler, init_params = make_landscape_sampler(lcfg)
    walkers, estimates = jax.jit(lambda: init_walkers(lcfg, sampler, init_params))()
    chunk = jax.jit(make_chunk(lcfg, sampler))
    n_chunks = lcfg.steps // lcfg.chunk_steps
    n_records = lcfg.chunk_steps // lcfg.record_every
    positions = np.full((n_chunks * n_records, lcfg.walkers, 2), np.nan, np.float32)
    rows: list[dict] = []
    previous = None
    checkpointer = ChunkCheckpointer(out_dir / "checkpoints")
    start = 0
    latest = checkpointer.latest() if resume else None
    if latest is not None:
        template = {
            "walkers": walkers,
            "estimates": estimates,
            "positions": positions,
            "previous": np.zeros(tuple(g.n_bins for g in lcfg.grids), np.float32),
        }
        restored = checkpointer.restore(latest, template)
        walkers, estimates = restored["walkers"], restored["estimates"]
        positions = np.asarray(restored["positions"])
        previous = np.asarray(restored["previous"])
        rows = json.loads((out_dir / "convergence.json").read_text())[: latest + 1]
        start = latest + 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=lcfg.steps,
            initial=start * lcfg.chunk_steps,
            unit="step",
            desc=f"{lcfg.walkers} walkers",
        )
    for c in range(start, n_chunks):
        t0 = time.perf_counter()
        walkers, estimates, pos = chunk(walkers, estimates)
        positions[c * n_records : (c + 1) * n_records] = np.asarray(pos)
        row, previous = convergence_row(lcfg, sampler, estimates, previous)
        row = {
            "chunk": c,
            "step": (c + 1) * lcfg.chunk_steps,
            "seconds": round(time.perf_counter() - t0, 3),
            **row,
        }
        rows.append(row)
        checkpointer.save(
            c,
            {
                "walkers": walkers,
                "estimates": estimates,
                "positions": positions,
                "previous": previous,
            },
        )
        atomic_write_json(out_dir / "convergence.json", rows)
        if bar is not None:
            bar.update(lcfg.chunk_steps)
            bar.set_postfix(change=row["rms_change"], spread=row["walker_spread"])
        if on_chunk is not None:
            on_chunk(c)
    if bar is not None:
        bar.close()
    checkpointer.close()
    entropy, histogram = combined(lcfg, sampler, estimates)
    x, y = (np.asarray(g.centres) for g in lcfg.grids)
    arrays = {"entropy": entropy, "histogram": histogram, "x": x, "y": y}
    if lcfg.protocol == "average":
        arrays["walker_entropy"] = np.asarray(jax.vmap(sampler.entropy)(estimates))
    atomic_write_with(out_dir / "landscape.npz", lambda tmp: np.savez(tmp, **arrays))
    atomic_write_with(out_dir / "trajectories.npz", lambda tmp: np.savez(tmp, positions=positions))
    return {**arrays, "convergence": rows, "positions": positions}
