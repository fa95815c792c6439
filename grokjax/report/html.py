"""report.html: one self-contained page of a run's views (plotly.js inlined, no network),
for sharing or a paper's supplement. `grokjax report RUN_DIR` writes it; so does every
`grokjax run` at its end.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import plotly.io as pio
from plotly.offline import get_plotlyjs

from grokjax.host.checkpoint import atomic_write_bytes
from grokjax.report.rundata import RunData, load_run
from grokjax.report.views import run_figures, summary_table

REPORT_FILE = "report.html"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } .state { padding: 0.1em 0.5em; border-radius: 0.3em; color: white; }
.running { background: #1f77b4; } .finished { background: #2ca02c; }
.interrupted { background: #ff7f0e; } .diverged { background: #d62728; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
td:first-child, th:first-child { text-align: left; } caption { text-align: left; color: #555; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { color: #555; }
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
    ]


def figure_divs(data: RunData) -> dict[str, str]:
    """Each figure as an HTML div (no plotly.js), keyed by figure name."""
    return {
        name: pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"fig-{name}")
        for name, fig in run_figures(data).items()
    }


def report_html(data: RunData) -> str:
    facts = "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in run_facts(data)
    )
    divs = "".join(f'<section class="figure">{d}</section>' for d in figure_divs(data).values())
    table = summary_table(data.summary) or "<p>No summary yet: the run has not finished.</p>"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(data.title)}</title><style>{STYLE}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(data.title)} <span class='state {data.state}'>{data.state}</span></h1>"
        f"<dl>{facts}</dl>{divs}<h2>Summary</h2>{table}"
        f"<script type='application/json' id='run-record'>"
        f"{html.escape(json.dumps(data.record.get('config', {})))}</script>"
        "</body></html>"
    )


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's report.html (atomically) and return its path."""
    run_dir = Path(run_dir)
    path = Path(out) if out is not None else run_dir / REPORT_FILE
    atomic_write_bytes(path, report_html(load_run(run_dir)).encode())
    return path
