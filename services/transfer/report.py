"""Exports of a comparison: CSV and JSON of the table, and a self-contained HTML report.

The HTML report needs nothing but a browser (for presenting to clinicians): inline CSS, charts
drawn as inline SVG, confusion matrices as shaded tables, Grad-CAM examples as embedded PNGs. No
script, no external file, every text escaped.
"""

from __future__ import annotations

import base64
import json
import math
import time
from html import escape

from services import provenance
from services.csv_files import csv_bytes
from services.metrics.calibration import calibration_text, reliability_svg
from services.metrics.honesty import CHECKPOINT_NOTE, leakage_badge
from services.transfer.results import (
    BOOK_REFERENCE, BOOK_REFERENCE_COLUMN, RunResult, label, results_frame,
)

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
PRIVATE_FIELDS = ("model_path",)
"""Fields kept out of exports (a server path is nobody's business outside the server)."""
PERCENT_COLUMNS = ("val_accuracy", "test_accuracy", "macro_f1", "cv_accuracy_mean", "cv_accuracy_std",
                   BOOK_REFERENCE_COLUMN)


EXAMPLE_TILES = 3


def example_tiles(split, count: int = EXAMPLE_TILES) -> list[str]:
    """Paths of up to ``count`` test tiles of a saved split (a frame with ``split``, ``label``,
    ``path``), one per class, for the report's Grad-CAM examples."""
    test_rows = split[split["split"] == "test"]
    return test_rows.groupby("label").head(1).path.tolist()[:count]


def to_csv(results: list[RunResult]) -> bytes:
    return csv_bytes(results_frame(results))


def to_json(results: list[RunResult]) -> bytes:
    """Everything measured, per run (table fields plus recall, confusion matrix and curves)."""
    payload = {"book_reference": {key: {"val_accuracy": value, "what": what}
                                  for key, (value, what) in BOOK_REFERENCE.items()},
               "runs": [{k: v for k, v in result.to_dict().items() if k not in PRIVATE_FIELDS} for result in results]}
    return json.dumps(payload, indent=1, default=str).encode()


