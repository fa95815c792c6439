"""Choosing WanD's annealing schedule on tuning seeds (100 and up), never the reported ones.

    python scripts/schedule_tuning.py [--out runs/schedule-tuning] [--seeds 3] [--steps 2000]
                                      [--only NAME ...] [--doc docs/schedule-tuning.md]

Each candidate is wand-capped-add (x+y mod 67, kT 0.5, c_f 0.5, force cap 1.2e5, lr 3e-3)
with a schedule on kT; each is a resumable run directory under --out, and the table of
log-time measures (`grokjax.stats.logtime`) over its seeds goes to --doc. The schedule
chosen here is the one `wand-annealed-add` uses; scripts/schedule_results.py reports it on
seeds 0-15.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from grokjax import xla_flags as gj_flags
from grokjax.config import override
from grokjax.host.experiment import run_ensemble
from grokjax.io import atomic_write_bytes
from grokjax.presets import get_preset
from grokjax.stats.logtime import ratio_name

FIRST_SEED = 100
# name: (what it tries, config settings, hparams)
CANDIDATES = {
    "constant": ("kT 0.5 throughout (wand-capped-add)", [], {}),
    "cool-after-memorising": (
        "kT 0.5, then once train accuracy has stayed >= 0.99 for 50 updates a cosine to 0 "
        "over 500 steps",
        ["optim.anneal.temperature=cosine", "optim.anneal.trigger=train_accuracy"],
        dict(temperature_final=0.0, anneal_steps=500.0, trigger_level=0.99, trigger_steps=50.0),
    ),
    "hot-cosine": (
        "kT from 1.0 at step 0 down a cosine to 0.05 at step 1,500",
        ["optim.anneal.temperature=cosine"],
        dict(temperature=1.0, temperature_final=0.05, anneal_steps=1500.0),
    ),
    "exponential": (
        "kT from 0.5 at step 0 to a floor of 0.02, time constant 500 steps",
        ["optim.anneal.temperature=exponential"],
        dict(temperature_final=0.02, anneal_steps=500.0),
    ),
    "linear": (
        "kT from 0.5 at step 0 down a straight line to 0 at step 1,500",
        ["optim.anneal.temperature=linear"],
        dict(temperature_final=0.0, anneal_steps=1500.0),
    ),
}


def run_candidate(name: str, out: Path, n_seeds: int, steps: int):
    preset = get_preset("wand-capped-add")
    _, settings, numbers = CANDIDATES[name]
    cfg = override(preset.config, settings).replace(steps=steps)
    return run_ensemble(
        cfg,
        preset.hparams._replace(**numbers),
        range(FIRST_SEED, FIRST_SEED + n_seeds),
        out / name,
        preset="wand-capped-add",
        resume=(out / name / "config.json").exists(),
        progress=False,
    )


def row(name: str, result) -> str:
    ens = result.summary.ensemble
    gen = ens["generalisation_step"]
    return (
        f"| {name} | {CANDIDATES[name][0]} | {gen.n - gen.n_censored} / {gen.n} "
        f"| {ens['memorisation_step'].text()} | {gen.text()} | {ens['grokking_area'].text(3)} "
        f"| {ens[ratio_name(0.9)].text(2)} | {ens['test_acc_at_memorisation'].text(3)} "
        f"| {ens['final_test_acc'].text(3)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/schedule-tuning")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--only", nargs="*", help="these candidates only")
    parser.add_argument("--doc", default="docs/schedule-tuning.md")
    args = parser.parse_args()
    names = args.only or list(CANDIDATES)
    rows = []
    for name in names:
        result = run_candidate(name, Path(args.out), args.seeds, args.steps)
        rows.append(row(name, result))
        print(rows[-1], flush=True)
    seeds = f"{FIRST_SEED}-{FIRST_SEED + args.seeds - 1}"
    text = [
        "# Annealed WanD: the tuning runs",
        "",
        f"Made by `python scripts/schedule_tuning.py`; seeds {seeds} (never reported "
        f"elsewhere), {args.steps:,} steps, x+y mod 67, 50 % train, lr 3e-3, force cap 1.2e5, "
        "evaluations every 10 steps. Medians (quartiles) over seeds; censored values are "
        "past the budget. Area: decades between the train and test accuracy curves over "
        "log10 step (`grokjax.stats.logtime`).",
        "",
        "| candidate | schedule | seeds at 99 % test | memorisation step | generalisation "
        "step (99 %) | grokking area (decades) | g(0.9) / m | test accuracy at memorisation "
        "| final test accuracy |",
        "|" + "---|" * 9,
        *rows,
    ]
    if not args.only:
        atomic_write_bytes(Path(args.doc), ("\n".join(text) + "\n").encode())
    print("\n".join(text))


if __name__ == "__main__":
    gj_flags.use_recommended_cpu_flags()
    main()
