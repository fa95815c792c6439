"""Perturbation schedules against AdamW, measured in log time: docs/schedule-results.md.

    python scripts/schedule_results.py [--out runs/schedules] [--seeds 16] [--tasks add square]
        [--blend-seeds 8] [--task-seeds square=8]

Five arms per task, all at learning rate 3e-3, 50 % train, full batch, data split seed
0, seeds 0-15 unless told otherwise (the annealed schedule was chosen on seeds 100 and up,
scripts/schedule_tuning.py): AdamW, WanD at constant kT (force cap 1.2e5), annealed WanD,
the WanD/AdamW blend and AdamW with plain parameter noise. Each arm is a resumable
grokjax run directory under --out; rerunning only rebuilds the tables and figures.
On two CPU cores x+y takes about 70 minutes, x^2+y about 2 hours.
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
from grokjax.stats.logtime import RATIO_THRESHOLDS, area_until, ratio_name
from grokjax.stats.summary import censored_stats, first_crossing

# task: (title, baseline arm, {arm: (preset, steps, config settings, hparams)})
TASKS = {
    "add": (
        "x+y mod 67",
        "paper-adamw-add",
        {
            "paper-adamw-add": ("paper-adamw-add", 2_000, [], {}),
            "wand-capped-add": ("wand-capped-add", 3_000, [], {}),
            "wand-annealed-add": ("wand-annealed-add", 3_000, [], {}),
            "wand-adamw-add": ("wand-adamw-add", 3_000, [], {}),
            "adamw-noise-add": ("adamw-noise-add", 2_000, [], {}),
        },
    ),
    "square": (
        "x^2+y mod 67",
        "paper-adamw-square",
        {
            # the paper trains AdamW on x^2+y at 5e-3; here at WanD's 3e-3 (same lr)
            "paper-adamw-square": ("paper-adamw-square", 5_000, [], {"learning_rate": 3e-3}),
            "wand-capped-square": ("wand-capped-square", 5_000, [], {}),
            "wand-annealed-square": ("wand-annealed-square", 5_000, [], {}),
            "wand-adamw-square": (
                "wand-adamw-add",
                5_000,
                ["data.task=x^2+y"],
                {"temperature": 0.7, "friction": 0.6},
            ),
            "adamw-noise-square": ("adamw-noise-square", 5_000, [], {}),
        },
    ),
}
COLLAPSE = 0.5  # test accuracy below this after first reaching 99 % counts as a collapse
SPLIT = 0.9  # the area is split at memorisation and at this test accuracy


def area_phases(result: RunResult) -> list[tuple]:
    """Per member, the grokking area before memorisation, from memorisation to SPLIT test
    accuracy and after it (None where a cut or the area itself is censored)."""
    phases = []
    for m, member in enumerate(result.summary.members):
        curves = (result.histories["train_acc"][m], result.histories["test_acc"][m], result.steps)
        cut = first_crossing(curves[1], result.steps, SPLIT)
        before = area_until(*curves, member.memorisation_step)
        until = area_until(*curves, cut)
        total = member.grokking_area
        phases.append(
            (
                before,
                None if until is None or before is None else until - before,
                None if total is None or until is None else total - until,
            )
        )
    return phases


BLEND = ("wand-adamw-add", "wand-adamw-square")  # the arms --blend-seeds applies to


def run_arm(arm: tuple, out: Path, n_seeds: int) -> RunResult:
    preset_name, steps, settings, numbers = arm
    preset = get_preset(preset_name)
    return run_ensemble(
        override(preset.config, settings).replace(steps=steps),
        preset.hparams._replace(**numbers),
        range(n_seeds),
        out,
        preset=preset_name,
        resume=(out / "config.json").exists(),
        progress=True,
    )


def arm_row(name: str, result: RunResult, base_area: float | None) -> str:
    members = result.summary.members
    ens = result.summary.ensemble
    reached = [m.generalisation_step is not None for m in members]
    lowest = []
    for m in range(len(members)):
        gen = first_crossing(result.histories["test_acc"][m], result.steps, 0.99)
        after = result.steps >= gen if gen is not None else np.zeros(result.steps.shape, bool)
        lowest.append(float(result.histories["test_acc"][m, after].min()) if after.any() else None)
    collapses = sum(v is not None and v < COLLAPSE for v in lowest)
    area = ens["grokking_area"]
    ratio = "-" if area.median is None or not base_area else f"{area.median / base_area:.2f}"
    ratios = " | ".join(ens[ratio_name(t)].text(2) for t in RATIO_THRESHOLDS)
    parts = zip(*area_phases(result), strict=True)
    split = " | ".join(censored_stats(list(part)).text(3) for part in parts)
    return (
        f"| {name} | {sum(reached)} / {len(members)} ({int(result.steps[-1]):,} steps) "
        f"| {ens['memorisation_step'].text()} | {ens['generalisation_step'].text()} "
        f"| {area.text(3)} | {ratio} | {split} | {ratios} "
        f"| {ens['test_acc_at_memorisation'].text(3)} "
        f"| {censored_stats(lowest).text(3)} | {collapses} "
        f"| {ens['final_test_acc'].text(3)} |"
    )


def task_section(title: str, baseline: str, results: dict[str, RunResult], figure: Path) -> str:
    base_area = results[baseline].summary.ensemble["grokking_area"].median
    counts = sorted({len(r.summary.members) for r in results.values()}, reverse=True)
    lines = [
        f"### {title}",
        "",
        f"Seeds 0-{counts[0] - 1}"
        + "".join(f" (arms with {n} seeds: 0-{n - 1})" for n in counts[1:])
        + ".",
        "",
        "| arm | seeds reaching 99 % test / budget | memorisation step | generalisation "
        "step (99 %) | grokking area (decades) | area / AdamW's | area before memorisation "
        f"| area memorisation to {SPLIT * 100:g} % test | area after {SPLIT * 100:g} % test | "
        + " | ".join(f"g({t:g}) / m" for t in RATIO_THRESHOLDS)
        + " | test accuracy at memorisation | lowest test accuracy after 99 % | collapses "
        "| final test accuracy |",
        "|" + "---|" * (13 + len(RATIO_THRESHOLDS)),
        *(arm_row(name, r, base_area) for name, r in results.items()),
        "",
        f"![{title}](figures/{figure.name})",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/schedules")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--blend-seeds", type=int, help="seeds of the blend arms (default --seeds)")
    parser.add_argument(
        "--task-seeds", nargs="*", default=[], metavar="TASK=N", help="seeds of one task's arms"
    )
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--only", nargs="*", help="run only these arms (no tables)")
    parser.add_argument(
        "--table-only", action="store_true", help="tables of the finished arms; train nothing"
    )
    parser.add_argument("--doc", default="docs/schedule-results.md")
    parser.add_argument("--figures", default="docs/figures")
    args = parser.parse_args()
    out = Path(args.out)
    sections = [
        "# Perturbation schedules against AdamW, in log time",
        "",
        "Made by `python scripts/schedule_results.py` (run directories under "
        f"`{args.out}`); do not edit by hand. Learning rate 3e-3 for every arm, "
        "50 % train, full batch, data split seed 0, evaluations every 10 "
        "steps. Medians (quartiles) over seeds; censored values are past the budget. "
        "Grokking area: decades between the train and test accuracy curves over log10 "
        "step (trapezoid rule over the evaluations from step 10; censored while the "
        "curves are more than 0.05 apart at the end). g(t) / m: the first step with test "
        "accuracy >= t over the memorisation step (train accuracy >= 99 %). A collapse is "
        f"test accuracy below {COLLAPSE:.0%} after first reaching 99 %. Definitions: "
        "`grokjax/stats/logtime.py`.",
    ]
    task_seeds = {}
    for item in args.task_seeds:
        task, _, n = item.partition("=")
        if task not in TASKS or not n.isdigit() or int(n) < 1:
            parser.error(f"--task-seeds: {item!r} is not TASK=N with TASK in {sorted(TASKS)}")
        task_seeds[task] = int(n)
    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)
    for task in args.tasks:
        title, baseline, arms = TASKS[task]
        names = [n for n in arms if not args.only or n in args.only]
        n_task = task_seeds.get(task, args.seeds)
        blend = min(args.blend_seeds or n_task, n_task)
        seeds = {n: blend if n in BLEND else n_task for n in names}
        if args.table_only:
            names = [n for n in names if (out / n / "summary.json").is_file()]
            missing = [n for n in arms if n not in names]
        else:
            missing = []
        results = {n: run_arm(arms[n], out / n, seeds[n]) for n in names}
        if args.only:
            continue
        figure = figures / f"schedules-{task}.png"
        comparison_figure(comparison_curves(results), figure, f"{title}, {n_task} seeds")
        sections += ["", task_section(title, baseline, results, figure)]
        if missing:
            sections += ["", f"Not run (no finished run directory): {', '.join(missing)}."]
    if args.only:
        return
    atomic_write_bytes(Path(args.doc), ("\n".join(sections) + "\n").encode())
    print("\n".join(sections))


if __name__ == "__main__":
    gj_flags.use_recommended_cpu_flags()
    main()
