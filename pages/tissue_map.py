"""Tissue map: classify a whole image tile by tile into a map of tissue classes (Kather et al. 2016)."""

import html
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import choices
from dashboard import tissuemap_adapters as ui
from dashboard.feedback import flash, show_flashes
from dashboard.adapters import job_manager
from dashboard.widgets import (
    asking_the_model_service, live_job, mark_live, md, show_image, synthetic_badge, user_errors,
    why_disabled,
)
from services.config import confine, get_settings
from services.errors import UserFacingError
from services.images import encode_png
from services.jobs import kinds
from services.metrics.honesty import headline, leakage_badge, leakage_of, weak_model
from services.tissuemap import detail, kather_large, layers, outputs, tsr
from services.tissuemap import job as map_job
from services.tissuemap.grid import MAX_OVERLAP
from services.tissuemap.maps import META_FILE, has_background
from services.tissuemap.models import KATHER_FIELD_UM, KATHER_MPP, best_held_out, onnx_choice
from services.tissuemap.reader import MPP_RANGE
from services.tissuemap.submit import MapSettings, submit_map

DEMO, KATHER, PATH, UPLOAD = ("Demo mosaic (synthetic)", "Kather 2016 larger images", "File under the data root",
                              "Upload")

st.title(":material/map: Tissue map")
st.caption("Classify a whole image tile by tile, as in Kather et al. 2016 (the paper behind the book's chapter 8 "
           "data): a map of tissue classes, their areas and the tumour-stroma ratio. For research, not diagnosis.")
manager = job_manager()


# --- image ---------------------------------------------------------------------------------------

def kather_large_panel() -> tuple[Path | None, float | None]:
    images = kather_large.installed_images()
    if images:
        chosen = st.selectbox("Image", images, format_func=lambda p: p.name, key="tm_kather_image",
                              persist_state="session")
        return chosen, kather_large.MPP
    st.info(f"The ten 5000x5000 px images ({kather_large.SIZE / 1e6:,.0f} MB zip, Zenodo record 53169, CC BY 4.0) "
            "are not downloaded yet.")
    downloads = manager.list(kind=kinds.KATHER_LARGE_DOWNLOAD)[:1]
    if downloads:
        live_job(manager, downloads[0].id, "tm-download")
    if not (downloads and downloads[0].active) and st.button("Download the larger images", icon=":material/download:"):
        with user_errors():
            mark_live(kather_large.submit_download(manager))
            st.rerun()
    st.caption(md(kather_large.manual_instructions()))
    return None, None


def image_choice() -> tuple[Path | None, float | None]:
    """(image path, default microns per pixel) of the chosen image."""
    source = st.radio("Image", [DEMO, KATHER, PATH, UPLOAD], horizontal=True, key="tm_source", persist_state="session")
    if source == DEMO:
        synthetic_badge("synthetic demo mosaic")
        return ui.demo_mosaic(str(get_settings().data_root)), KATHER_MPP
    if source == KATHER:
        return kather_large_panel()
    if source == PATH:
        typed = st.text_input("Path under the data root", key="tm_path",
                              help="TIFF/BigTIFF (tiled or striped), SVS/NDPI, PNG or JPEG")
        if not typed:
            return None, None
        with user_errors():
            path = confine(typed)
            if not path.is_file():
                raise UserFacingError(f"{Path(typed).name}: no such file under the data root.")
            return path, None
        return None, None
    upload = st.file_uploader("Image", type=ui.UPLOAD_TYPES, key="tm_upload")
    if upload is None:
        return None, None
    with user_errors():
        return ui.save_upload(upload.name, upload.getvalue()), None
    return None, None


# --- model ---------------------------------------------------------------------------------------

