"""A run's learning curves, from the store to the figure (no Streamlit here: usable from a
notebook too): the per-epoch table (:func:`epoch_table`, infinities as gaps), its x axis
(:func:`curve_table`: epoch, global step or wall-clock time) and the Plotly figures.

Curves read like TensorBoard's: an exponential moving average (``smoothing`` in [0, 1), the
same debiased EMA as TensorBoard, so a constant curve stays exactly constant) drawn over the
raw points in faint markers; train and validation differ by colour (a light and a dark shade
of the run's hue) as well as by dash; optional log scale; automatic ticks that stay readable
at any length.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import colorbrewer
from plotly.subplots import make_subplots

from services.training.store import Run, RunStore

def epoch_table(store: RunStore, run_id: str) -> pd.DataFrame:
    """The run's per-epoch table as the monitor shows it: infinities are missing values."""
    return without_non_finite(store.epoch_table(run_id))


def to_datetimes(seconds: pd.Series) -> pd.Series:
    """Times in seconds since 1970 as datetimes; a time pandas cannot represent (infinite, 1e300)
    becomes NaT instead of an error."""
    return pd.to_datetime(pd.to_numeric(seconds, errors="coerce"), unit="s", errors="coerce")


def without_non_finite(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with infinities in numeric columns replaced by NaN (shown as missing)."""
    numeric = frame.select_dtypes("number").columns
    if len(numeric):
        frame = frame.copy()
        frame[numeric] = frame[numeric].replace([np.inf, -np.inf], np.nan)
    return frame


X_AXES = ("epoch", "step", "wall-clock")


def curve_table(store: RunStore, run: Run, x_axis: str = "epoch", table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The run's epoch table (``table`` when the caller already read it) with an ``x`` column:
    epoch number (1-based), global step at the end of the epoch, or the wall-clock time the epoch ended."""
    table = epoch_table(store, run.id) if table is None else table
    if table.empty:
        return pd.DataFrame(columns=["epoch", "x"])
    table = table.copy()
    if x_axis == "step":
        table["x"] = (table["epoch"] + 1) * (run.steps_per_epoch or 1)
    elif x_axis == "wall-clock":
        frame = store.metrics(run.id)
        ended = frame[frame.step.isna()].groupby("epoch")["time"].max()
        table["x"] = to_datetimes(table["epoch"].map(ended))
    else:
        table["x"] = table["epoch"] + 1
    return table


PAIRS = [(colorbrewer.Paired[i], colorbrewer.Paired[i + 1]) for i in range(0, 12, 2)]
"""(train, validation) colours per run: light and dark shades of one hue."""
X_TITLES = {"epoch": "epoch", "step": "step", "wall-clock": "time"}
WHOLE_TICKS = 12
"""A whole-number x axis spanning fewer values than this gets one tick per value."""


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


def _axes(figure, x_axis: str, log_y: bool, xs=()) -> None:
    """Axis titles and ticks; on a whole-number axis (epoch, step) spanning fewer than
    :data:`WHOLE_TICKS` values, one tick per value (else Plotly puts ticks between whole
    numbers, which the integer format labels "1 1 1 2 2 ...")."""
    ticks = {} if x_axis == "wall-clock" else {"tickformat": ",d"}
    values = pd.to_numeric(pd.Series(list(xs), dtype=object), errors="coerce").dropna()
    if ticks and len(values) and values.max() - values.min() < WHOLE_TICKS:
        ticks["dtick"] = 1
    figure.update_xaxes(title_text=X_TITLES.get(x_axis, x_axis), nticks=12, **ticks)
    if log_y:
        figure.update_yaxes(type="log")


def curves_figure(tables: dict[str, pd.DataFrame], *, smoothing: float = 0.0, log_y: bool = False,
                  x_axis: str = "epoch") -> go.Figure:
    """Loss and accuracy of several runs; ``tables`` maps a run label to its curve table (columns
    ``x`` (else ``epoch``), loss, accuracy, val_loss, val_accuracy...)."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    xs = []
    for number, (label, table) in enumerate(tables.items()):
        train_colour, val_colour = _pair(number)
        x = table["x"] if "x" in table else table["epoch"] + 1
        xs.extend(x)
        for column, metric in enumerate(("loss", "accuracy"), start=1):
            for prefix, dash, part, colour in (("", "dash", "train", train_colour), ("val_", "solid", "val", val_colour)):
                name = prefix + metric
                if name not in table or table[name].isna().all():
                    continue
                _add_curve(figure, x, table[name], name=f"{label} · {part}", colour=colour, dash=dash, group=label,
                           smoothing=smoothing, show_legend=column == 1, row=1, col=column)
    _axes(figure, x_axis, log_y, xs)
    figure.update_layout(height=360, margin={"t": 40, "b": 10, "l": 10, "r": 10},
                         legend={"orientation": "h", "y": -0.25})
    return figure


def batch_loss_figure(frame: pd.DataFrame, label: str, *, smoothing: float = 0.0, log_y: bool = False) -> go.Figure:
    """The logged per-batch training loss of one run against the global step."""
    figure = make_subplots(rows=1, cols=1)
    _add_curve(figure, frame["step"], frame["value"], name=label, colour=_pair(0)[1], dash="solid", group=label,
               smoothing=smoothing, show_legend=False, row=1, col=1)
    _axes(figure, "step", log_y, frame["step"])
    figure.update_layout(height=260, margin={"t": 30, "b": 10, "l": 10, "r": 10},
                         title=f"batch loss · {label}", yaxis_title="loss")
    return figure
