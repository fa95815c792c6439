"""Early warning of grokking over two 48-run ensembles: docs/early-warning.md.

    python scripts/early_warning.py [--out runs] [--table-only]

Trains (or resumes) the sweep presets `early-warning-add` (x+y mod 67, AdamW, train
fraction x weight decay x learning rate x 4 seeds, with the Fourier progress measures;
about an hour on two CPU cores), `early-warning-add-long` (16 more x+y runs at train
fraction 0.3 with 4,000 steps; about 25 minutes) and `early-warning-parity` (sparse
parity, SGD, train size x weight decay x learning rate x 4 seeds; a few minutes), then
scores every
indicator of `grokjax.stats.warning` with each seed's runs held out in turn
(`grokjax warn`), and writes the tables and figures.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

from grokjax import xla_flags as gj_flags
from grokjax.host.sweep import sweep_preset
from grokjax.host.warn import markdown, warn
from grokjax.io import atomic_write_bytes, markdown_table

# (title, {sweep preset: directory under --out}, figure suffix, early step of the concordance)
TASKS = [
    (
        "x+y mod 67, AdamW",
        {"early-warning-add": "warning", "early-warning-add-long": "warning-long"},
        "add",
        200,
    ),
    (
        "sparse parity n = 40, k = 3, SGD",
        {"early-warning-parity": "warning-parity"},
        "parity",
        1_550,
    ),
]


def kinds_table(runs: pd.DataFrame, axes: list[str]) -> str:
    """Counts of each kind per cell of `axes`, as a markdown table."""
    counts = runs.groupby(axes).kind.value_counts().unstack(fill_value=0)
    rows = (
        [*(f"{k:g}" for k in (key if isinstance(key, tuple) else (key,))), *map(str, row)]
        for key, row in counts.iterrows()
    )
    return markdown_table([*axes, *counts.columns], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs")
    parser.add_argument("--table-only", action="store_true", help="score; train nothing")
    parser.add_argument("--doc", default="docs/early-warning.md")
    parser.add_argument("--figures", default="docs/figures")
    args = parser.parse_args()
    sections = [
        "# Early warning of grokking",
        "",
        "Made by `python scripts/early_warning.py`; do not edit by hand. Definitions: "
        "`grokjax.stats.warning`. Every threshold is chosen on three seeds' runs and "
        "scored on the fourth (four folds); fractions are pooled over the held-out runs "
        "with their standard deviation over folds, the concordance is the mean over folds.",
    ]
    for title, presets, suffix, early_step in TASKS:
        dirs = [Path(args.out) / directory for directory in presets.values()]
        for preset, out in zip(presets, dirs, strict=True):
            if not args.table_only:
                resume = (out / "sweep.json").exists()
                sweep_preset(preset, None, out_dir=out, resume=resume, progress=False)
        out = dirs[0]
        text = warn(dirs, out / "warning", early_step=early_step)
        summary = pd.read_csv(out / "warning" / "summary.csv")
        runs = pd.read_csv(out / "warning" / "runs.csv")
        axes = ["train_size" if runs.train_size.notna().any() else "train_fraction"]
        axes += ["weight_decay", "learning_rate"] + (
            ["budget"] if runs.budget.nunique() > 1 else []
        )
        for name in ("warning", "early"):
            target = Path(args.figures) / f"{name}-{suffix}.png"
            shutil.copyfile(out / "warning" / f"{name}.png", target)
        sections += [
            "",
            f"## {title} ({', '.join(f'`{p}`' for p in presets)})",
            "",
            text.split("\n\n")[0] + ".",
            "",
            kinds_table(runs, axes),
            "",
            markdown(summary),
            "",
            f"![alarms](figures/warning-{suffix}.png)",
            f"![early values](figures/early-{suffix}.png)",
        ]
    atomic_write_bytes(Path(args.doc), ("\n".join(sections) + "\n").encode())
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    gj_flags.use_recommended_cpu_flags()
    main()