def model_choice():
    kind = st.radio("Model", ["Trained run", "ONNX classifier"], horizontal=True, key="tm_model_kind",
                    persist_state="session")
    if kind == "ONNX classifier":
        path = st.text_input("ONNX file under the data root", key="tm_onnx_path")
        names = st.text_input("Class names in output order (comma-separated)", key="tm_onnx_classes",
                              value="TUMOR, STROMA, COMPLEX, LYMPHO, DEBRIS, MUCOSA, ADIPOSE, EMPTY")
        field = st.number_input("Field of view of one input tile (µm)", 5.0, 2000.0, KATHER_FIELD_UM,
                                key="tm_onnx_field", help="Kather 2016: 150 px at 0.495 µm/px = 74.25 µm")
        if not path:
            return None
        with user_errors():
            return onnx_choice(path, names.split(","), field_um=field)
        return None
    with user_errors():
        runs = ui.run_models()
        if not runs:
            st.info("No finished run with a saved model yet: train one on the **Training monitor** or "
                    "**Transfer learning** page first.")
            return None
        choice = st.selectbox("Run", runs, key="tm_run", index=best_held_out(runs), persist_state="session",
                              format_func=lambda c: c.label + (" · synthetic data" if c.synthetic else ""),
                              help="The run with the best held-out accuracy is chosen first.")
        if choice.synthetic:
            synthetic_badge("model trained on synthetic data")
        trust_notes(choice.card)
        st.caption(md(f"{len(choice.classes)} classes: {', '.join(choice.classes)} · "
                      f"dataset {choice.card.get('dataset')}"))
        return choice
    return None


def trust_notes(card: dict) -> None:
    """What the model's held-out numbers allow: headline, leakage badge, weak-model banner."""
    line, badge, guard = headline(card), leakage_badge(leakage_of(card)), weak_model(card)
    st.caption(md(f"{line.text()} · {line.note}"))
    if badge:
        st.warning(f"**{badge}** in this model's split: its held-out numbers are optimistic.",
                   icon=":material/warning:")
    if guard.weak:
        st.warning(md(guard.banner()), icon=":material/report:")


# --- settings and start --------------------------------------------------------------------------

def settings_panel(path: Path, default_mpp: float | None, choice) -> MapSettings | None:
    """Resolution, tissue detection preview and tiling; returns the map's settings or None."""
    with user_errors():
        view = ui.image_preview(path, None)
        st.caption(md(f"{view.name}: {view.width:,} x {view.height:,} px, {view.format}"))
        for note in view.notes:
            st.warning(md(note))
        if view.synthetic:
            synthetic_badge("synthetic image")
        mpp = view.mpp or default_mpp
        if view.mpp:
            st.caption(f"Resolution from the file: {mpp:.3f} µm/px")
        elif default_mpp:
            st.caption(f"Resolution of this image set: {mpp:.3f} µm/px")
        else:
            mpp = st.number_input("Microns per pixel (the file does not say: enter the scanner's value)",
                                  MPP_RANGE[0], MPP_RANGE[1], None, step=0.005, format="%.3f", key="tm_mpp",
                                  placeholder="e.g. 0.5 at 20x, 0.25 at 40x")
            if mpp is None:
                st.info("This file does not say how many microns a pixel is. Enter it above: the tiles must "
                        "cover the field of view the model was trained on, and areas in mm² depend on it.",
                        icon=":material/straighten:")
                return None
        left, right = st.columns(2)
        threshold = left.slider("Tissue threshold (colour saturation)", 0, 80, int(view.suggested_threshold),
                                key="tm_threshold", help="Pixels more saturated than this are tissue; glass is not.")
        min_tissue = left.slider("Tissue a tile needs (%)", 1, 100, 10, key="tm_min_tissue") / 100
        overlap = left.select_slider("Tiles per tile side (overlap)", list(range(1, MAX_OVERLAP + 1)), 1,
                                     key="tm_overlap", help="2 = tiles step by half a tile; predictions averaged")
        min_confidence = left.slider("Confidence a cell needs (%)", 0, 95, 50, 5, key="tm_min_confidence",
                                     help="Cells whose calibrated confidence is lower are drawn as 'uncertain' and "
                                          "counted apart in the areas (0: none).") / 100
        field_um = choice.field_um if choice else KATHER_FIELD_UM
        ring = bool(choice and has_background(choice.classes))
        mask_preview, count = ui.tissue_tiles(view, mpp, field_um, threshold, min_tissue, overlap, ring)
        show_image(mask_preview, target=right, caption="Tissue found (background tinted blue)")
        left.caption(f"{count:,} tiles of {field_um / mpp:.0f} px ({field_um:.1f} µm) to classify.")
        if count == 0:
            st.warning("No tissue at this threshold: lower it.")
            return None
        return MapSettings(None if view.mpp else mpp, threshold, min_tissue, overlap, min_confidence)
    return None


