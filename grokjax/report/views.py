"""The interactive views of one run, as plotly figures and an HTML table, from a `RunData`.

- accuracy and loss: train and test against step on a log axis, the seed median with
  quartile and min-max bands; each seed is a trace hidden until its legend entry is
  clicked (legend group "seeds");
- norms: the weight norm and the last layer's norm, the same way;
- ageing: MSD and overlap against the lag tau = t - t_w for each waiting time t_w
  (the seed median), when the run records them (`eval.waiting_times`);
- temperature: kT in force (WanD, SGLD) and the plain noise's sigma, and entropy:
  WanD's estimate S at the evaluated ln L_train, when the optimizer has them
  (`grokjax.optim.readouts`);
- summary: every ensemble statistic of summary.json, median (quartiles) and range, a
  censored value written "censored", never as a number.

Step 0 has no place on a log axis and is left out of the step plots.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from grokjax.report.rundata import RunData

COLOURS = {
    "train": "#1f77b4",
    "test": "#d62728",
    "weight": "#2ca02c",
    "last": "#9467bd",
    "kT": "#ff7f0e",
    "noise": "#8c564b",
    "entropy": "#17becf",
    "restricted": "#e377c2",
    "excluded": "#7f7f7f",
    "gini_e": "#bcbd22",
    "gini_u": "#8c564b",
    "share": "#17becf",
}
AGEING = re.compile(r"^(msd|overlap)@(\d+)$")


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _quantiles(values_ME: np.ndarray) -> dict[str, np.ndarray]:
    """Per evaluation, over members with a value: min, q25, median, q75, max (NaN where
    no member has one)."""
    out = {k: np.full(values_ME.shape[1], np.nan) for k in ("min", "q25", "median", "q75", "max")}
    for e in range(values_ME.shape[1]):
        column = values_ME[:, e]
        column = column[np.isfinite(column)]
        if column.size:
            out["min"][e], out["max"][e] = column.min(), column.max()
            out["q25"][e], out["median"][e], out["q75"][e] = np.quantile(column, [0.25, 0.5, 0.75])
    return out


def _band_traces(
    fig: go.Figure,
    x: np.ndarray,
    values_ME: np.ndarray,
    label: str,
    colour: str,
    dash: str = "solid",
    **where,
) -> None:
    q = _quantiles(values_ME)
    group = f"{label} bands"
    for lo, hi, alpha, part in (("min", "max", 0.12, "min-max"), ("q25", "q75", 0.3, "quartiles")):
        for y, fill in ((q[hi], {}), (q[lo], dict(fill="tonexty", fillcolor=_rgba(colour, alpha)))):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    line=dict(width=0),
                    legendgroup=group,
                    name=f"{label} {part}",
                    showlegend=False,
                    hoverinfo="skip",
                    **fill,
                ),
                **where,
            )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=q["median"],
            mode="lines",
            line=dict(color=colour, width=2, dash=dash),
            name=f"{label} (median)",
            legendgroup=group,
        ),
        **where,
    )


def _seed_traces(
    fig: go.Figure,
    x: np.ndarray,
    values_ME: np.ndarray,
    label: str,
    colour: str,
    seeds: list[int],
    first: bool,
) -> None:
    """One trace per seed, hidden until shown; a seed's curves share one legend entry."""
    for m, seed in enumerate(seeds[: values_ME.shape[0]]):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=values_ME[m],
                mode="lines",
                line=dict(color=colour, width=0.8),
                opacity=0.6,
                name=f"seed {seed}",
                hovertemplate=f"{label} seed {seed}: %{{y}}<extra></extra>",
                legendgroup=f"seed {seed}",
                showlegend=first,
                visible="legendonly",
            )
        )


