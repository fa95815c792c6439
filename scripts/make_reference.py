"""Write docs/reference.md from grokjax's own tables, so the reference cannot drift.

    python scripts/make_reference.py           # rewrite docs/reference.md
    python scripts/make_reference.py --check   # exit 1 if docs/reference.md is stale

Sources: the config sections (walked from `grokjax.Config()` with `dataclasses.fields`:
a field whose value is itself a dataclass is a sub-section), their docstrings and
defaults, the field types of `grokjax.config.field_types()`, `grokjax.Hparams`,
`grokjax.LandscapeConfig`, the presets of `grokjax.presets`, the metric table
`grokjax.problem.metrics.METRICS` (with its figure panels `PANELS`), and the table of
output files below (tests/test_docs.py checks that a short run writes those files).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document the checkout this script sits in
REFERENCE = ROOT / "docs" / "reference.md"

# The files of a run directory: (name, when it is there, what it holds). `always`: every
# run writes it (tests/test_docs.py runs one and checks); otherwise the option that
# asks for it.
RUN_FILES: tuple[tuple[str, str, str], ...] = (
    (
        "config.json",
        "always",
        "the resolved config, hyperparameters per member, seeds, preset, jax version and "
        "backend, and the topology (devices, processes, members and their padding, member "
        "batch)",
    ),
    (
        "metrics.parquet",
        "always",
        "one row per member and evaluation step: `member`, `seed`, the hyperparameters, "
        "`step`, every metric of the table above, and `diverged`",
    ),
    (
        "summary.json",
        "always",
        "per member: memorisation and generalisation steps, grokking delay, grokking area, "
        "generalisation ratios, weight norm at generalisation, `diverged_step` and its reason, "
        "final metrics (`null` = censored); per ensemble: n, censored count, median, quartiles, "
        "range, diverged members",
    ),
    (
        "accuracy.png",
        "always",
        "train and test accuracy against step (log axis), seed median "
        "with quartile and min-max bands",
    ),
    ("loss.png", "always", "train and test loss, the same way"),
    ("weight_norm.png", "always", "the weight and last-layer norms, the same way"),
    ("live.jsonl", "always", "each chunk's evaluations as they come (what the dashboard follows)"),
    (
        "status.json",
        "always",
        "running / interrupted / failed (with the error) / finished / diverged",
    ),
    (
        ".grokjax.lock",
        "always",
        "the lock of the process writing the directory: pid, host, command",
    ),
    (
        "checkpoints/",
        "always",
        "orbax checkpoints of the ensemble state and the metrics so far, one per chunk, each "
        "with a manifest of SHA-256 checksums, the digest of its run and the evaluations it covers",
    ),
    (
        "report.html",
        "`grokjax run` (not `--no-report`), `grokjax report`",
        "the run's interactive views in one self-contained file",
    ),
    ("tensorboard/", "`--tensorboard`", "one TensorBoard event stream per member"),
)

# The files of the other commands' directories: (command, name, what it holds).
OTHER_FILES: tuple[tuple[str, str, str], ...] = (
    (
        "compare",
        "comparison.json",
        "per-seed generalisation step, grokking delay, weight norms; censored medians",
    ),
    ("compare", "comparison.png", "accuracies and weight norm against step, seed bands"),
    ("compare", "<preset>/", "one run directory per preset"),
    ("sweep", "sweep.json", "the sweep's settings (what `--resume` reads)"),
    (
        "sweep",
        "cells.csv",
        "per cell: censored medians and quartiles of the memorisation and generalisation "
        "steps, grokking delay and area, generalisation ratios; censored counts; phase and "
        "phase fractions",
    ),
    ("sweep", "seeds.parquet", "the same per seed"),
    ("sweep", "phases.png", "the phase diagram over two axes"),
    ("sweep", "survival.png", "Kaplan-Meier curves of the generalisation step"),
    ("sweep", "<cell>/", "one run directory per outer cell"),
    ("landscape", "landscape.json", "the landscape's settings (what `--resume` reads)"),
    ("landscape", "landscape.npz", "S/kT, visit histogram, bin centres, per-walker estimates"),
    ("landscape", "trajectories.npz", "walker positions"),
    (
        "landscape",
        "convergence.json",
        "per chunk: how much S, the walkers' spread and the equilibrium curve moved",
    ),
    (
        "landscape",
        "analysis.json",
        "equilibrium curve, entropy barrier, trajectory gaps, the convergence verdict",
    ),
    ("landscape", "landscape.png", "the heat map with the equilibrium curve"),
    ("warn", "summary.csv", "per indicator: lead, share warned, false alarms, concordance"),
    ("warn", "folds.csv", "the same per held-out seed"),
    ("warn", "alarms.csv", "every alarm on every run"),
    ("warn", "runs.csv", "the runs read and their onsets"),
    ("warn", "warning.png", "the alarms against the onsets"),
    ("warn", "early.png", "indicators at `--early-step` against the generalisation step"),
)

# When a metric is recorded, by its `Metric.source`.
RECORDED = {
    "evaluate": "always",
    "ageing": "with `eval.waiting_times`",
    "progress": "with `eval.progress_frequencies` > 0 (modular tasks)",
    "optimizer": "when the optimizer has it",
    "llc": "with `llc.every` > 0",
}

HEADER = """# grokjax reference