# --- result --------------------------------------------------------------------------------------

def legend(classes: list[str], colours: dict) -> None:
    st.html("<div>" + "".join(
        f"<span style='display:inline-block;margin-right:12px'><span style='display:inline-block;width:14px;"
        f"height:14px;background:rgb{colours[c]};border:1px solid #888;vertical-align:middle'></span> "
        f"{html.escape(c)}</span>" for c in classes) + "</div>")


def tile_inspector(state, tissue_map, index: int) -> None:
    grid = tissue_map.grid
    row, col = tissue_map.tiles[index].tolist()
    x, y = grid.tile_origin(row, col)
    probabilities = tissue_map.tile_probabilities[index]
    st.markdown(f"**Tile at x {x:,}, y {y:,}** · predicted **{md(tissue_map.classes[int(probabilities.argmax())])}**")
    left, middle, right = st.columns(3)
    model = state.params.get("model", {})
    image_path = state.params.get("image", {}).get("path")
    with user_errors():
        tile = ui.read_tile(image_path, x, y, grid.tile_px, tissue_map.mpp) if image_path else None  # map's level
        if tile is not None:
            show_image(tile, target=left, caption="Tile")
        frame = pd.DataFrame({"class": tissue_map.classes, "probability": probabilities.round(4)})
        middle.dataframe(frame, hide_index=True)
        if tile is None or model.get("kind") != "run":
            right.caption("Grad-CAM is available for Keras runs.")
        elif right.button("Grad-CAM", key="tm_gradcam", icon=":material/visibility:"):
            with asking_the_model_service(right):
                _, overlay = ui.inspect_tile(model["path"], tile)
            if overlay is not None:
                show_image(overlay, target=right, caption="Grad-CAM (predicted class)")
            else:
                right.caption("The model service returned no Grad-CAM for this tile.")


def _pan(keys: dict, box: detail.DetailBox, width: int, height: int, columns: int, rows: int) -> None:
    moved = detail.panned(box, width, height, columns, rows)
    st.session_state[keys["x"]], st.session_state[keys["y"]] = moved.centre


PAN_BUTTONS = ((":material/arrow_back:", "left", -1, 0), (":material/arrow_upward:", "up", 0, -1),
               (":material/arrow_downward:", "down", 0, 1), (":material/arrow_forward:", "right", 1, 0))


