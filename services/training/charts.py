"""Plotly figures of training runs (no Streamlit here: usable from a notebook too).

Curves read like TensorBoard's: an exponential moving average (``smoothing`` in [0, 1), the
same debiased EMA as TensorBoard, so a constant curve stays exactly constant) drawn over the
raw points in faint markers; train and validation differ by colour (a light and a dark shade
of the run's hue) as well as by dash; optional log scale; the x axis by epoch, global step or
wall-clock time, with automatic ticks that stay readable at any length.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import colorbrewer
from plotly.subplots import make_subplots

PAIRS = [(colorbrewer.Paired[i], colorbrewer.Paired[i + 1]) for i in range(0, 12, 2)]
"""(train, validation) colours per run: light and dark shades of one hue."""
X_TITLES = {"epoch": "epoch", "step": "step", "wall-clock": "time"}


def smooth(values, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average; NaNs are skipped (kept as NaN)."""
    values = np.asarray(values, dtype=float)
    if weight <= 0 or len(values) == 0:
        return values
    out = np.full_like(values, np.nan)
    last, count = 0.0, 0
    for i, value in enumerate(values):
        if not np.isfinite(value):
            continue
        count += 1
        last = last * weight + (1 - weight) * value
        out[i] = last / (1 - weight ** count)
    return out


def _pair(number: int) -> tuple[str, str]:
    return PAIRS[number % len(PAIRS)]


def _add_curve(figure, x, y, *, name: str, colour: str, dash: str, group: str, smoothing: float,
               show_legend: bool, row: int, col: int) -> None:
    y = pd.to_numeric(pd.Series(y), errors="coerce").to_numpy(dtype=float, copy=True)
    y[~np.isfinite(y)] = np.nan  # a stored infinity is a gap, not an axis stretched to infinity
    if smoothing > 0:
        figure.add_trace(go.Scatter(x=x, y=y, mode="markers", marker={"color": colour, "size": 5}, opacity=0.3,
                                    name=f"{name} (raw)", legendgroup=group, showlegend=False, hoverinfo="skip"),
                         row=row, col=col)
    figure.add_trace(go.Scatter(x=x, y=smooth(y, smoothing), mode="lines" if smoothing > 0 else "lines+markers",
                                name=name, line={"color": colour, "dash": dash}, legendgroup=group,
                                showlegend=show_legend), row=row, col=col)


def _axes(figure, x_axis: str, log_y: bool) -> None:
    figure.update_xaxes(title_text=X_TITLES.get(x_axis, x_axis), nticks=12,
                        **({} if x_axis == "wall-clock" else {"tickformat": ",d"}))
    if log_y:
        figure.update_yaxes(type="log")


def curves_figure(tables: dict[str, pd.DataFrame], *, smoothing: float = 0.0, log_y: bool = False,
                  x_axis: str = "epoch") -> go.Figure:
    """Loss and accuracy of several runs; ``tables`` maps a run label to its curve table (columns
    ``x`` (else ``epoch``), loss, accuracy, val_loss, val_accuracy...)."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for number, (label, table) in enumerate(tables.items()):
        train_colour, val_colour = _pair(number)
        x = table["x"] if "x" in table else table["epoch"] + 1
        for column, metric in enumerate(("loss", "accuracy"), start=1):
            for prefix, dash, part, colour in (("", "dash", "train", train_colour), ("val_", "solid", "val", val_colour)):
                name = prefix + metric
                if name not in table or table[name].isna().all():
                    continue
                _add_curve(figure, x, table[name], name=f"{label} · {part}", colour=colour, dash=dash, group=label,
                           smoothing=smoothing, show_legend=column == 1, row=1, col=column)
    _axes(figure, x_axis, log_y)
    figure.update_layout(height=360, margin={"t": 40, "b": 10, "l": 10, "r": 10},
                         legend={"orientation": "h", "y": -0.25})
    return figure


def batch_loss_figure(frame: pd.DataFrame, label: str, *, smoothing: float = 0.0, log_y: bool = False) -> go.Figure:
    """The logged per-batch training loss of one run against the global step."""
    figure = make_subplots(rows=1, cols=1)
    _add_curve(figure, frame["step"], frame["value"], name=label, colour=_pair(0)[1], dash="solid", group=label,
               smoothing=smoothing, show_legend=False, row=1, col=1)
    _axes(figure, "step", log_y)
    figure.update_layout(height=260, margin={"t": 30, "b": 10, "l": 10, "r": 10},
                         title=f"batch loss · {label}", yaxis_title="loss")
    return figure


def confusion_figure(matrix: list[list[int]], classes: list[str], title: str) -> go.Figure:
    figure = go.Figure(go.Heatmap(z=matrix, x=classes, y=classes, colorscale="Blues", text=matrix,
                                  texttemplate="%{text}", showscale=False))
    figure.update_layout(height=420, title=title, xaxis_title="predicted", yaxis_title="true",
                         yaxis={"autorange": "reversed"}, margin={"t": 40, "b": 10, "l": 10, "r": 10})
    return figure


def reliability_figure(calibration: dict) -> go.Figure:
    """Reliability diagram of a run's calibration: accuracy against confidence per bin, before
    and after temperature scaling, with the diagonal of perfect calibration."""
    figure = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "#aaa"},
                                  name="perfectly calibrated"))
    for key, name in (("reliability_before", "before"), ("reliability_after", "after (temperature scaled)")):
        rows = [r for r in calibration.get(key) or [] if isinstance(r, dict) and r.get("count")]
        figure.add_trace(go.Scatter(x=[r["confidence"] for r in rows], y=[r["accuracy"] for r in rows],
                                    mode="lines+markers", name=name, text=[f"n = {r['count']}" for r in rows]))
    figure.update_layout(height=320, xaxis_title="confidence", yaxis_title="accuracy", margin={"t": 30},
                         xaxis_range=[0, 1], yaxis_range=[0, 1])
    return figure
