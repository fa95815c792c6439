"""report.html: one self-contained page of a run's, comparison's, sweep's or landscape's
views (plotly.js inlined, no network), for sharing or a paper's supplement. `grokjax
report DIR` writes it; so does every `grokjax run`, `compare`, `sweep` and `landscape`
at its end.
"""

from __future__ import annotations

import contextlib
import html
import json
from pathlib import Path

import plotly.io as pio
from plotly.offline import get_plotlyjs

from grokjax.host.live import run_error
from grokjax.host.lock import DirLock
from grokjax.host.rundata import RunData, RunDataError, kind_of, load_run
from grokjax.io import atomic_write_bytes
from grokjax.report.items import VIEWS
from grokjax.report.views import run_figures, summary_table

REPORT_FILE = "report.html"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } .state { padding: 0.1em 0.5em; border-radius: 0.3em; color: white; }
.running { background: #1f77b4; } .finished { background: #2ca02c; }
.interrupted { background: #ff7f0e; } .diverged { background: #d62728; }
.failed { background: #7f7f7f; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
td:first-child, th:first-child { text-align: left; } caption { text-align: left; color: #555; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { color: #555; } a { color: #1f5fa0; } li { margin: 0.2em 0; } .error { color: #d62728; }
"""


def run_facts(data: RunData) -> list[tuple[str, str]]:
    """The lines under a run's title: preset, seeds, budget, optimizer, task, state."""
    config = data.record.get("config", {})
    optim = config.get("optim", {}) if isinstance(config, dict) else {}
    task = config.get("data", {}) if isinstance(config, dict) else {}
    done = int(data.steps[-1]) if data.steps.size else 0
    budget = config.get("steps")
    return [
        ("preset", str(data.record.get("preset") or "-")),
        ("seeds", ", ".join(map(str, data.seeds)) or "-"),
        ("steps", f"{done:,} of {budget:,}" if isinstance(budget, int) else f"{done:,}"),
        ("optimizer", str(optim.get("name", "?"))),
        ("task", str(task.get("task", "?"))),
        ("state", data.state),
        *([("error", run_error(data.run_dir))] if data.state == "failed" else []),
    ]


def figure_divs(figures: dict) -> str:
    """Each figure as an HTML section (no plotly.js), its div id 'fig-<name>'."""
    return "".join(
        '<section class="figure">'
        + pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"fig-{name}")
        + "</section>"
        for name, fig in figures.items()
    )


def document(title: str, body: str, plotly_src: str | None = None) -> str:
    """A page of `body`: plotly.js inlined, or loaded from the URL `plotly_src`."""
    plotly = f" src='{plotly_src}'>" if plotly_src else f">{get_plotlyjs()}"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style><script{plotly}</script></head><body>{body}</body></html>"
    )


def report_html(data: RunData) -> str:
    """A run's report."""
    facts = "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in run_facts(data)
    )
    table = summary_table(data.summary) or "<p>No summary yet: the run has not finished.</p>"
    body = (
        f"<h1>{html.escape(data.title)} <span class='state {data.state}'>{data.state}</span></h1>"
        f"<dl>{facts}</dl>{figure_divs(run_figures(data))}<h2>Summary</h2>{table}"
        f"<script type='application/json' id='run-record'>"
        f"{html.escape(json.dumps(data.record.get('config', {})))}</script>"
    )
    return document(data.title, body)


def item_report_html(kind: str, directory: Path) -> str:
    """A comparison's, sweep's or landscape's report (`grokjax.report.items`)."""
    figures, table = VIEWS[kind](directory)
    title = f"{directory.name} ({kind})"
    return document(title, f"<h1>{html.escape(title)}</h1>{figure_divs(figures)}{table}")


def write_report(directory: Path, out: Path | None = None) -> Path:
    """Write the report.html of a run, comparison, sweep or landscape directory
    (atomically) and return its path."""
    directory = Path(directory)
    kind = kind_of(directory) if directory.is_dir() else None
    if kind is None:
        raise RunDataError(
            f"dir={str(directory)!r} is not a grokjax run, comparison, sweep or landscape "
            "directory (no config.json, comparison.json, sweep.json or landscape.json)"
        )
    page = report_html(load_run(directory)) if kind == "run" else item_report_html(kind, directory)
    path = Path(out) if out is not None else directory / REPORT_FILE
    if path.is_dir():  # --out DIR: the report goes inside it
        path = path / REPORT_FILE
    if not path.parent.is_dir():
        raise RunDataError(f"out={str(out)!r} is not allowed: {path.parent} is not a directory")
    # no report into a grokjax directory that another process is writing
    lock = DirLock(path.parent) if kind_of(path.parent) else contextlib.nullcontext()
    with lock:
        atomic_write_bytes(path, page.encode())
    return path
