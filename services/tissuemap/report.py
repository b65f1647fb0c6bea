"""The self-contained HTML report of a tissue map, for clinicians.

Thumbnail, map overlay and legend, area table, tumour-stroma ratio, the model card (training
data and split, validation metrics with per-class recall, date, software versions), the
intended use (research, not diagnosis) and the known limits. Images are embedded as data URIs;
every value that comes from a file, a run or the user is HTML-escaped.
"""

from __future__ import annotations

import base64
from html import escape

import numpy as np

from services.images import FAST_PNG, encode_png, resize_longest_side
from services.metrics.calibration import calibration_text, reliability_svg
from services.metrics.formatting import estimate_text, percent
from services.metrics.honesty import headline, held_out, leakage_badge, leakage_of, leakage_text, weak_model
from services.metrics.intervals import Estimate
from services.tissuemap import tsr
from services.tissuemap.maps import TissueMap
from services.tissuemap.outputs import SYNTHETIC_NOTE, class_colours

INTENDED_USE = ("For research and education only. This map is not a diagnosis and must not be used to make "
                "clinical decisions; a pathologist's reading of the slide is the only diagnostic statement.")
KNOWN_LIMITS = (
    "Stain and scanner differences: the model saw the staining, scanner and resolution of its training data "
    "only; other labs' slides can be classified worse without any warning sign.",
    "Classes the model never saw (e.g. necrosis types, other organs, artefacts, pen marks, folds) are forced "
    "into one of its classes.",
    "Each tile is classified on its own at a fixed field of view; borders between tissues are as coarse as "
    "the tile grid.",
    "Areas are the areas of the mapped cells (the tissue mask, holes filled, decides which cells are mapped); "
    "the tissue threshold changes them. The GeoJSON polygons and the label TIFF cover the same cells.",
    "Every tile is forced into one class; the model's held-out errors (model card) apply to every map.",
)
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #bbb; padding: 3px 8px; }
th { background: #f0f0f0; } .warn { background: #fde2e2; border-left: 4px solid #c00; padding: 6px 10px; }
.use { background: #fff6d6; border-left: 4px solid #d90; padding: 6px 10px; }
.swatch { display: inline-block; width: 1em; height: 1em; vertical-align: middle; margin-right: 4px; }
img { max-width: 100%; border: 1px solid #ccc; } .images { display: flex; gap: 1em; }
"""


def _data_uri(pixels: np.ndarray, longest: int = 900) -> str:
    small = resize_longest_side(pixels, longest) if max(pixels.shape[:2]) > longest else pixels
    return "data:image/png;base64," + base64.b64encode(encode_png(small, FAST_PNG)).decode("ascii")


def _number(value, digits: int = 3) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"
    return escape(str(value)) if value not in (None, "") else "—"


def _rows(pairs) -> str:
    return "".join(f"<tr><th>{escape(str(k))}</th><td>{v}</td></tr>" for k, v in pairs)


def _area_table(tissue_map: TissueMap) -> str:
    colours = class_colours(tissue_map.classes)
    rows = []
    for row in tissue_map.areas():
        r, g, b = colours[row["class"]]
        share = "background, not tissue" if row["fraction"] is None else f'{100 * row["fraction"]:.1f} %'
        rows.append(f'<tr><td><span class="swatch" style="background: rgb({r},{g},{b})"></span>'
                    f'{escape(row["class"])}</td><td>{row["cells"]:,}</td><td>{row["area_px"]:,.0f}</td>'
                    f'<td>{row["area_mm2"]:.3f}</td><td>{share}</td></tr>')
    return ("<table><tr><th>class</th><th>cells</th><th>area (px)</th><th>area (mm²)</th><th>of tissue</th></tr>"
            + "".join(rows) + "</table>")


def _recall_table(card: dict) -> str:
    """Per-class recall of the held-out test split (validation when there is none, said so)."""
    for part, title in (("test", "Held-out test recall per class"),
                        ("val", "Validation recall per class (not held out: it chose the checkpoint)")):
        estimates = held_out(card, part)
        if estimates is not None and estimates["accuracy"].n:
            cells = "".join(f"<tr><td>{escape(name)}</td><td>{escape(estimate_text(e))}</td></tr>"
                            for name, e in estimates["recall"].items())
            return f"<h3>{title}</h3><table><tr><th>class</th><th>recall (95 % CI, n)</th></tr>{cells}</table>"
    return "<h3>Recall per class</h3><p>—</p>"


def _model_card(card: dict, synthetic: bool) -> str:
    line = headline(card)
    badge = leakage_badge(leakage_of(card))
    f1 = Estimate.from_dict(card.get("test_macro_f1_interval"))
    pairs = [
        ("model", escape(str(card.get("name") or "—"))), ("architecture", _number(card.get("architecture"))),
        ("training data", _number(card.get("dataset")) + (" <b>(synthetic)</b>" if synthetic else "")),
        ("split", _number(card.get("split"))),
        ("leakage", f'<b class="warnline">{escape(badge)}</b>' if badge else escape(leakage_text(leakage_of(card)))),
        ("images train / val / test", " / ".join(_number(card.get(k)) for k in
                                                 ("train_images", "val_images", "test_images"))),
        (line.label, f"<b>{escape(estimate_text(line.estimate))}</b> ({escape(line.note)})"),
        ("held-out test macro F1 (bootstrap over source images)", escape(estimate_text(f1)) if f1 else "—"),
        ("validation accuracy (chose the checkpoint)", escape(percent(card.get("val_accuracy")))),
        ("trained", _number(card.get("trained"))), ("run id", _number(card.get("run_id"))),
    ]
    return f"<table>{_rows(pairs)}</table>" + _recall_table(card)


def calibration_html(card: dict, min_confidence: float = 0.0) -> str:
    """Temperature, ECE before/after and the reliability diagram of the model's calibration."""
    calibration = card.get("calibration")
    if not isinstance(calibration, dict):
        return ("<h3>Calibration</h3><p>Not calibrated (no validation split recorded): the map uses the model's raw "
                "probabilities.</p>")
    uncertain = (f" Cells whose calibrated confidence is under {percent(min_confidence, 0)} are drawn and counted "
                 "as uncertain." if min_confidence > 0 else "")
    return (f"<h3>Calibration</h3><p>{escape(calibration_text(calibration) + uncertain)}</p>"
            f"{reliability_svg(calibration)}")


def guard_banner(card: dict) -> str:
    """The weak-model banner (empty for a model that passes the guard)."""
    text = weak_model(card).banner()
    return f'<p class="warn"><b>{escape(text)}</b></p>' if text else ""


def render(tissue_map: TissueMap, thumbnail: np.ndarray, overlay: np.ndarray, card: dict) -> str:
    meta = tissue_map.meta
    synthetic_model, synthetic_image = bool(meta.get("synthetic")), bool(meta.get("synthetic_image"))
    warnings = []
    if synthetic_model:
        warnings.append(f'<p class="warn"><b>{escape(SYNTHETIC_NOTE)}</b></p>')
    if synthetic_image:
        warnings.append('<p class="warn"><b>SYNTHETIC IMAGE:</b> the demo mosaic of procedural tiles, not tissue.</p>')
    colours = class_colours(tissue_map.classes)
    named = [row["class"] for row in tissue_map.areas()]
    legend = " ".join(f'<span><span class="swatch" style="background: rgb({r},{g},{b})"></span>'
                      f'{escape(name)}</span>' for name, (r, g, b) in colours.items() if name in named)
    tsr_text = escape(tsr.text(tissue_map.tumour_stroma()))
    warnings.append(guard_banner(card or {}))
    badge = leakage_badge(leakage_of(card or {}))
    if badge:
        warnings.append(f'<p class="warn"><b>{escape(badge)}</b> in the model\'s split: its held-out numbers are '
                        "optimistic.</p>")
    software = ", ".join(f"{escape(str(k))} {escape(str(v))}" for k, v in (meta.get("software") or {}).items())
    width, height = meta.get("image_size") or ("?", "?")
    image_pairs = [
        ("image", escape(str(meta.get("image", "")))), ("size", f"{_number(width)} x {_number(height)} px"),
        ("resolution", f"{tissue_map.mpp:.3f} µm/px"),
        ("tile", f"{tissue_map.grid.tile:.0f} px ({meta.get('field_um', 0):.1f} µm), overlap "
                 f"{tissue_map.grid.overlap}"),
        ("tiles classified", f"{len(tissue_map.tiles):,}"),
        ("tissue threshold", _number(meta.get("threshold"), 1)), ("mapped", _number(meta.get("created"))),
        ("software", software or "—"),
    ]
    limits = "".join(f"<li>{escape(text)}</li>" for text in KNOWN_LIMITS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Tissue map report: {escape(str(meta.get("image", "")))}</title>
<style>{STYLE}</style></head><body>
<h1>Tissue map report</h1>
{''.join(warnings)}
<p class="use"><b>Intended use.</b> {escape(INTENDED_USE)}</p>
<h2>Image</h2><table>{_rows(image_pairs)}</table>
<div class="images"><figure><img alt="thumbnail" src="{_data_uri(thumbnail)}"><figcaption>Image</figcaption></figure>
<figure><img alt="tissue map" src="{_data_uri(overlay)}"><figcaption>Map of predicted classes</figcaption></figure></div>
<p>{legend}</p>
<h2>Areas</h2>{_area_table(tissue_map)}
<p><b>Tumour-stroma ratio</b> (stroma share of tumour + stroma; verdict only when the whole 95 % interval
lies on one side of 50 %): {tsr_text}</p>
<h2>Model card</h2>{_model_card(card or {}, synthetic_model)}
{calibration_html(card or {}, tissue_map.min_confidence)}
<h2>Known limits</h2><ul>{limits}</ul>
</body></html>
"""