def _cell(column: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if column in PERCENT_COLUMNS:
        return f"{value * 100:.1f} %"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return escape(str(value))


def table_html(results: list[RunResult]) -> str:
    frame = results_frame(results).drop(columns=["run_id"])
    header = "".join(
        f'<th class="book">{escape(c)}</th>' if c == BOOK_REFERENCE_COLUMN else f"<th>{escape(c)}</th>"
        for c in frame.columns)
    body = []
    for row in frame.to_dict("records"):
        cells = "".join(
            f'<td class="book">{_cell(c, v)}</td>' if c == BOOK_REFERENCE_COLUMN else f"<td>{_cell(c, v)}</td>"
            for c, v in row.items())
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="results"><thead><tr>{header}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def line_chart_svg(series: dict[str, list[float]], *, title: str, width: int = 520, height: int = 260) -> str:
    """Overlaid lines (one per name) against epochs 1..n, as an inline SVG."""
    values = [v for line in series.values() for v in line if v is not None and math.isfinite(v)]
    if not values:
        return f"<p>{escape(title)}: no data.</p>"
    low, high = min(values), max(values)
    high = high if high > low else low + 1.0
    longest = max(len(line) for line in series.values())
    left, right, top, bottom = 48, 12, 24, 30
    def x(epoch: int) -> float:
        return left + (width - left - right) * (epoch / max(1, longest - 1))
    def y(value: float) -> float:
        return top + (height - top - bottom) * (1 - (value - low) / (high - low))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="{left}" y="16" font-size="13">{escape(title)}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#888"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
             f'<text x="4" y="{y(high) + 4:.0f}" font-size="11">{high:.3g}</text>',
             f'<text x="4" y="{y(low) + 4:.0f}" font-size="11">{low:.3g}</text>',
             f'<text x="{width - right - 60}" y="{height - 8}" font-size="11">epoch 1..{longest}</text>']
    for index, (name, line) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        points = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in enumerate(line) if v is not None and math.isfinite(v))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{left + 8}" y="{top + 14 + 14 * index}" font-size="11" fill="{colour}">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def confusion_html(result: RunResult) -> str:
    """A confusion matrix (rows: true class) with cells shaded by their share of the row."""
    if not result.confusion:
        return ""
    names = result.class_names or [str(i) for i in range(len(result.confusion))]
    header = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for name, counts in zip(names, result.confusion):
        total = sum(counts) or 1
        cells = "".join(
            f'<td style="background: rgba(31,119,180,{count / total:.2f})">{count}</td>' for count in counts)
        rows.append(f"<tr><th>{escape(name)}</th>{cells}</tr>")
    return (f'<figure class="confusion"><figcaption>{escape(label(result))} (test split; rows true, '
            f'columns predicted)</figcaption><table><tr><th></th>{header}</tr>{"".join(rows)}</table></figure>')


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th { background: #f3f3f3; }
.book { background: #fff4d6; font-style: italic; }
.note { background: #fff4d6; padding: 6px 10px; border-left: 4px solid #e0a800; }
.synthetic { background: #fde2e2; padding: 6px 10px; border-left: 4px solid #c00; }
figure { display: inline-block; margin: 8px 16px 8px 0; vertical-align: top; }
figure img { max-width: 220px; image-rendering: pixelated; }
"""


def html_report(results: list[RunResult], *, title: str = "Transfer-learning comparison",
                dataset_note: str = "", gradcam_examples: list[tuple[str, bytes]] | None = None) -> str:
    """The whole comparison as one HTML document (no external resources)."""
    synthetic = any(r.synthetic for r in results)
    random_weights = any(r.weights == provenance.RANDOM_INIT for r in results)
    curves = {metric: {label(r): r.history.get(metric, []) for r in results if r.history.get(metric)}
              for metric in ("val_accuracy", "accuracy", "val_loss", "loss")}
    sections = [
        f"<h1>{escape(title)}</h1>",
        f"<p>Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. {escape(dataset_note)}</p>",
    ]
    if synthetic:
        sections.append('<p class="synthetic">These runs used the <b>synthetic demo data</b> '
                        "(procedurally generated, not real tissue): the numbers show the method works, "
                        "not how well it classifies real tiles.</p>")
    if random_weights:
        sections.append('<p class="synthetic">Rows with weights "random init" are an untrained-backbone '
                        "baseline, not ImageNet transfer learning.</p>")
    leaky = [r for r in results if r.leakage_source_images]
    if leaky:
        sections.append('<p class="synthetic">' + "<br>".join(
            f"<b>{escape(r.name)}: {escape(leakage_badge(r.leakage_source_images))}</b> of its split: its test "
            "tiles share source images with its training tiles, so its held-out numbers are optimistic."
            for r in leaky) + "</p>")
    sections += [
        "<h2>Results</h2>",
        f'<p class="note">The headline is the held-out test split: {escape(CHECKPOINT_NOTE)}. Intervals are '
        "95 %: Wilson for accuracy (n = test tiles), a bootstrap over source images for macro F1, Student-t "
        "over folds for cross-validation.</p>",
        f'<p class="note">The column "{escape(BOOK_REFERENCE_COLUMN)}" holds the numbers published in '
        "the book (Michelucci, <i>Advanced Applied Deep Learning</i>, ch. 8) on the real Kather 2016 "
        "tiles: cnn_v1 82.7 %, cnn_v2 74 %, vgg16_v4 + augmentation 91 % validation accuracy. They "
        "were not measured here.</p>",
        table_html(results),
        "<h2>Learning curves</h2>",
        "".join(line_chart_svg(series, title=metric) for metric, series in curves.items() if series),
        "<h2>Confusion matrices</h2>",
        "".join(confusion_html(r) for r in results),
        "<h2>Calibration</h2>",
        "".join(f"<figure><figcaption>{escape(label(r))}: {escape(calibration_text(r.calibration))}</figcaption>"
                f"{reliability_svg(r.calibration)}</figure>" if r.calibration else
                f"<p>{escape(label(r))}: not calibrated (no validation split).</p>" for r in results),
    ]
    if gradcam_examples:
        figures = "".join(f'<figure><img alt="{escape(caption)}" src="{_png_data_uri(png)}">'
                          f"<figcaption>{escape(caption)}</figcaption></figure>"
                          for caption, png in gradcam_examples)
        sections += ["<h2>Where the models looked (Grad-CAM)</h2>", figures]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")
