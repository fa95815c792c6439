"""The interactive views of one run (`run_figures`: one plotly figure per panel of
`grokjax.problem.metrics.PANELS` the run recorded, ageing included; `summary_table`), and
`to_plotly`, which draws a `grokjax.figures.FigureSpec` as `grokjax.plots` draws it as PNG.
Each seed is a trace hidden until its legend entry is clicked.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from grokjax.figures import (
    BAND_ALPHA,
    BAND_NAMES,
    MARKERS,
    FigureSpec,
    Grid,
    Line,
    Panel,
    ageing_spec,
    ensemble_panel,
    finite_range,
    log_ticks,
    number_text,
    quantiles,
    rgba,
    y_extent,
)
from grokjax.host.rundata import RunData
from grokjax.problem.metrics import PANELS

AGEING = re.compile(r"^(msd|overlap)@(\d+)$")
LAYOUT = dict(template="plotly_white", height=420, margin=dict(l=60, r=20, t=60, b=50))


def _axis(low_high, log: bool, title: str, labels: tuple[str, ...] = ()) -> dict:
    """A plotly axis: on a log axis 1-2-5 ticks written as numbers and the range given;
    never SI prefixes ("100u"): small numbers read 1e-4. `labels`: at 0, 1, ..."""
    axis = dict(title_text=title, exponentformat="e", showexponent="all")
    if labels:
        axis.update(tickvals=list(range(len(labels))), ticktext=list(labels))
    elif log:
        axis["type"] = "log"
        if low_high:
            ticks = log_ticks(*low_high)
            axis.update(tickvals=ticks, ticktext=[number_text(t) for t in ticks])
            if low_high[0] < low_high[1]:
                axis["range"] = list(np.log10(low_high))
    elif low_high and low_high[0] < low_high[1]:
        axis["range"] = list(low_high)
    return axis


def _heatmap(g: Grid, p: Panel) -> go.Heatmap:
    style = dict(colorscale=g.colours, colorbar=dict(title=g.z_title))
    if g.names:
        k = len(g.names)
        scale = [[(i + e) / k, c] for i, c in enumerate(g.colours) for e in (0, 1)]
        ticks = dict(tickvals=list(range(k)), ticktext=list(g.names))
        style = dict(
            colorscale=scale, zmin=-0.5, zmax=k - 0.5, colorbar=dict(**ticks, title=g.z_title)
        )
        style.update(xgap=2, ygap=2)
    else:
        style.update(zmin=g.z_range[0], zmax=g.z_range[1])
        tip = f"{p.x_title} %{{x:.3g}}, {p.y_title} %{{y:.3g}}: %{{z:.3g}}<extra></extra>"
        style.update(hovertemplate=tip)
    if g.text:
        style.update(text=g.text, texttemplate="%{text}")
    if g.hover:
        style.update(hovertext=g.hover, hoverinfo="text")
    return go.Heatmap(x=g.x, y=g.y, z=g.z, **style)


def _lines(ln: Line, legend: set[str]) -> list[go.Scatter]:
    """A line's traces (its outline first); lines that share a group share one entry."""
    group = ln.group or ln.label
    first = bool(ln.label) and group not in legend
    legend.add(group)
    line = dict(color=ln.colour, width=0.8 if ln.hidden else 2, shape="hv" if ln.step else "linear")
    if not ln.hidden:
        line["dash"] = ln.dash or "solid"
    mode = "+".join(m for m, on in (("lines", ln.dash), ("markers", ln.marker)) if on)
    marker = dict(color=ln.colour, symbol=MARKERS.get(ln.marker, ln.marker)) if ln.marker else None
    trace = go.Scatter(x=ln.x, y=ln.y, name=ln.label, legendgroup=group, showlegend=first)
    trace.update(mode=mode, line=line, marker=marker)
    if ln.hidden:
        trace.update(visible="legendonly", opacity=0.6)
    if not ln.outline:
        return [trace]
    halo = dict(color=ln.outline, width=5, shape=line["shape"])
    under = go.Scatter(x=ln.x, y=ln.y, mode="lines", line=halo, showlegend=False, hoverinfo="skip")
    return [under, trace]


