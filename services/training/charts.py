"""Plotly figures of training runs (no Streamlit here: usable from a notebook too)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots


def curves_figure(tables: dict[str, pd.DataFrame]) -> go.Figure:
    """Loss and accuracy per epoch of several runs: train dashed, validation solid, one colour per run.

    ``tables`` maps a run label to its epoch table (columns epoch, loss, accuracy, val_loss, ...).
    """
    figure = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    palette = qualitative.Plotly
    for number, (label, table) in enumerate(tables.items()):
        colour = palette[number % len(palette)]
        for column, metric in enumerate(("loss", "accuracy"), start=1):
            for prefix, dash, part in (("", "dash", "train"), ("val_", "solid", "val")):
                name = prefix + metric
                if name not in table or table[name].isna().all():
                    continue
                figure.add_trace(go.Scatter(
                    x=table["epoch"] + 1, y=table[name], mode="lines+markers", name=f"{label} · {part}",
                    line={"color": colour, "dash": dash}, legendgroup=label,
                    showlegend=column == 1), row=1, col=column)
    figure.update_xaxes(title_text="epoch", dtick=1)
    figure.update_layout(height=360, margin={"t": 40, "b": 10, "l": 10, "r": 10},
                         legend={"orientation": "h", "y": -0.25})
    return figure


def batch_loss_figure(frame: pd.DataFrame, label: str) -> go.Figure:
    """The logged per-batch training loss of one run against the global step."""
    figure = go.Figure(go.Scatter(x=frame["step"], y=frame["value"], mode="lines", name=label))
    figure.update_layout(height=260, margin={"t": 30, "b": 10, "l": 10, "r": 10},
                         title=f"batch loss · {label}", xaxis_title="step", yaxis_title="loss")
    return figure


def confusion_figure(matrix: list[list[int]], classes: list[str], title: str) -> go.Figure:
    figure = go.Figure(go.Heatmap(z=matrix, x=classes, y=classes, colorscale="Blues", text=matrix,
                                  texttemplate="%{text}", showscale=False))
    figure.update_layout(height=420, title=title, xaxis_title="predicted", yaxis_title="true",
                         yaxis={"autorange": "reversed"}, margin={"t": 40, "b": 10, "l": 10, "r": 10})
    return figure
