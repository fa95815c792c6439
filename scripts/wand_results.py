"""WanD against AdamW at the same learning rate: the runs, tables and figures of
docs/wand-results.md.

    python scripts/wand_results.py [--out runs/wand] [--seeds 16] [--ablation-seeds 8]

Every arm is a `grokjax` run directory under --out; an arm that is already there (all or
part) is resumed, so the script can be stopped and restarted, and rerunning it after
the runs exist only rebuilds the tables and figures. The full set is about 2.5 hours
on a 2-core CPU. The document and figures go to --doc and --figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from grokjax import xla_flags as gj_flags
from grokjax.config import override
from grokjax.host.compare import comparison_curves
from grokjax.host.experiment import RunResult, run_ensemble
from grokjax.io import atomic_write_bytes
from grokjax.plots import comparison_figure
from grokjax.presets import get_preset
from grokjax.stats.summary import censored_stats, first_crossing

# Run directory: (preset, steps, seed count kind: "main", "blend" or "ablation", hparam
# overrides).
ARMS = {
    "wand-capped-add": ("wand-capped-add", 5_000, "main", {}),
    "wand-adamw-add": ("wand-adamw-add", 3_000, "blend", {}),
    "paper-adamw-add": ("paper-adamw-add", 2_000, "main", {}),
    "wand-capped-square": ("wand-capped-square", 5_000, "main", {}),
    # the paper trains AdamW on x^2+y at 5e-3; here at WanD's 3e-3 (same learning rate)
    "paper-adamw-square": ("paper-adamw-square", 5_000, "main", {"learning_rate": 3e-3}),
    "wand-no-noise-add": ("wand-no-noise-add", 3_000, "ablation", {}),
    "wand-no-wl-add": ("wand-no-wl-add", 3_000, "ablation", {}),
    "wand-loss-force-add": ("wand-loss-force-add", 3_000, "ablation", {}),
}

# Table: (title, baseline arm, arms, steps cut or None, seed count kind).
GROUPS = [
    ("x+y mod 67", "paper-adamw-add", ["wand-capped-add"], None, "main"),
    (
        "Blend on x+y mod 67",
        "paper-adamw-add",
        ["wand-capped-add", "wand-adamw-add"],
        None,
        "blend",
    ),
    ("x^2+y mod 67", "paper-adamw-square", ["wand-capped-square"], None, "main"),
    (
        "Ablation on x+y mod 67 (first 3,000 steps)",
        "paper-adamw-add",
        ["wand-capped-add", "wand-no-noise-add", "wand-no-wl-add", "wand-loss-force-add"],
        3_000,
        "ablation",
    ),
]

THRESHOLDS = (0.99, 0.95, 0.90)
COLLAPSE = 0.5  # test accuracy below this after reaching 99 % counts as a collapse


def run_arm(
    name: str, out: Path, n_seeds: int, max_steps: int | None = None, settings: list[str] = ()
) -> RunResult:
    preset_name, steps, _, overrides = ARMS[name]
    preset = get_preset(preset_name)
    cfg = override(preset.config, list(settings)).replace(steps=min(steps, max_steps or steps))
    hparams = preset.hparams._replace(**overrides)
    return run_ensemble(
        cfg,
        hparams,
        range(n_seeds),
        out / name,
        preset=preset_name,
        resume=(out / name / "config.json").exists(),
        progress=True,
    )


def member_rows(result: RunResult, n_seeds: int, cut: int | None) -> list[dict]:
    """Per-seed thresholds and stability, from the first n_seeds seeds up to step `cut`."""
    keep = result.steps <= (cut if cut is not None else result.steps[-1])
    steps = result.steps[keep]
    rows = []
    for m in range(n_seeds):
        h = {k: v[m, keep] for k, v in result.histories.items()}
        mem = first_crossing(h["train_acc"], steps, 0.99)
        row = {"memorisation": mem, "budget": int(steps[-1])}
        for t in THRESHOLDS:
            gen = first_crossing(h["test_acc"], steps, t)
            row[f"gen{t:.2f}"] = gen
            row[f"delay{t:.2f}"] = None if gen is None or mem is None else gen - mem
        gen = row["gen0.99"]
        after = steps >= gen if gen is not None else np.zeros_like(steps, bool)
        row["norm_at_gen"] = float(h["weight_norm"][after][0]) if gen is not None else None
        row["final_norm"] = float(h["weight_norm"][-1])
        row["min_test_after_gen"] = float(h["test_acc"][after].min()) if gen is not None else None
        row["final_test"] = float(h["test_acc"][-1])
        rows.append(row)
    return rows


def group_table(title: str, baseline: str, arms: list[str], rows: dict[str, list[dict]]) -> str:
    base_delay = censored_stats([r["delay0.99"] for r in rows[baseline]])["median"]
    lines = [
        f"### {title}",
        "",
        "| arm | seeds reaching 99 % test / budget | memorisation step | generalisation "
        "step (99 %) | delay at 99 % | delay / AdamW's | delay at 95 % | delay at 90 % | "
        "weight norm at generalisation | final weight norm | lowest test accuracy after "
        "99 % | collapses |",
        "|" + "---|" * 12,
    ]
    for arm in [*arms, baseline]:
        rs = rows[arm]
        stats = {k: censored_stats([r[k] for r in rs]) for k in rs[0]}
        delay = stats["delay0.99"]["median"]
        ratio = "-" if delay is None or not base_delay else f"{delay / base_delay:.2f}"
        reached = len(rs) - stats["gen0.99"]["n_censored"]
        collapses = sum(
            r["min_test_after_gen"] is not None and r["min_test_after_gen"] < COLLAPSE for r in rs
        )
        lines.append(
            f"| {arm} | {reached} / {len(rs)} ({rs[0]['budget']:,} steps) "
            f"| {stats['memorisation'].text()} | {stats['gen0.99'].text()} "
            f"| {stats['delay0.99'].text()} | {ratio} | {stats['delay0.95'].text()} "
            f"| {stats['delay0.90'].text()} | {stats['norm_at_gen'].text(1)} "
            f"| {stats['final_norm'].text(1)} | {stats['min_test_after_gen'].text(3)} "
            f"| {collapses} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/wand", help="run directories (default runs/wand)")
    parser.add_argument("--seeds", type=int, default=16, help="seeds per main arm")
    parser.add_argument("--blend-seeds", type=int, default=8, help="seeds of the blend arm")
    parser.add_argument("--ablation-seeds", type=int, default=6, help="seeds per ablation arm")
    parser.add_argument("--doc", default="docs/wand-results.md")
    parser.add_argument("--figures", default="docs/figures")
    parser.add_argument("--only", nargs="*", help="run only these arms (no tables)")
    parser.add_argument("--max-steps", type=int, help="cap every arm's steps (a smoke test)")
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], help="PATH=VALUE for every arm"
    )
    args = parser.parse_args()
    out = Path(args.out)
    n = {
        "main": args.seeds,
        "blend": min(args.blend_seeds, args.seeds),
        "ablation": min(args.ablation_seeds, args.seeds),
    }
    results = {}
    for name in args.only or ARMS:
        results[name] = run_arm(name, out, n[ARMS[name][2]], args.max_steps, args.settings)
    if args.only:
        return
    sections = [
        "# WanD against AdamW: seed tables",
        "",
        "Made by `python scripts/wand_results.py` (run directories under "
        f"`{args.out}`); do not edit by hand. Seeds 0-{args.seeds - 1} for the main arms, "
        f"0-{n['blend'] - 1} for the blend and 0-{n['ablation'] - 1} for the ablation (each "
        "table compares its arms on the same seeds); all arms at learning rate (dt) 3e-3, "
        "full batch, data split seed 0. Steps are counted at evaluations every 10 steps. "
        "Memorisation: train accuracy >= 99 %; generalisation at a threshold: test "
        "accuracy >= it; delay: generalisation minus memorisation step. Medians and "
        "quartiles over seeds; a seed that does not reach a threshold within its budget "
        f"is censored (counted as later than the budget). A collapse is test accuracy "
        f"below {COLLAPSE:.0%} after first reaching 99 %.",
    ]
    figure_dir = Path(args.figures)
    figure_dir.mkdir(parents=True, exist_ok=True)
    for title, baseline, arms, cut, kind in GROUPS:
        rows = {a: member_rows(results[a], n[kind], cut) for a in [*arms, baseline]}
        sections += ["", group_table(title, baseline, arms, rows), ""]
        slug = "wand-" + "".join(c if c.isalnum() else "-" for c in title.split(" (")[0]).lower()
        picked = {}
        for a in [*arms, baseline]:
            r = results[a]
            keep = r.steps <= (cut if cut is not None else r.steps[-1])
            histories = {k: v[: n[kind], keep] for k, v in r.histories.items()}
            picked[a] = RunResult(r.out_dir, r.summary, histories, r.steps[keep], None)
        figure = figure_dir / f"{slug}.png"
        comparison_figure(comparison_curves(picked), figure, title)
        sections.append(f"![{title}](figures/{figure.name})")
    atomic_write_bytes(Path(args.doc), ("\n".join(sections) + "\n").encode())
    print("\n".join(sections))


if __name__ == "__main__":
    gj_flags.use_recommended_cpu_flags()  # before JAX starts, for plain jax.jit too
    main()
