"""What the views read from a run directory: finished (metrics.parquet, summary.json) or in
progress (live.jsonl, `grokjax.host.live`), with one error naming the file when it cannot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from grokjax.config import Hparams
from grokjax.host.live import read_live, run_state
from grokjax.io import RunDataError, read_json, read_metrics

NOT_METRICS = {"member", "seed", "step", "diverged", *Hparams._fields}  # per-member columns
KINDS = {  # the file that marks each kind of directory, in the order they are looked for
    "sweep": "sweep.json",
    "landscape": "landscape.json",
    "comparison": "comparison.json",
    "run": "config.json",
}


class RunData(NamedTuple):
    run_dir: Path
    state: str  # grokjax.host.live.STATES
    steps: np.ndarray  # [E]
    histories: dict[str, np.ndarray]  # name -> [members, E], NaN where missing or diverged
    seeds: list[int]
    record: dict[str, Any]  # config.json
    summary: dict[str, Any] | None  # summary.json, None while running
    hparams: dict[str, np.ndarray] = {}  # Hparams field -> [members], from metrics.parquet

    @property
    def title(self) -> str:
        preset = self.record.get("preset")
        return f"{self.run_dir.name} ({preset})" if preset else self.run_dir.name


def _read_json(path: Path) -> Any:
    return read_json(path, "run file", RunDataError)


def kind_of(directory: Path) -> str | None:
    """Which of `KINDS` a directory holds (None: none of them)."""
    for kind, marker in KINDS.items():
        if (Path(directory) / marker).is_file():
            return kind
    return None


def is_run_dir(path: Path) -> bool:
    return kind_of(path) == "run"


def _from_parquet(path: Path) -> tuple[np.ndarray, dict, list[int], dict]:
    frame = read_metrics(path)
    if not {"member", "step"} <= set(frame.columns):
        raise RunDataError(f"{path}: has no member and step columns")
    frame = frame.sort_values(["member", "step"])
    members = sorted(frame.member.unique())
    steps = np.sort(frame.step.unique())
    names = [c for c in frame.columns if c not in NOT_METRICS and frame[c].dtype.kind == "f"]
    histories = {}
    for name in names:
        table = frame.pivot(index="member", columns="step", values=name)
        histories[name] = table.reindex(index=members, columns=steps).to_numpy(np.float64)
    if "diverged" in frame:
        gone = frame.pivot(index="member", columns="step", values="diverged").to_numpy(bool)
        histories = {k: np.where(gone, np.nan, v) for k, v in histories.items()}
    by_member = frame.groupby("member")
    seeds = by_member.seed.first().tolist() if "seed" in frame else members
    hparams = {k: by_member[k].first().to_numpy() for k in Hparams._fields if k in frame}
    return steps, histories, [int(s) for s in seeds], hparams


def load_run(run_dir: Path) -> RunData:
    """The run in `run_dir`, finished or in progress. Raises RunDataError naming the file
    at fault for a missing, half-written or corrupted one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDataError(f"run_dir={str(run_dir)!r} is not a directory")
    record = _read_json(run_dir / "config.json")
    if not isinstance(record, dict):
        raise RunDataError(f"{run_dir / 'config.json'}: not a grokjax run record")
    state = run_state(run_dir)
    seeds = [int(s) for s in record.get("seeds", [])]
    summary, hparams = None, {}
    if (run_dir / "metrics.parquet").is_file():
        steps, histories, seeds, hparams = _from_parquet(run_dir / "metrics.parquet")
        if (run_dir / "summary.json").is_file():
            summary = _read_json(run_dir / "summary.json")
    else:
        live = read_live(run_dir)
        if live is None:
            raise RunDataError(f"{run_dir}: no metrics.parquet and no live.jsonl yet")
        steps, histories = live
    return RunData(run_dir, state, steps, histories, seeds, record, summary, hparams)
