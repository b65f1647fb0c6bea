"""Plotly figures of a training run's evaluation: the confusion matrix and the reliability
diagram (no Streamlit here: usable from a notebook too). The learning curves are
:mod:`services.training.curves`."""

from __future__ import annotations

import plotly.graph_objects as go

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
