"""What a figure shows, apart from how it is drawn: `FigureSpec` (panels of lines, bands
and heat-map cells), built by pure functions from data, drawn as PNG by
`grokjax.plots.to_matplotlib` and as HTML by `grokjax.report.views.to_plotly`. A metric
of `grokjax.problem.metrics` with a `panel` is drawn there, by its `label`, in the
palette's colour of its position. Numpy only: no matplotlib or plotly here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from grokjax.problem.metrics import METRICS, PANELS

# The one palette (tab10's order): curves take it by position, train first (blue), test
# second (red). Phases have their own, by name.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
PALETTE += ("#8c564b", "#17becf", "#e377c2", "#7f7f7f", "#bcbd22")
REFERENCE_COLOUR = "#222222"  # a dashed reference curve drawn with a panel's own
PHASE_COLOURS = dict(comprehension="#2ca02c", grokking="#ff7f0e", memorisation="#d62728")
PHASE_COLOURS["confusion"] = "#7f7f7f"
# Shaded bands (around a median; a Kaplan-Meier curve's S -+ 1.96 SE), with legend entries.
BAND_ALPHA = {"range": 0.12, "quartiles": 0.3, "ci": 0.1}
BAND_NAMES = dict(quartiles="quartiles (q25-q75)", range="range (min-max)")
BAND_NAMES["ci"] = "95% band (S -+ 1.96 SE)"
# plotly's dash names -> matplotlib's; matplotlib's markers -> plotly's symbols.
LINE_DASHES = {"solid": "-", "dash": "--", "dashdot": "-.", "dot": ":"}
MARKERS = {"o": "circle", "s": "square", "^": "triangle-up", "D": "diamond"}
MARKERS |= {"v": "triangle-down", "P": "cross", "X": "x", "*": "star", "|": "line-ns-open"}
# Curves a panel draws besides its own metrics (median only, dashed): metric -> label.
REFERENCES = {
    "accuracy": {"smoothed_test_acc": "smoothed test (median)"},
    "progress": {"test_loss": "test loss (median)"},
}


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def number_text(value: float) -> str:
    """A tick label: plain for 0.01 <= |v| < 1e5, else mantissa-e-exponent, never an SI
    prefix ("100u").

    >>> [number_text(v) for v in (0.0001, 0.0002, 0.05, 1.0, 600, 20000, 1e6)]
    ['1e-4', '2e-4', '0.05', '1', '600', '20000', '1e6']
    """
    v = float(value)
    if v == 0 or 0.01 <= abs(v) < 1e5:
        return f"{v:.6g}"
    exponent = int(np.floor(np.log10(abs(v))))
    mantissa = f"{v / 10.0**exponent:.3g}"
    if mantissa in ("10", "-10"):  # 9.999e-5 rounds up
        mantissa, exponent = mantissa[:-1], exponent + 1
    return f"{mantissa}e{exponent}"


def log_ticks(low: float, high: float) -> list[float]:
    """Major ticks of a log axis over [low, high]: 1-2-5 in each decade (..., 20, 50,
    100, 200, 500, ...) up to three decades, one per decade beyond, one per few decades
    past ten; at least two ticks where the range allows.

    >>> log_ticks(10, 600)
    [10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
    """
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high):
        return []
    first, last = int(np.floor(np.log10(low))), int(np.ceil(np.log10(high)))
    decades = np.log10(high / low)
    every = max(1, int(np.ceil(decades / 10)))
    for subs in ((1, 2, 5) if decades <= 3 else (1,), (1, 2, 3, 5), range(1, 10)):
        ticks = [
            float(f"{s}e{d}")
            for d in range(first, last + 1)
            if (d - first) % every == 0
            for s in subs
            if low * (1 - 1e-9) <= s * 10.0**d <= high * (1 + 1e-9)
        ]
        if len(ticks) >= 2:
            return ticks
    return sorted({float(f"{low:.2g}"), float(f"{high:.2g}")})  # within a 1-2-3-5 step


def nice_range(low: float, high: float) -> tuple[float, float]:
    """[low, high] widened to the 1-2-5 values around it, for a log value axis.

    >>> nice_range(1.04e-4, 6.6)
    (0.0001, 10.0)
    """
    d_low, d_high = np.floor(np.log10(low)), np.floor(np.log10(high))
    below = [s * 10.0**d for d in (d_low - 1, d_low) for s in (1, 2, 5) if s * 10.0**d <= low]
    above = [
        s * 10.0**d for d in (d_high, d_high + 1) for s in (1, 2, 5, 10) if s * 10.0**d >= high
    ]
    return float(f"{max(below):.3g}"), float(f"{min(above):.3g}")


def finite_range(*arrays, positive: bool = False) -> tuple[float, float] | None:
    """(min, max) of the finite (and positive, if asked) values, or None."""
    values = np.concatenate([np.asarray(a, float).ravel() for a in arrays] or [np.zeros(0)])
    values = values[np.isfinite(values) & ((values > 0) if positive else True)]
    return (float(values.min()), float(values.max())) if values.size else None


def log_floor(*values) -> float:
    """Where a log axis draws values <= 0: the smallest positive finite value among
    `values` (the lowest value on the axis anyway), or float32's smallest normal number
    when none is positive."""
    found = finite_range(*values, positive=True)
    return found[0] if found else float(np.finfo(np.float32).tiny)


# The description.


class Line(NamedTuple):
    x: np.ndarray
    y: np.ndarray
    label: str  # "": no legend entry
    colour: str
    dash: str = "solid"  # a key of LINE_DASHES, or "" for markers only
    marker: str = ""  # a key of MARKERS
    hidden: bool = False  # interactive only, shown from its legend entry (a seed)
    group: str = ""  # lines that share one legend entry (default: the label)
    step: bool = False  # constant until the next x (a Kaplan-Meier curve)
    outline: str = ""  # a wider line of this colour beneath, visible on any background


class Band(NamedTuple):
    x: np.ndarray
    low: np.ndarray
    high: np.ndarray
    colour: str
    kind: str  # a key of BAND_NAMES
    step: bool = False


class Grid(NamedTuple):
    """Heat-map cells: z[j, i] centred on (x[i], y[j]), NaN blank. Categorical when
    `names` is given (z indexes `names` and the colours `colours`), else a colour map
    named `colours` over `z_range`."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    colours: tuple[str, ...] | str
    names: tuple[str, ...] = ()
    z_range: tuple[float, float] | None = None
    z_title: str = ""
    text: list | None = None  # [y][x] written in each cell
    hover: list | None = None  # [y][x] interactive only


class Panel(NamedTuple):
    title: str
    y_title: str
    lines: tuple[Line, ...]
    bands: tuple[Band, ...] = ()
    x_title: str = "step"
    log_x: bool = True
    log_y: bool = False
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None
    marks: tuple[float, ...] = ()  # dotted vertical lines (members that diverged)
    mark_label: str = ""
    note: str = ""
    hlines: tuple[float, ...] = ()  # dotted horizontal lines
    grid: Grid | None = None
    x_labels: tuple[str, ...] = ()  # categorical axis: these at 0, 1, ...
    y_labels: tuple[str, ...] = ()
    legend: str = ""  # where: "" (best), "below", "right" or "none"


class FigureSpec(NamedTuple):
    """Panels side by side, sharing their x axis when all are log-step panels."""

    title: str
    panels: tuple[Panel, ...]


def y_extent(panel: Panel, positive: bool) -> tuple[float, float] | None:
    """The range of the values shown; on a log axis (`positive`) widened by `nice_range`."""
    shown = [ln.y for ln in panel.lines if not ln.hidden]
    bounds = [b.low for b in panel.bands] + [b.high for b in panel.bands]
    found = finite_range(*shown, *bounds, positive=positive)
    return nice_range(*found) if positive and found else found


# Builders.


def quantiles(values_ME: np.ndarray) -> np.ndarray:
    """[5, E]: min, q25, median, q75, max over members with a finite value (NaN where none)."""
    values_ME = np.where(np.isfinite(values_ME), values_ME, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
        return np.nanquantile(values_ME, [0.0, 0.25, 0.5, 0.75, 1.0], axis=0)


def banded(x, values_ME, label: str, colour: str, dash: str = "solid", ranges: bool = True):
    """The median line and its quartile (and min-max) bands: (lines, bands)."""
    q = quantiles(np.asarray(values_ME, float))
    bands = [Band(x, q[1], q[3], colour, "quartiles")]
    if ranges:
        bands.insert(0, Band(x, q[0], q[4], colour, "range"))
    return [Line(x, q[2], f"{label} (median)", colour, dash)], bands


def panel_metrics(name: str, histories: Mapping) -> list[str]:
    """The metrics of the table drawn in panel `name` that `histories` holds."""
    return [k for k, m in METRICS.items() if m.panel == name and k in histories]


def ensemble_panel(
    name: str,
    steps_E: np.ndarray,
    histories: Mapping[str, np.ndarray],
    diverged_steps: Sequence[int] = (),
    seeds: Sequence[int] = (),
    note: str = "",
) -> Panel | None:
    """PANELS[name] of a run: each metric of that panel (METRICS) as median with quartile
    and min-max bands over members against step (log axis, step 0 left out), plus the
    panel's REFERENCES; None when the run recorded none of its metrics. `histories` maps
    metric -> [members, evaluations], NaN where a member has no value (from its
    divergence on; `diverged_steps` are marked). On a log-y panel values <= 0 (float32
    cross-entropy rounds to 0) are drawn at `log_floor` with a marker where they fall;
    `seeds` adds each member's curve, hidden (interactive figures only)."""
    metrics = panel_metrics(name, histories)
    if not metrics:
        return None
    spec = PANELS[name]
    keep = np.asarray(steps_E) > 0
    x = np.asarray(steps_E)[keep]
    raw = {k: np.asarray(histories[k], float)[:, keep] for k in metrics}
    floor = log_floor(*raw.values()) if spec.log_y else None
    lines, markers, bands, seed_lines = [], [], [], []
    for i, key in enumerate(metrics):
        label, values = METRICS[key].label, raw[key]
        if floor is not None:
            at_zero = np.isfinite(values) & (values <= 0)
            values = np.where(at_zero, floor, values)
            hit = at_zero.any(axis=0)
            if hit.any():
                text = f"{label}: 0 drawn at floor {floor:.3g}"
                floors = np.full(hit.sum(), floor)
                markers.append(Line(x[hit], floors, text, colour(i), "", marker="v"))
        median, band = banded(x, values, label, colour(i))
        lines, bands = lines + median, bands + band
        for m, seed in enumerate(list(seeds)[: values.shape[0]]):
            seed_lines.append(Line(x, values[m], f"seed {seed}", colour(i), hidden=True))
    for key, label in REFERENCES.get(name, {}).items():
        if key in histories:
            y = quantiles(np.asarray(histories[key], float)[:, keep])[2]
            lines.append(Line(x, y, label, REFERENCE_COLOUR, "dash"))
    n = len(diverged_steps)
    if not any(np.isfinite(v).any() for v in raw.values()):
        note = "\n".join(filter(None, [note, "no finite values: every member diverged"]))
    panel = Panel(spec.title, spec.y_title, tuple(lines + markers + seed_lines), tuple(bands))
    return panel._replace(
        log_y=spec.log_y,
        x_range=(float(x.min()), float(x.max())) if x.size > 1 else None,
        y_range=(-0.02, 1.02) if name == "accuracy" else None,
        marks=tuple(sorted(max(int(s), 1) for s in diverged_steps)),
        mark_label=f"a member diverged ({n} in all)" if n else "",
        note=note,
    )


def ensemble_title(histories: Mapping[str, np.ndarray], title: str) -> str:
    n = next(iter(histories.values())).shape[0]
    stats = f"{n} seeds: median, quartiles, range"
    return f"{title} ({stats})" if title else stats


def ageing_spec(curves: Mapping[int, Mapping[str, np.ndarray]], title: str = "") -> FigureSpec:
    """MSD (log-log) and overlap C (log x) against tau = t - t_w, one line per t_w (young
    to old along the palette); tau = 0 is left out of the log axis. `curves` maps t_w to
    {"tau", "msd", "overlap"}, sorted by tau."""
    panels = []
    for key, panel_title, y_title, log_y in (
        ("msd", "displacement", "MSD = |theta(t) - theta(t_w)|^2 / N", True),
        ("overlap", "overlap", "C = cos(theta(t_w), theta(t))", False),
    ):
        lines = []
        for i, (t_w, c) in enumerate(curves.items()):
            tau = np.asarray(c["tau"], float)
            if key in c:
                y = np.asarray(c[key], float)[tau > 0]
                lines.append(Line(tau[tau > 0], y, f"t_w = {t_w}", colour(i)))
        x = finite_range(*[ln.x for ln in lines], positive=True)
        panels.append(
            Panel(panel_title, y_title, tuple(lines), (), "tau = t - t_w", log_y=log_y, x_range=x)
        )
    return FigureSpec(title, tuple(panels))


def comparison_spec(arms: Mapping[str, Mapping], title: str) -> FigureSpec:
    """Accuracies (train dotted, test solid) and weight norm against step (step 0 left
    out), one colour per arm, median and quartile band over seeds. `arms` maps a name to
    {"steps": [E], "train_acc", "test_acc", "weight_norm": [3, E] (quartiles and median
    over seeds, NaN where none has a value), "n_seeds", optionally "area": the grokking
    area as legend text} (`grokjax.host.compare.comparison_curves`)."""
    acc, norm, xs = [], [], []
    for i, (name, arm) in enumerate(arms.items()):
        steps = np.asarray(arm["steps"])
        keep = steps > 0
        x = steps[keep]
        xs.append(x)
        for metric, dash, target in (
            ("train_acc", "dot", acc),
            ("test_acc", "solid", acc),
            ("weight_norm", "solid", norm),
        ):
            if metric not in arm:
                continue
            lo, med, hi = np.asarray(arm[metric], float)[:, keep]
            label = name if metric == "weight_norm" else f"{name} {metric[:-4]}"
            if metric == "test_acc" and arm.get("area"):
                label += f" (area {arm['area']} decades)"
            target.append(
                (Line(x, med, label, colour(i), dash), Band(x, lo, hi, colour(i), "quartiles"))
            )
    seeds = "/".join(str(n) for n in sorted({int(a["n_seeds"]) for a in arms.values()}))
    accuracy = (f"accuracy (median and quartiles over {seeds} seeds)", "accuracy", acc)
    drawn = ((*accuracy, (-0.02, 1.02)), ("weight norm", "global weight norm", norm, None))
    x_range = finite_range(*xs, positive=True)
    panels = tuple(
        Panel(
            t, y, tuple(p[0] for p in parts), tuple(p[1] for p in parts), x_range=x_range
        )._replace(y_range=yr)
        for t, y, parts, yr in drawn
    )
    return FigureSpec(title, panels)


# Kaplan-Meier curves: one dash and marker per curve; curves that coincide are drawn
# this far apart (in S) so that none hides another.
KM_DASHES = ("solid", "dash", "dashdot", "dot")
KM_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
COINCIDENT_OFFSET = 0.015


def _coincident_groups(curves: list[tuple[np.ndarray, np.ndarray]]) -> list[int]:
    """For each curve, the index of the first curve it coincides with (itself if none)."""
    first = []
    for i, (x, s) in enumerate(curves):
        same = (
            j
            for j in range(i)
            if first[j] == j
            and curves[j][0].shape == x.shape
            and np.array_equal(curves[j][0], x)
            and np.allclose(curves[j][1], s, rtol=0, atol=1e-12)
        )
        first.append(next(same, i))
    return first


def survival_spec(
    curves: Mapping[str, Mapping],
    title: str,
    x_title: str = "step",
    y_title: str = "fraction not yet reached",
) -> FigureSpec:
    """Kaplan-Meier step curves, one per group, from S = 1 at time 0, with a tick where
    subjects were censored and the band S -+ 1.96 SE (Greenwood). `curves` maps a label
    to `grokjax.stats.survival.survival_curve`'s dict; the legend gives each group's
    size and median (">" the last time when censored). Curves that coincide exactly
    are drawn `COINCIDENT_OFFSET` apart, the first at its true S, and say which they
    repeat."""
    steps = [
        (np.r_[0.0, np.asarray(c["time"], float)], np.r_[1.0, np.asarray(c["survival"], float)])
        for c in curves.values()
    ]
    first, labels = _coincident_groups(steps), list(curves)
    depth = [first[:i].count(first[i]) for i in range(len(first))]  # 0: a group's first
    lines, ticks, bands = [], [], []
    for i, c in enumerate(curves.values()):
        (x, s), offset = steps[i], -COINCIDENT_OFFSET * depth[i]
        med = f"{c['median']:g}" if c["median"] is not None else f">{x[-1]:g}"
        text = f"{labels[i]} (n={c['n']}, median {med})"
        if depth[i]:
            text += f"; same curve as {labels[first[i]]}, drawn {-offset:g} lower"
        dash, marker = KM_DASHES[i % len(KM_DASHES)], KM_MARKERS[i % len(KM_MARKERS)]
        lines.append(Line(x, s + offset, text, colour(i), dash, marker, step=True))
        se = np.r_[0.0, np.nan_to_num(np.asarray(c["std_err"], float), nan=0.0)]
        low, high = (np.clip(s + k * 1.96 * se, 0, 1) + offset for k in (-1, 1))
        bands.append(Band(x, low, high, colour(i), "ci", step=True))
        cut = np.r_[False, np.asarray(c["censored"]) > 0]
        ticks.append(Line(x[cut], s[cut] + offset, "", colour(i), "", "|"))
    low = -0.02 - COINCIDENT_OFFSET * max(depth, default=0)
    panel = Panel(title, y_title, tuple(lines + ticks), tuple(bands), x_title, log_x=False)
    return FigureSpec("", (panel._replace(y_range=(low, 1.02), hlines=(0.5,), legend="below"),))


def _levels(values: Sequence) -> tuple[list, list]:
    """(values, levels) of a heat map's axis: numbers sorted, anything else (optimizer
    names, 'full' batches) as text in order of first appearance."""
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        texts = [str(v) for v in values]
        return texts, list(dict.fromkeys(texts))
    return numbers, sorted(set(numbers))


def phase_spec(
    x_values: Sequence,
    y_values: Sequence,
    phases: Sequence[str],
    fractions: Sequence[float],
    title: str,
    *,
    categories: Sequence[str],
    x_title: str,
    y_title: str,
    colours: Sequence[str] = (),
    hover: Sequence[str] = (),
) -> FigureSpec:
    """A categorical heat map, one cell per (x, y) (one entry each in `x_values`,
    `y_values`, `phases`, `fractions` and `hover`), coloured by its phase and labelled
    with its fraction (of seeds in that phase); cells not given stay blank. A category
    of PHASE_COLOURS takes its colour there, others `colours` or the palette's."""
    (xv, xs), (yv, ys) = _levels(x_values), _levels(y_values)
    z = np.full((len(ys), len(xs)), np.nan)
    text = [["" for _ in xs] for _ in ys]
    tips = [["" for _ in xs] for _ in ys]
    for k, (x, y, phase, fraction) in enumerate(zip(xv, yv, phases, fractions, strict=True)):
        i, j = xs.index(x), ys.index(y)
        z[j, i] = list(categories).index(phase)
        text[j][i] = f"{fraction:.2f}"
        tips[j][i] = hover[k] if hover else ""
    given = list(colours) or [colour(k) for k in range(len(categories))]
    fills = tuple(PHASE_COLOURS.get(c, g) for c, g in zip(categories, given, strict=True))
    grid = Grid(np.arange(len(xs)), np.arange(len(ys)), z, fills, tuple(categories))
    grid = grid._replace(z_title="phase", text=text, hover=tips if hover else None)
    label = lambda v: f"{v:g}" if isinstance(v, float) else v  # noqa: E731
    panel = Panel(title, y_title, (), x_title=x_title, log_x=False, grid=grid, legend="right")
    labels = dict(x_labels=tuple(map(label, xs)), y_labels=tuple(map(label, ys)))
    return FigureSpec("", (panel._replace(**labels),))


def landscape_spec(
    x: np.ndarray,
    y: np.ndarray,
    relative_entropy: np.ndarray,
    equilibrium: tuple[Sequence[float], Sequence[float]] | None,
    trajectories: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    title: str = "",
    cmap: str = "viridis",
    z_title: str = "S / kT minus its maximum at that ln L",
) -> FigureSpec:
    """The entropy map over (ln L_train, test accuracy): `relative_entropy` [n_x, n_y] on
    the bin centres (NaN where unknown) coloured from its 5th percentile to 0, the
    equilibrium curve (x, y) as a dark line in a light outline (it reads on every colour
    of the map), and `trajectories` (name -> (x(t), y(t))) on top."""
    shown = np.asarray(relative_entropy, float)
    low = float(np.nanpercentile(shown, 5)) if np.isfinite(shown).any() else -1.0
    lines = [
        Line(np.asarray(tx), np.asarray(ty), name, colour(i + 1))
        for i, (name, (tx, ty)) in enumerate((trajectories or {}).items())
    ]
    if equilibrium is not None:
        eq = Line(*map(np.asarray, equilibrium), "equilibrium (max S at each loss)", "black")
        lines.insert(0, eq._replace(outline="white"))
    x, y = np.asarray(x, float), np.asarray(y, float)
    grid = Grid(x, y, shown.T, cmap, z_range=(low, 0.0), z_title=z_title)
    panel = Panel(title, "smoothed test accuracy", tuple(lines), (), "ln L_train", log_x=False)
    return FigureSpec("", (panel._replace(x_range=(x[0], x[-1]), y_range=(0, 1), grid=grid),))