def to_plotly(spec: FigureSpec) -> go.Figure:
    """Draw `spec`'s panels side by side, log-step panels on one matched x axis. A band's
    legend entry (quartiles, range) shows or hides every band of its kind; lines that
    share a group (a seed's curves) share one entry."""
    n = max(len(spec.panels), 1)
    titles = [p.title for p in spec.panels] if n > 1 else None
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles)
    legend: set[str] = set()
    for col, p in enumerate(spec.panels, 1):
        where = dict(row=1, col=col)
        if p.grid is not None:
            fig.add_trace(_heatmap(p.grid, p), **where)
        for b in p.bands:
            first = b.kind not in legend
            legend.add(b.kind)
            shape = "hv" if b.step else "linear"
            common = dict(x=b.x, mode="lines", line=dict(width=0, shape=shape), hoverinfo="skip")
            common.update(legendgroup=b.kind, name=BAND_NAMES[b.kind])
            fig.add_trace(go.Scatter(y=b.high, showlegend=False, **common), **where)
            fill = dict(fill="tonexty", fillcolor=rgba(b.colour, BAND_ALPHA[b.kind]))
            fig.add_trace(go.Scatter(y=b.low, showlegend=first, **fill, **common), **where)
        for ln in p.lines:
            for trace in _lines(ln, legend):
                fig.add_trace(trace, **where)
        x_range = p.x_range or finite_range(*[ln.x for ln in p.lines], positive=p.log_x)
        for step in p.marks:
            fig.add_vline(x=np.log10(step) if p.log_x else step, line_dash="dot", **where)
        for y in p.hlines:
            fig.add_hline(y=y, line_dash="dot", line_width=1, **where)
        y_range = p.y_range or y_extent(p, p.log_y)
        fig.update_xaxes(**_axis(x_range, p.log_x, p.x_title, p.x_labels), **where)
        fig.update_yaxes(**_axis(y_range, p.log_y, p.y_title, p.y_labels), **where)
        if p.note:
            fig.add_annotation(
                text=p.note.replace("\n", "<br>"),
                xref="x domain",
                yref="y domain",
                x=0.98,
                y=0.03,
                showarrow=False,
                xanchor="right",
                yanchor="bottom",
                **where,
            )
    if n > 1 and all(p.log_x for p in spec.panels):
        fig.update_xaxes(matches="x")
    title = spec.title or (spec.panels[0].title if n == 1 and spec.panels else "")
    hover = "closest" if any(p.grid for p in spec.panels) else "x unified"
    fig.update_layout(title=title, hovermode=hover, **LAYOUT)
    if any(p.legend == "below" for p in spec.panels):
        fig.update_layout(legend=dict(orientation="h", y=-0.2))
    return fig


def ageing_figure(data: RunData) -> go.Figure | None:
    """MSD (log-log) and overlap (log-x) against tau = t - t_w, one line per t_w (seed
    median); None if the run recorded no waiting times."""
    waiting = sorted({int(m.group(2)) for k in data.histories if (m := AGEING.match(k))})
    if not waiting:
        return None
    curves = {}
    for t_w in waiting:
        after = data.steps > t_w
        curves[t_w] = {"tau": data.steps[after] - t_w}
        for kind in ("msd", "overlap"):
            if f"{kind}@{t_w}" in data.histories:
                curves[t_w][kind] = quantiles(data.histories[f"{kind}@{t_w}"][:, after])[2]
    return to_plotly(ageing_spec(curves, PANELS["ageing"].title))


def run_figures(data: RunData) -> dict[str, go.Figure]:
    """A figure for every panel of `PANELS` whose metrics the run recorded, by name, in
    page order; every step panel has the run's step range."""
    figures = {}
    for name in PANELS:
        if name == "ageing":
            figure = ageing_figure(data)
        else:
            panel = ensemble_panel(name, data.steps, data.histories, seeds=data.seeds)
            figure = to_plotly(FigureSpec("", (panel,))) if panel else None
        if figure is not None:
            figures[name] = figure
    return figures


def stat_text(value) -> str:
    """A statistic in a table: "censored" for None or NaN (never a number)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "censored"
    if isinstance(value, float) and abs(value) < 10:
        return f"{value:.3g}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else html.escape(str(value))


def html_table(head, rows, caption: str = "", cls: str = "") -> str:
    """An HTML table of text cells (escaped by the caller) under a header row."""
    cells = lambda tag, row: "".join(f"<{tag}>{c}</{tag}>" for c in row)  # noqa: E731
    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
    caption = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="{cls}">{caption}<tr>{cells("th", head)}</tr>{body}</table>'


def summary_table(summary: Mapping | None) -> str:
    """summary.json's ensemble statistics as an HTML table; an empty string when there
    is no summary (a run in progress)."""
    if not summary or not isinstance(summary.get("ensemble"), Mapping):
        return ""
    rows = [
        [html.escape(name), stat_text(s.get("median"))]
        + [
            f"{stat_text(s.get(a))} - {stat_text(s.get(b))}"
            for a, b in (("q25", "q75"), ("min", "max"))
        ]
        + [f"{s.get('n_censored', 0)} / {s.get('n', '?')}"]
        for name, s in summary["ensemble"].items()
        if isinstance(s, Mapping) and "median" in s
    ]
    head = ("statistic", "median", "quartiles", "range", "censored")
    budget = summary.get("budget_steps")
    caption = f"over seeds; censored = not reached within the budget of {budget} steps"
    return html_table(head, rows, caption, "summary")