Generated by `python scripts/make_reference.py` from the code's own tables; do not edit
by hand (tests/test_docs.py fails when this file is stale). The README has the tour and
[guide.md](guide.md) the how-tos.
"""


def cell(text: object) -> str:
    """`text` fit for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def value(v: object) -> str:
    """A default as it reads in a table."""
    if isinstance(v, str):
        return f"`{v}`" if v else "`''`"
    if isinstance(v, float):
        if math.isinf(v):
            return "`inf`" if v > 0 else "`-inf`"
        return f"`{v:g}`"
    if isinstance(v, tuple):
        return "`()`" if not v else f"`{','.join(str(x) for x in v)}`"
    return f"`{v}`"


def doc(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip()


def table(head: tuple[str, ...], rows: list[tuple]) -> list[str]:
    from grokjax.io import markdown_table

    return markdown_table(head, ([cell(c) for c in row] for row in rows)).split("\n")


def _types() -> dict[str, str]:
    try:
        from grokjax.config import field_types

        return field_types()
    except ImportError:  # pragma: no cover (the config module moved)
        return {}


def _section_rows(section, prefix: str, types, nested):
    """Rows (path, type, default) of `section`'s leaf fields; sub-sections go to
    `nested` as (path, section)."""
    rows = []
    for f in dataclasses.fields(section):
        v = getattr(section, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(v):
            nested.append((path, v))
            continue
        kind = types.get(path) or (f.type if isinstance(f.type, str) else f.type.__name__)
        rows.append((f"`{path}`", f"`{kind}`", value(v)))
    return rows


def _tree(section, prefix: str, depth: int = 0) -> list[str]:
    """The section tree as a nested list: path, class, first docstring line."""
    lines = []
    for f in dataclasses.fields(section):
        v = getattr(section, f.name)
        if dataclasses.is_dataclass(v):
            path = f"{prefix}{f.name}"
            first = doc(type(v)).split("\n\n")[0]
            first = " ".join(first.split()).split(" (`")[0].split(":")[0].rstrip(".")
            if first[1:2].islower():
                first = first[:1].lower() + first[1:]
            lines.append(f"{'  ' * depth}- `{path}` (`{type(v).__name__}`): {first}")
            lines += _tree(v, f"{path}.", depth + 1)
    return lines


def config_section(gj) -> list[str]:
    types = _types()
    out = ["## Config fields", ""]
    out += [
        "A config is a tree of sections, each validated on its own. The dotted path is a",
        "field's canonical name (`--set optim.wand.force_cap=1.2e5`,",
        '`cfg.replace(**{"optim.wand.force_cap": 1.2e5})`, error messages).',
    ]
    out += [""]
    out += ["Sections:", ""]
    out += _tree(gj.Config(), "") + [""]
    pending = [("", gj.Config())]
    while pending:
        path, section = pending.pop(0)
        nested: list = []
        rows = _section_rows(section, f"{path}." if path else "", types, nested)
        title = f"`{path}`: `{type(section).__name__}`" if path else "`Config` (top level)"
        out += [f"### {title}", "", doc(type(section)), ""]
        out += table(("path", "type", "default"), rows) + [""]
        pending = nested + pending
    return out


def hparams_section(gj) -> list[str]:
    hp = gj.Hparams()
    rows = [(f"`{name}`", value(float(v))) for name, v in hp._asdict().items()]
    return [
        "## Hparams: the swept numbers",
        "",
        doc(gj.Hparams),
        "",
        "Set them with `--set NAME=VALUE` like a field, or sweep them (`--grid`). Each may",
        "hold one value per member.",
        "",
        *table(("name", "default"), rows),
        "",
    ]


def landscape_section(gj) -> list[str]:
    cfg = gj.LandscapeConfig()
    types = {}
    rows = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if isinstance(v, gj.Config):
            shown = "a run `Config`: its fields as `model.<path>` (`--set model.data.modulus=31`)"
        else:
            shown = value(v)
        types[f.name] = kind
        rows.append((f"`{f.name}`", f"`{kind}`", shown))
    return [
        "## Landscape fields (`grokjax landscape`)",
        "",
        doc(gj.LandscapeConfig),
        "",
        *table(("field", "type", "default"), rows),
        "",
    ]


def optimizers_section() -> list[str]:
    from grokjax.optim import OPTIMIZERS

    out = ["## Optimizers (`optim.name`)", ""]
    out += ["From the optimizer table, `grokjax.optim.OPTIMIZERS`: one entry each.", ""]
    rows = [
        (f"`{name}`", o.doc, ", ".join(f"`{r}`" for r in o.readouts), "yes" if o.noisy else "")
        for name, o in OPTIMIZERS.items()
    ]
    return out + table(("name", "what it is", "readouts", "noisy"), rows) + [""]


def predictors_section() -> list[str]:
    from grokjax.stats.delay import FEATURES, PREDICTORS

    out = ["## Predictors of the generalisation step (`grokjax predict`)", ""]
    out += ["From `grokjax.stats.delay.PREDICTORS`, one entry each; the features they read:"]
    out += ["", ", ".join(f"`{f}`" for f in FEATURES) + ".", ""]
    rows = [(f"`{name}`", p.doc) for name, p in PREDICTORS.items()]
    return out + table(("name", "what it predicts from"), rows) + [""]


def presets_section() -> list[str]:
    presets = importlib.import_module("grokjax.presets")
    registry = getattr(presets, "REGISTRY", None) or {
        "run": presets.PRESETS,
        "landscape": presets.LANDSCAPES,
        "sweep": presets.SWEEPS,
    }
    total = sum(len(p) for p in registry.values())
    out = [
        "## Presets",
        "",
        f"{total} presets (`grokjax presets` lists them). Run presets serve `grokjax run` and",
        "`grokjax compare`; landscape presets `grokjax landscape`; sweep presets `grokjax sweep`.",
        "",
    ]
    for kind, table_ in registry.items():
        out += [f"### {kind.capitalize()} presets ({len(table_)})", ""]
        out += table(
            ("name", "description"), [(f"`{n}`", p.description) for n, p in table_.items()]
        )
        out += [""]
    return out


def metrics_section() -> list[str]:
    out = ["## Metrics recorded at every evaluation", ""]
    try:
        from grokjax.problem.metrics import METRICS, PANELS
    except ImportError:
        return out + [
            "(This version of grokjax has no metric table, `grokjax.problem.metrics.METRICS`.)",
            "",
        ]
    out += [
        "Each is one column of `metrics.parquet` and one array of the trainer's metrics",
        "(`[members, evaluations]`); the panel is the figure of the dashboard and",
        "report.html that draws it.",
        "",
    ]
    rows = []
    for name, metric in METRICS.items():
        panel = getattr(metric, "panel", None)
        title = PANELS[panel].title if panel in PANELS else (panel or "")
        source = getattr(metric, "source", "evaluate")
        rows.append((f"`{name}`", metric.doc, title, RECORDED.get(source, source)))
    return out + table(("metric", "what it is", "panel", "recorded"), rows) + [""]


def files_section() -> list[str]:
    out = ["## Run directories", "", "What `grokjax run` (and `run_ensemble`) writes:", ""]
    out += table(("file", "written", "contents"), [(f"`{n}`", w, c) for n, w, c in RUN_FILES])
    out += [
        "",
        "Every file is written atomically (a temporary file, then a rename); every JSON file",
        'is strict JSON (NaN is `null`, an infinity the string `"inf"`).',
        "",
        "The other commands' directories:",
        "",
    ]
    out += table(
        ("command", "file", "contents"),
        [(f"`grokjax {c}`", f"`{n}`", t) for c, n, t in OTHER_FILES],
    )
    return out + [""]


def render() -> str:
    import grokjax as gj

    parts = [HEADER]
    for section in (
        config_section(gj),
        hparams_section(gj),
        optimizers_section(),
        predictors_section(),
        presets_section(),
        metrics_section(),
        files_section(),
        landscape_section(gj),
    ):
        parts.append("\n".join(section))
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--out", type=Path, default=REFERENCE)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not args.out.is_file() or args.out.read_text() != text:
            print(f"{args.out} is stale: run python scripts/make_reference.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