def detail_panel(state, tissue_map, layer: str, opacity: float, visible: list[str], clicked: int | None) -> None:
    """One region of the image at full (or 1:2, 1:4) resolution with the same map layer overlaid:
    centred on the clicked tile or on x/y entered, panned with the arrows. Only the region is read."""
    image_path = state.params.get("image", {}).get("path")
    if not image_path:
        return
    grid = tissue_map.grid
    keys = {axis: f"tm_detail_{axis}_{state.id}" for axis in ("x", "y")}
    st.session_state.setdefault(keys["x"], grid.width // 2)
    st.session_state.setdefault(keys["y"], grid.height // 2)
    if clicked is not None and st.session_state.get(f"tm_detail_click_{state.id}") != clicked:
        st.session_state[f"tm_detail_click_{state.id}"] = clicked  # a new click recentres; panning keeps it
        x, y = grid.tile_origin(*tissue_map.tiles[clicked].tolist())
        st.session_state[keys["x"]], st.session_state[keys["y"]] = int(x + grid.tile / 2), int(y + grid.tile / 2)
    st.subheader("Detail at full resolution")
    zoom_col, x_col, y_col, pan_col = st.columns([2, 1, 1, 2], vertical_alignment="bottom")
    zoom = zoom_col.selectbox("Resolution", detail.ZOOMS, key=f"tm_detail_zoom_{state.id}",
                              format_func=lambda z: "full (1 image px per screen px)" if z == 1 else
                              f"1:{z} ({z} x {z} image px per screen px)")
    centre_x = x_col.number_input("Centre x (px)", 0, grid.width - 1, step=detail.VIEW_SIDE // 4, key=keys["x"])
    centre_y = y_col.number_input("Centre y (px)", 0, grid.height - 1, step=detail.VIEW_SIDE // 4, key=keys["y"])
    box = detail.detail_box(grid.width, grid.height, centre_x, centre_y, zoom)
    for column, (icon, name, columns, rows) in zip(pan_col.columns(4), PAN_BUTTONS):
        column.button(name.capitalize(), icon=icon, key=f"tm_pan_{name}_{state.id}", help=f"Pan {name}", on_click=_pan,
                      args=(keys, box, grid.width, grid.height, columns, rows))
    st.session_state[f"tm_detail_box_{state.id}"] = (box.x, box.y, box.width, box.height, box.zoom)
    pixels = ui.detail_pixels(image_path, tissue_map.mpp, box)
    shown = layers.layer_image(tissue_map, pixels, layer, opacity, visible, factor=box.zoom, origin=(box.x, box.y))
    um_per_px = tissue_map.mpp * box.zoom
    shown, bar_um = detail.with_scale_bar(shown, um_per_px)
    show_image(shown, caption=f"x {box.x:,}-{box.x + box.width:,}, y {box.y:,}-{box.y + box.height:,} of "
                              f"{grid.width:,} x {grid.height:,} px · {um_per_px:.3f} µm per screen pixel · "
                              f"scale bar {bar_um:g} µm")


def result_panel(state) -> None:
    folder = ui.map_output(manager, state)
    if not (folder / META_FILE).is_file():
        st.warning("This map's files are missing.")
        return
    tissue_map, thumbnail = ui.job_map(str(folder), (folder / META_FILE).stat().st_mtime)
    if tissue_map.meta.get("synthetic"):
        st.warning(outputs.SYNTHETIC_NOTE, icon=":material/science:")
    if tissue_map.meta.get("synthetic_image"):
        synthetic_badge("synthetic image")
    card = tissue_map.meta.get("model_card")
    trust_notes(card if isinstance(card, dict) else {})
    colours = outputs.class_colours(tissue_map.classes)
    controls, view = st.columns([1, 3])
    layer = controls.selectbox("Show", layers.layer_names(tissue_map.classes), key="tm_layer")
    opacity = controls.slider("Map opacity", 0.0, 1.0, 0.45, 0.05, key="tm_opacity")
    visible = [c for c in tissue_map.classes if controls.checkbox(c, True, key=f"tm_show_{state.id}_{c}")]
    image = layers.layer_image(tissue_map, thumbnail, layer, opacity, visible)
    with view:
        if layer == layers.CLASS_MAP:
            legend([row["class"] for row in tissue_map.areas()], colours)
        else:
            st.caption(f"{md(layer)}: dark blue 0 → green → yellow → red 1")
        event = st.plotly_chart(layers.overlay_figure(tissue_map, image), on_select="rerun",
                                selection_mode="points", key=f"tm_figure_{state.id}",
                                config={"scrollZoom": True})
    points = [p for p in (event.selection.points if event else []) if p.get("curve_number") == 1]
    clicked = int(points[0]["point_index"]) if points else None
    if clicked is not None:
        tile_inspector(state, tissue_map, clicked)
    else:
        st.caption("Click a tile on the map to see it, its class probabilities and a Grad-CAM overlay, and to "
                   "centre the detail view on it.")
    detail_panel(state, tissue_map, layer, opacity, visible, clicked)
    areas = outputs.areas_frame(tissue_map)
    table, chart = st.columns(2)
    table.dataframe(areas[["class", "cells", "area_px", "area_mm2", "percent"]], hide_index=True,
                    column_config={"area_px": st.column_config.NumberColumn("area (px)", format="%.0f"),
                                   "area_mm2": st.column_config.NumberColumn("area (mm²)", format="%.3f"),
                                   "percent": st.column_config.NumberColumn("% of tissue", format="%.1f")})
    chart.plotly_chart(layers.areas_figure(areas, colours), key=f"tm_bars_{state.id}")
    st.markdown(md("**Tumour-stroma ratio** (stroma share of tumour + stroma; a verdict only when the whole 95 % "
                   f"interval lies on one side of 50 %): {tsr.text(layers.map_ratio(state.result, tissue_map))}"))
    downloads(folder, tissue_map, image)


def downloads(folder: Path, tissue_map, image: np.ndarray) -> None:
    """The map's files, read (and the overlay encoded) only when a button is clicked, not on every
    rerun (each pan or slider change reruns the page)."""
    stem = Path(str(tissue_map.meta.get("image", "image"))).stem[:60] or "image"
    columns = st.columns(5)
    files = [("Overlay PNG", partial(encode_png, image), f"{stem}_map.png", "image/png"),
             ("Label TIFF", (folder / map_job.LABELS_TIFF).read_bytes, f"{stem}_labels.tif", "image/tiff"),
             ("Tiles CSV", (folder / map_job.TILES_CSV).read_bytes, f"{stem}_tiles.csv", "text/csv"),
             ("GeoJSON (QuPath)", (folder / map_job.REGIONS_GEOJSON).read_bytes, f"{stem}_regions.geojson",
              "application/geo+json"),
             ("HTML report", (folder / map_job.REPORT_HTML).read_bytes, f"{stem}_report.html", "text/html")]
    for column, (label, data, name, mime) in zip(columns, files):
        column.download_button(label, data, file_name=name, mime=mime, icon=":material/download:",
                               key=f"tm_download_{label}")


# --- page ----------------------------------------------------------------------------------------

setup, results = st.tabs(["New map", "Maps"])
with setup:
    path, default_mpp = image_choice()
    choice = model_choice()
    settings = settings_panel(path, default_mpp, choice) if path is not None else None
    missing = [what for what, absent in (("an image", path is None), ("a model", choice is None),
                                         ("complete image settings (see above)", path is not None and settings is None))
               if absent]
    button, why = st.columns([1, 4], vertical_alignment="center")
    if button.button("Start", type="primary", icon=":material/play_arrow:", disabled=bool(missing), key="tm_start"):
        with user_errors():
            job_id = submit_map(manager, path, settings, choice)
            choices.select_next("tm_job", job_id)
            st.session_state["tm_started"] = job_id
            flash("tm-start", "Map queued: it runs in the background (you may close the tab); it is selected "
                              "under Maps.", "info")
            st.rerun()
    why_disabled("Start needs " + " and ".join(missing) + "." if missing else None, why)
    show_flashes("tm-start")
    if st.session_state.get("tm_started"):
        live_job(manager, st.session_state["tm_started"], "tm-start-stop")

with results:
    jobs = ui.map_jobs(manager, kinds.TISSUE_MAP)
    if not jobs:
        st.info("No maps yet: choose an image and a model under **New map** and press Start.")
    else:
        chosen = choices.job_picker("Map", jobs, "tm_job", lambda j: f"{j.title} · {j.status_text}")
        state = next(job for job in jobs if job.id == chosen)
        live_job(manager, state.id, "tm-stop")
        if state.status == "finished":
            with user_errors():
                result_panel(state)
