"""When does a run generalise? Predictors scored on held-out runs: docs/delay-prediction.md.

    python scripts/delay_results.py [--out runs] [--table-only]

Trains (or resumes) the sweep presets of the token MLP (`delay-mlp`, `delay-mlp-31`,
`delay-mlp-large-init`: 480 runs; `delay-mlp-llc`: 24 runs recording the LLC), the
paper transformer (`delay-transformer`, 8 runs),
sparse parity (`early-warning-parity`, 48 runs) and WanD without weight decay on the
paper transformer (`delay-wand`), then scores every predictor of `grokjax.stats.delay` on each
ensemble (`grokjax predict`), maps where the norm delay law's premise holds (the
weight norm falls from memorisation to generalisation), checks the early-warning
indicators under the new onset (`grokjax warn`), and writes the page and its figures.
Prints how long each part took.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from grokjax import xla_flags as gj_flags
from grokjax.host.predict import markdown, predict
from grokjax.host.sweep import sweep_preset
from grokjax.host.warn import load_runs, warn
from grokjax.io import atomic_write_bytes, markdown_table
from grokjax.stats.delay import auroc

# (title, figure suffix, sweep presets pooled)
ENSEMBLES = [
    ("token MLP, x+y mod 23 and 31, AdamW", "mlp",
     ("delay-mlp", "delay-mlp-31", "delay-mlp-large-init")),
    ("token MLP with the local learning coefficient, x+y mod 23, AdamW", "llc",
     ("delay-mlp-llc",)),
    ("paper transformer, x+y mod 47, AdamW", "transformer", ("delay-transformer",)),
    ("sparse parity n = 40, k = 3, SGD", "parity", ("early-warning-parity",)),
]  # fmt: skip
WAND = "delay-wand"


def regime_table(paths: list[Path]) -> pd.DataFrame:
    """Per init scale and weight decay: delayed runs, and the share whose weight norm and
    logit norm fall from memorisation to generalisation (the law's premise)."""
    rows = []
    for path in paths:
        for r in load_runs(path):
            if r.kind not in ("grokking", "no plateau"):
                continue
            i_m, i_g = np.searchsorted(r.steps, [r.memorisation, r.generalisation])
            v, logit = r.histories["weight_norm"], r.histories["logit_norm"]
            rows.append(
                {
                    "init_scale": r.hparams.get("init_scale", 1.0),
                    "weight_decay": r.hparams["weight_decay"],
                    "norm falls": v[i_g] < v[i_m],
                    "logit norm falls": logit[i_g] < logit[i_m],
                    "norm at m": v[i_m],
                    "norm at g": v[i_g],
                }
            )
    d = pd.DataFrame(rows)
    return (
        d.groupby(["init_scale", "weight_decay"])
        .agg(
            runs=("norm falls", "size"),
            norm_falls=("norm falls", "mean"),
            logit_falls=("logit norm falls", "mean"),
            norm_m=("norm at m", "median"),
            norm_g=("norm at g", "median"),
        )
        .reset_index()
    )


def table_md(frame: pd.DataFrame) -> str:
    def cell(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    rows = ([cell(v) for v in row] for row in frame.itertuples(index=False))
    return markdown_table(frame.columns, rows)


def law_by_regime(out: Path) -> pd.DataFrame:
    """The norm law's coverage and median error per init scale (held out by seed)."""
    p = pd.read_csv(out / "predictions.csv")
    runs = pd.read_csv(out / "runs.csv")[["run", "init_scale", "weight_decay"]]
    p = p[(p.split == "seed") & p.predictor.isin(["norm_law", "features"])]
    p = p[p.kind.isin(["grokking", "no plateau"])].merge(runs, on="run")
    p = p.assign(error=(p.predicted - p.generalisation).abs() / p.generalisation)
    return (
        p.groupby(["predictor", "when", "init_scale"])
        .agg(runs=("error", "size"), coverage=("predicted", lambda x: x.notna().mean()),
             median_error=("error", "median"))
        .reset_index()
    )  # fmt: skip


def auroc_by_directory(out: Path) -> pd.DataFrame:
    """The classifier's held-out AUROC (folds by seed) within each run directory, where
    the static settings (modulus, train fraction) are the same for every run."""
    p = pd.read_csv(out / "predictions.csv")
    p = p[(p.predictor == "classifier") & (p.split == "seed")]
    p = p.assign(directory=p.run.str.rsplit("#", n=1).str[0])
    rows = []
    for directory, d in p.groupby("directory"):
        label = d.generalisation.notna()
        rows.append(
            {
                "directory": directory,
                "memorised runs": len(d),
                "generalised": int(label.sum()),
                "auroc": auroc(d.p_generalise, label),
            }
        )
    return pd.DataFrame(rows)


def cell_floor(out: Path) -> str:
    """What seeds alone leave unexplained: each delayed run predicted by m plus the
    geometric mean delay of the other seeds' delayed runs in its own cell (an oracle that
    knows the cell's other outcomes), as the median relative error of g."""
    runs = pd.read_csv(out / "runs.csv")
    runs = runs[runs.kind.isin(["grokking", "no plateau"])]
    cell = runs.run.str.rsplit("#", n=1).str[0]
    keys = [cell] + [runs[c] for c in ("learning_rate", "weight_decay", "init_scale") if c in runs]
    errors = []
    for _, d in runs.groupby(keys):
        ln_delay = np.log(d.generalisation - d.memorisation).to_numpy()
        for k in range(len(d)):
            if len(d) < 2:
                continue
            g_hat = d.memorisation.iloc[k] + np.exp(np.delete(ln_delay, k).mean())
            errors.append(abs(g_hat - d.generalisation.iloc[k]) / d.generalisation.iloc[k])
    if not errors:
        return "No cell has two delayed runs: no floor."
    return (
        f"Seeds alone: predicting each delayed run from the other seeds of its own cell "
        f"(m + their geometric mean delay) gives a median error of {np.median(errors):.0%} "
        f"({len(errors)} runs)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs")
    parser.add_argument("--table-only", action="store_true", help="score; train nothing")
    parser.add_argument("--doc", default="docs/delay-prediction.md")
    parser.add_argument("--figures", default="docs/figures")
    args = parser.parse_args()
    root, clock = Path(args.out), {}
    presets = [p for _, _, ps in ENSEMBLES for p in ps] + [WAND]
    for preset in presets:
        start = time.perf_counter()
        if not args.table_only:
            out = root / preset
            sweep_preset(preset, None, out_dir=out, resume=(out / "sweep.json").exists(),
                         progress=False)  # fmt: skip
        clock[preset] = time.perf_counter() - start
    sections = [
        "# When does a run generalise? Predictions scored on held-out runs",
        "",
        "Made by `python scripts/delay_results.py`; do not edit by hand. Definitions: "
        "`grokjax.stats.delay` (predictors, scores) and `grokjax.stats.warning` (events, "
        "kinds). Every predictor is fitted on the training folds only; `seed` holds out "
        "each seed's runs in turn, `cell` each of four groups of hyperparameter cells. "
        "Errors are medians over the held-out delayed runs (kinds grokking and no plateau).",
    ]
    for title, suffix, names in ENSEMBLES:
        start = time.perf_counter()
        dirs = [root / name for name in names]
        out = dirs[0] / "prediction"
        text = predict(dirs, out)
        summary = pd.read_csv(out / "summary.csv")
        shutil.copyfile(out / "predicted.png", Path(args.figures) / f"predicted-{suffix}.png")
        clock[f"predict {suffix}"] = time.perf_counter() - start
        sections += [
            "",
            f"## {title} ({', '.join(f'`{n}`' for n in names)})",
            "",
            text.split("\n\n")[0] + ". " + cell_floor(out),
            "",
            markdown(summary),
            "",
            f"![predicted against observed](figures/predicted-{suffix}.png)",
        ]
        if suffix == "mlp":
            start = time.perf_counter()
            sections += [
                "",
                "### Where the norm law's premise holds",
                "",
                "Delayed runs per init scale and weight decay; the share whose weight norm "
                "(and mean logit norm) is lower at generalisation than at memorisation:",
                "",
                table_md(regime_table(dirs)),
                "",
                "The law and the feature regression per init scale (held out by seed):",
                "",
                table_md(law_by_regime(out)),
                "",
                "The classifier's AUROC within each run directory (one modulus and train "
                "fraction; held out by seed):",
                "",
                table_md(auroc_by_directory(out)),
            ]
            text = warn(dirs, dirs[0] / "warning").split("\n\nwrote")[0]
            sections += ["", "### Early-warning indicators on this ensemble", "", text]
            clock["warn mlp"] = time.perf_counter() - start
    start = time.perf_counter()
    wand = load_runs(root / WAND)
    kinds = pd.Series([r.kind for r in wand]).value_counts().to_dict()
    done = [r for r in wand if r.generalisation is not None]
    norms = [
        r.histories["weight_norm"][np.searchsorted(r.steps, [r.memorisation, r.generalisation])]
        for r in done
    ]
    g = [r.generalisation for r in done]
    said = (
        f"generalised at a median step of {np.median(g):.0f} ({min(g)}-{max(g)}), the weight "
        f"norm going from a median {np.median([n[0] for n in norms]):.1f} at memorisation to "
        f"{np.median([n[1] for n in norms]):.1f} at generalisation. "
        if g
        else "none generalised within the budget. "
    )
    sections += [
        "",
        f"## Out of the law's scope: WanD without weight decay (`{WAND}`)",
        "",
        f"{len(wand)} runs: {', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}; {said}"
        "With lambda = 0 the law's decay rate 2 kappa eta lambda is zero: it predicts that "
        "such a run never generalises, and `norm_law` makes no prediction for it.",
    ]
    clock["wand"] = time.perf_counter() - start
    sections += [
        "",
        "## Time",
        "",
        "Of the call that wrote this page (a finished sweep resumes in about a second; the "
        "first training times are in docs/results.md):",
        "",
        *(f"- {k}: {v / 60:.1f} min" for k, v in clock.items()),
    ]
    atomic_write_bytes(Path(args.doc), ("\n".join(sections) + "\n").encode())
    print("\n".join(f"{k}: {v:.0f} s" for k, v in clock.items()))
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    gj_flags.use_recommended_cpu_flags()
    main()
