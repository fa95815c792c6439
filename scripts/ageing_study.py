"""Is the memorisation plateau of AdamW on x+y mod 67 a glass? Ageing before and after.

Trains the paper's AdamW set-up (preset paper-adamw-add) with the parameters kept at
waiting times t_w inside the memorisation plateau and after generalisation, then reports
per group of t_w: the ageing index (how much MSD(t_w, t_w + tau) depends on t_w at equal
tau; 0 without ageing) and the relaxation times of the overlap. Plateau curves are cut
at the first step any seed generalises, so they describe the plateau only. Writes
ageing.json, ageing-plateau.png, ageing-after.png and indicators.png (weight norm,
last-layer norm, saturated softmax share and the MSD rate against steps from each
seed's generalisation) into --out, and prints a summary.

Usage: python scripts/ageing_study.py [--out runs/ageing] [--seeds 4] [--steps 4000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from grokjax import xla_flags as gj_flags
from grokjax.host.experiment import run_ensemble
from grokjax.io import atomic_write_json
from grokjax.plots import ageing_curves_figure, indicator_figure
from grokjax.presets import get_preset
from grokjax.stats.ageing import ageing_curves, ageing_index, relaxation_times

PLATEAU = (50, 100, 150, 200, 300)
AFTER = (1000, 1500, 2000)


def long_table(metrics: pd.DataFrame, waiting: tuple[int, ...]) -> pd.DataFrame:
    """metrics.parquet rows -> member, step, t_w, msd, overlap (rows before t_w dropped)."""
    parts = []
    for t_w in waiting:
        part = metrics[["member", "step", f"msd@{t_w}", f"overlap@{t_w}"]].copy()
        part.columns = ["member", "step", "msd", "overlap"]
        part["t_w"] = t_w
        parts.append(part[np.isfinite(part["msd"])])
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/ageing")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4000)
    args = parser.parse_args()
    out = Path(args.out)
    preset = get_preset("paper-adamw-add")
    cfg = preset.config.replace(steps=args.steps, **{"eval.waiting_times": PLATEAU + AFTER})
    run_dir = out / "run"
    result = run_ensemble(
        cfg,
        preset.hparams,
        range(args.seeds),
        run_dir,
        preset="paper-adamw-add",
        resume=(run_dir / "config.json").exists(),
        progress=False,
    )
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    per_seed = result.summary["members"]
    gen = [m["generalisation_step"] for m in per_seed]
    mem = [m["memorisation_step"] for m in per_seed]
    first_gen = min(g for g in gen if g is not None) if any(g is not None for g in gen) else None
    table = long_table(metrics, PLATEAU + AFTER)
    plateau = table[table["t_w"].isin(PLATEAU)]
    if first_gen is not None:
        plateau = plateau[plateau["step"] < first_gen]
    after = table[table["t_w"].isin(AFTER)]
    for name, part in (("plateau", plateau), ("after", after)):
        ageing_curves_figure(ageing_curves(part), out / f"ageing-{name}.png", ageing_index(part))

    def times(t):
        return {int(k): (None if np.isnan(v) else float(v)) for k, v in relaxation_times(t).items()}

    report = {
        "preset": "paper-adamw-add",
        "seeds": args.seeds,
        "steps": args.steps,
        "memorisation_steps": mem,
        "generalisation_steps": gen,
        "plateau_cut_at_step": first_gen,
        "plateau": {
            "t_w": PLATEAU,
            "ageing_index": ageing_index(plateau),
            "tau_rel": times(plateau),
        },
        "after": {"t_w": AFTER, "ageing_index": ageing_index(after), "tau_rel": times(after)},
    }
    atomic_write_json(out / "ageing.json", report)
    rate = f"d MSD(t_w={PLATEAU[0]}) / dt"
    indicator_figure(indicator_panels(metrics, gen), out / "indicators.png", log_y=(rate,))
    print(json.dumps(report, indent=1))


def indicator_panels(metrics: pd.DataFrame, gen: list) -> dict:
    """Candidate early warnings per seed against steps from its generalisation step:
    panel title -> {seed label -> (step - generalisation step, values)}."""
    names = ("weight_norm", "last_layer_norm", "saturated_fraction")
    rate = f"d MSD(t_w={PLATEAU[0]}) / dt"
    panels: dict[str, dict] = {name: {} for name in (*names, rate)}
    for member, g in enumerate(gen):
        if g is None:
            continue
        run = metrics[metrics["member"] == member].sort_values("step")
        t = run["step"].to_numpy() - g
        msd0 = run[f"msd@{PLATEAU[0]}"].to_numpy()
        for name in names:
            panels[name][f"seed {member}"] = (t, run[name].to_numpy())
        panels[rate][f"seed {member}"] = (t, np.gradient(msd0, run["step"].to_numpy()))
    return panels


if __name__ == "__main__":
    gj_flags.use_recommended_cpu_flags()  # before JAX starts, for plain jax.jit too
    main()