def curves_figure(
    data: RunData,
    pairs: Mapping[str, tuple[str, str]],
    title: str,
    y_title: str,
    *,
    log_y: bool = False,
) -> go.Figure | None:
    """`pairs` label -> (metric, colour key) on one step axis (log); None if the run
    recorded none of the metrics."""
    present = {label: p for label, p in pairs.items() if p[0] in data.histories}
    if not present:
        return None
    keep = data.steps > 0
    x = data.steps[keep]
    fig = go.Figure()
    for label, (metric, colour) in present.items():
        _band_traces(fig, x, data.histories[metric][:, keep], label, COLOURS[colour])
    for i, (label, (metric, colour)) in enumerate(present.items()):
        values = data.histories[metric][:, keep]
        _seed_traces(fig, x, values, label, COLOURS[colour], data.seeds, first=i == 0)
    fig.update_layout(
        title=title,
        xaxis_title="step",
        yaxis_title=y_title,
        template="plotly_white",
        height=420,
        margin=dict(l=60, r=20, t=50, b=50),
        hovermode="x unified",
    )
    fig.update_xaxes(type="log")
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def ageing_figure(data: RunData) -> go.Figure | None:
    """MSD (log-log) and overlap (log-x) against tau = t - t_w, one line per t_w (seed
    median); None if the run recorded no waiting times."""
    waiting = sorted({int(m.group(2)) for k in data.histories if (m := AGEING.match(k))})
    if not waiting:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("displacement", "overlap"))
    n = len(waiting)
    for i, t_w in enumerate(waiting):
        after = data.steps > t_w
        tau = data.steps[after] - t_w
        colour = f"hsl({int(260 - 200 * i / max(n - 1, 1))},70%,45%)"
        for col, kind in ((1, "msd"), (2, "overlap")):
            name = f"{kind}@{t_w}"
            if name not in data.histories:
                continue
            median = _quantiles(data.histories[name][:, after])["median"]
            fig.add_trace(
                go.Scatter(
                    x=tau,
                    y=median,
                    mode="lines",
                    line=dict(color=colour),
                    name=f"t_w = {t_w}",
                    legendgroup=str(t_w),
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(type="log", title_text="tau = t - t_w")
    fig.update_yaxes(type="log", title_text="MSD", row=1, col=1)
    fig.update_yaxes(title_text="C = cos(theta(t_w), theta(t))", row=1, col=2)
    fig.update_layout(
        title="ageing (seed median)",
        template="plotly_white",
        height=420,
        margin=dict(l=60, r=20, t=70, b=50),
    )
    return fig


# name: (curves {label: (metric, colour)}, title, y-axis title, log y, metric that must be
# recorded for the figure to be drawn); "ageing" is drawn by `ageing_figure`.
CURVES: dict[str, tuple[dict, str, str, bool, str | None]] = {
    "accuracy": (
        {"train": ("train_acc", "train"), "test": ("test_acc", "test")},
        "accuracy",
        "accuracy",
        False,
        None,
    ),
    "loss": (
        {"train": ("train_loss", "train"), "test": ("test_loss", "test")},
        "loss",
        "loss",
        True,
        None,
    ),
    "norms": (
        {"weight norm": ("weight_norm", "weight"), "last-layer norm": ("last_layer_norm", "last")},
        "weight norms",
        "global L2 norm",
        False,
        None,
    ),
    "progress": (
        {
            "restricted loss (all data)": ("restricted_loss", "restricted"),
            "excluded loss (train)": ("excluded_loss", "excluded"),
            "test loss": ("test_loss", "test"),
        },
        "Fourier progress measures: restricted and excluded loss",
        "cross-entropy",
        True,
        "restricted_loss",
    ),
    "fourier": (
        {
            "Gini, embedding": ("gini_embed", "gini_e"),
            "Gini, unembedding": ("gini_unembed", "gini_u"),
            "key-frequency share": ("key_frequency_share", "share"),
        },
        "Fourier sparsity of the embedding and unembedding",
        "Gini / share",
        False,
        None,
    ),
    "ageing": ({}, "", "", False, None),
    "temperature": (
        {
            "kT in force": ("kT_in_force", "kT"),
            "kinetic kT <v^2>": ("kinetic_kT", "share"),
            "noise sigma": ("noise_in_force", "noise"),
        },
        "temperature and noise in force",
        "kT / sigma",
        False,
        None,
    ),
    "entropy": (
        {"S(ln L_train)": ("wand_entropy", "entropy")},
        "WanD's entropy estimate at the walker's ln L_train",
        "S",
        False,
        None,
    ),
}


def run_figures(data: RunData) -> dict[str, go.Figure]:
    """Every figure of `CURVES` the run's metrics allow, by name, in page order."""
    figures = {}
    for name, (pairs, title, y_title, log_y, needs) in CURVES.items():
        if name == "ageing":
            figure = ageing_figure(data)
        elif needs is None or needs in data.histories:
            figure = curves_figure(data, pairs, title, y_title, log_y=log_y)
        else:
            figure = None
        if figure is not None:
            figures[name] = figure
    return figures


def _stat(value) -> str:
    if value is None:
        return "censored"
    if isinstance(value, float) and abs(value) < 10:
        return f"{value:.3g}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else html.escape(str(value))


def summary_table(summary: Mapping | None) -> str:
    """summary.json's ensemble statistics as an HTML table; censored values read
    'censored'. An empty string when there is no summary (a run in progress)."""
    if not summary or not isinstance(summary.get("ensemble"), Mapping):
        return ""
    rows = []
    for name, s in summary["ensemble"].items():
        if not isinstance(s, Mapping) or "median" not in s:
            continue
        quartiles = f"{_stat(s.get('q25'))} - {_stat(s.get('q75'))}"
        spread = f"{_stat(s.get('min'))} - {_stat(s.get('max'))}"
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{_stat(s.get('median'))}</td>"
            f"<td>{quartiles}</td><td>{spread}</td>"
            f"<td>{s.get('n_censored', 0)} / {s.get('n', '?')}</td></tr>"
        )
    head = (
        "<tr><th>statistic</th><th>median</th><th>quartiles</th><th>range</th>"
        "<th>censored</th></tr>"
    )
    budget = summary.get("budget_steps")
    caption = f"over seeds; censored = not reached within the budget of {budget} steps"
    return (
        f'<table class="summary"><caption>{html.escape(caption)}</caption>'
        f"{head}{''.join(rows)}</table>"
    )
