"""Object detector: YOLO (Darknet or ONNX) on photos (book ch. 6-7).

Darknet models run on OpenCV (in the server) or TensorFlow (in the model service); ONNX models
on onnxruntime or OpenCV (in the server). The network runs once per image, model, backend, size
and letterbox setting; its candidates are kept in the session, so the score / NMS thresholds and
the class filter only redo NMS and the drawing.
"""

from __future__ import annotations

import functools
import hashlib

import pandas as pd
import streamlit as st

from dashboard import choices
from dashboard import detection_adapters as adapters
from dashboard.adapters import job_manager
from dashboard.auth import current_actor
from dashboard.delete_control import delete_control, forget_deleted_notice, show_deleted_notice
from dashboard.feedback import flash, show_flashes
from dashboard.widgets import live_job, random_weights_badge, user_errors, why_disabled
from services import provenance
from services.detection import catalog, onnx_store, registry
from services.detection.annotate import annotate
from services.detection.batch import (ANNOTATED_ZIP, DETECTIONS_COCO, DETECTIONS_CSV, PROBLEMS_CSV, BatchSettings,
                                      batch_outputs, submit_batch)
from services.detection.decode import CANDIDATE_FLOOR, PRESETS, Detections, select, threshold_or_default
from services.detection.exports import counts_per_class, detections_table, to_coco_results, to_csv
from services.detection.inference import ResultCache, model_facts
from services.detection.model_key import ModelKey
from services.detection.models import parse_names
from services.detection.onnx_layouts import FAMILIES
from services.detection.samples import SAMPLES
from services.detection.timing import speed_ratio
from services.errors import UserFacingError
from services.images import encode_png
from services.jobs import kinds

INPUT_SIZES = (320, 416, 608)
IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"]
MAX_SIDE = 4096
ADDED = "detector-added"  # where the page says that a model was added: below the model picker

state = st.session_state
if not isinstance(state.get("det_cache"), ResultCache):
    state.det_cache = ResultCache()
state.setdefault("det_score", PRESETS[1].score)
state.setdefault("det_nms", PRESETS[1].nms)


# ---------------------------------------------------------------- model
def default_model(options: dict[str, str]) -> str:
    """The last choice (this session's, else the page address's ``?model=``, which survives a
    reload), else an installed model, else the demo."""
    return catalog.default_model(options, (state.get("det_model_choice"), st.query_params.get("model")))


def active_model(key: str):
    """The chosen model's facts, or the previous working model's when the choice cannot be loaded."""
    try:
        with st.spinner("Loading the model…"):
            facts = model_facts(adapters, key)
        state.det_active = key
        return key, facts
    except UserFacingError as error:
        st.error(str(error), icon=":material/error:")
        if key in registry.REGISTRY:
            st.button(f"Try the page with '{registry.DEMO_TITLE}'", icon=":material/science:",
                      on_click=lambda: (state.update(det_model=registry.DEMO_KEY), remember_model()))
        previous = state.get("det_active")
        if previous and previous != key:
            try:
                facts = model_facts(adapters, previous)
            except UserFacingError:  # the previous model went too (its file was replaced or deleted)
                state.det_active = None
                return None
            st.info(f"Still using the previous model: {catalog.model_options().get(previous, previous)}.")
            return previous, facts
        return None


def delete_uploaded_model(key: str) -> None:
    """Delete the chosen uploaded model (its uploader or an administrator), after a confirmation."""
    parsed = ModelKey.parse(key)
    if not parsed.is_upload:
        return
    stem = parsed.name

    def forget(actor) -> None:
        catalog.delete_upload(key, actor)
        for name in ("det_model", "det_model_choice", "det_active"):
            if state.get(name) == key:
                del state[name]
        st.query_params.pop("model", None)

    with st.expander("Delete this uploaded model", icon=":material/delete:", key="det_delete_expander"), user_errors():
        delete_control("Delete model", f"the model {stem!r}", catalog.upload_owner(key), f"model-{key}", forget)


def apply_preset() -> None:
    preset = next(p for p in PRESETS if p.name == state.det_preset)
    state.det_score, state.det_nms = preset.score, preset.nms


def wanted_classes(names: list[str]) -> list[int] | None:
    """The class ids the class filter keeps (None: all)."""
    return [names.index(n) for n in state.get("det_classes") or [] if n in names] or None


def remember_model(key: str | None = None) -> None:
    state.det_model_choice = st.query_params["model"] = key or state.det_model


def select_added_model(key: str, message: str, warning: str | None = None) -> None:
    """After a model was added: say so, select it from the next run on, and rerun."""
    flash(ADDED, message)
    if warning:
        flash(ADDED, warning, "warning")
    choices.select_next("det_model", key)
    remember_model(key)
    st.rerun()


# ---------------------------------------------------------------- inputs
def collected_images() -> list[tuple[str, str, object]]:
    """(id, name, RGB pixels) of every upload, snapshot and sample; bad files are reported."""
    images = []
    sources = list(state.get("det_uploads") or [])
    if state.get("det_camera") is not None:
        sources.append(state.det_camera)
    for upload in sources:
        data = upload.getvalue()
        digest = hashlib.sha1(data).hexdigest()[:16]
        try:
            decoded = adapters.decoded_upload(digest, data, MAX_SIDE, upload.name)
        except UserFacingError as error:
            st.error(f"{upload.name}: {error}", icon=":material/broken_image:")
            continue
        for note in decoded.notes:
            st.caption(f"{upload.name}: {note}")
        images.append((digest, upload.name, decoded.pixels))
    for name in state.get("det_samples") or []:
        images.append((f"sample:{name}", f"{name}.png", adapters.sample_pixels(name)))
    return images


def draw(image_id: str, pixels, chosen: Detections, names: list[str], random_weights: bool):
    """The annotated picture at display size (boxes scaled), marked when the weights are random."""
    shown, scale = adapters.display_copy(image_id, pixels)
    scaled = Detections(chosen.boxes * scale, chosen.scores, chosen.class_ids)
    picture = annotate(shown, scaled, names)
    return provenance.mark_random_weights(picture, provenance.DETECTION_MARK) if random_weights else picture


def full_size_png(pixels, chosen: Detections, names: list[str], random_weights: bool) -> bytes:
    picture = annotate(pixels, chosen, names)
    return encode_png(provenance.mark_random_weights(picture, provenance.DETECTION_MARK) if random_weights else picture)


# ---------------------------------------------------------------- page
st.title(":material/center_focus_strong: Object detector (YOLO)")
st.caption("Book ch. 6-7: Darknet YOLO on COCO with OpenCV's `readNetFromDarknet`, the same network rebuilt "
           "in Keras on TensorFlow (GPU when present), and ONNX YOLO exports on onnxruntime.")
show_deleted_notice()

options = catalog.model_options()
choices.apply_selection("det_model", options)
if state.get("det_model") not in options:
    state.det_model = default_model(options)
controls = st.columns([3, 2, 2, 1.4])
model_key = controls[0].selectbox("Model", list(options), format_func=options.get, key="det_model",
                                  on_change=remember_model)
try:
    available = catalog.backends_for(model_key)
except UserFacingError:
    available = ("onnxruntime",)
backend_key = f"det_backend_{ModelKey.parse(model_key).family}"
if state.get(backend_key) not in available:
    state[backend_key] = available[0]
backend_name = controls[1].radio("Backend", available, horizontal=True, key=backend_key,
                                 help="OpenCV and onnxruntime run in the dashboard; TensorFlow in the model service.")
input_size = controls[2].radio("Input size", INPUT_SIZES, index=1, horizontal=True, key="det_size")
letterbox = controls[3].toggle("Letterbox", key="det_letterbox",
                               help="Keep the aspect ratio with grey borders instead of the book's plain resize.")

show_flashes(ADDED)
loaded = active_model(model_key)
delete_uploaded_model(model_key)

with st.expander("Add a model: download weights, upload Darknet cfg + weights + names, or ONNX",
                 icon=":material/add_circle:", key="det_add_expander"):
    download_tab, darknet_tab, onnx_tab = st.tabs(["Download weights", "Upload Darknet", "Upload ONNX"],
                                                  key="det_add_tabs")
    with download_tab:
        manager = job_manager()
        for spec in registry.REGISTRY.values():
            if registry.missing_files_message(spec) is None:
                st.markdown(f":material/check: **{spec.title}**: installed ({spec.weights_name})")
            elif st.button(f"Download {spec.weights_name} ({spec.weights_size / 1e6:.0f} MB)",
                           key=f"det_dl_{spec.key}", icon=":material/download:"):
                with user_errors():
                    registry.submit_download(manager, spec)
        for job in manager.list(kind=kinds.DETECTION_DOWNLOAD)[:3]:
            live_job(manager, job.id, "det-dl")
    with darknet_tab:
        cfg_file = st.file_uploader("cfg", type=["cfg"], key="det_up_cfg")
        weights_file = st.file_uploader("weights", type=["weights"], key="det_up_weights")
        names_file = st.file_uploader("names (one class per line)", type=["names", "txt"], key="det_up_names")
        missing_files = [kind for kind, file in (("cfg", cfg_file), ("weights", weights_file), ("names", names_file))
                         if file is None]
        why_disabled(f"Upload the {' and '.join(missing_files)} file(s) first." if missing_files else None)
        if st.button("Check and add", disabled=bool(missing_files), key="det_up_go"):
            st.toast("Checking the model…", icon=":material/hourglass_top:")  # at once: the check takes seconds
            with user_errors(), st.spinner("Checking the model…"):
                saved = registry.save_upload((cfg_file.name, cfg_file.getvalue()),
                                             (weights_file.name, weights_file.getvalue()),
                                             (names_file.name, names_file.getvalue()), current_actor().owner)
                select_added_model(saved.model.key, saved.message)
    with onnx_tab:
        onnx_file = st.file_uploader("ONNX detector (YOLOv5/v7, YOLOv8/11, YOLOX, NMS inside)", type=["onnx"],
                                     key="det_up_onnx")
        family = st.selectbox("Family", list(FAMILIES), format_func=lambda f: f"{f}: {FAMILIES[f]}",
                              key="det_up_onnx_family")
        onnx_names = st.file_uploader("names, when the model carries none (default: COCO's 80 classes)",
                                      type=["names", "txt"], key="det_up_onnx_names")
        why_disabled("Upload an .onnx file first." if onnx_file is None else None)
        if st.button("Check and add", disabled=onnx_file is None, key="det_up_onnx_go"):
            st.toast("Checking the model…", icon=":material/hourglass_top:")  # at once: the check takes seconds
            with user_errors(), st.spinner("Checking the model…"):
                names = (parse_names(onnx_names.getvalue().decode("utf-8", "replace"), onnx_names.name)
                         if onnx_names else None)
                saved = onnx_store.save_onnx(onnx_file.name, onnx_file.getvalue(), names, family,
                                             current_actor().owner)
                select_added_model(str(ModelKey.onnx(saved.info.stem)), saved.message, saved.warning)

if loaded is None:
    st.stop()
active_key, facts = loaded
names, title, random_weights, fixed_size = facts.names, facts.title, facts.random_weights, facts.fixed_size
if active_key != model_key:  # the previous model: its own backends
    available = catalog.backends_for(active_key)
    backend_name = backend_name if backend_name in available else available[0]
if fixed_size and fixed_size != input_size:
    st.caption(f"This ONNX model takes a {fixed_size} x {fixed_size} input; that size is used.")
    input_size = fixed_size
if random_weights:
    st.warning(f":orange-badge[:material/science: {registry.DEMO_TITLE}] The weights are random numbers in "
               "the exact Darknet layout: the page works end to end, but boxes, classes and scores mean "
               "nothing. Download or upload real weights for real detections.", icon=":material/science:")


@st.fragment
def detections_view(active_key: str, backend_name: str, available: tuple[str, ...], title: str, names: list[str],
                    random_weights: bool, input_size: int, letterbox: bool) -> None:
    """Thresholds, inputs and results: a fragment, so that a threshold, class filter or input change
    reruns only this part of the page (the network result comes from the session's cache)."""
    thresholds = st.columns([2, 2, 2, 3])
    thresholds[0].selectbox("Preset", [p.name for p in PRESETS], index=1, key="det_preset", on_change=apply_preset,
                            help="\n".join(f"- **{p.name}**: score {p.score}, NMS {p.nms} ({p.note})" for p in PRESETS))
    for key, label, default in (("det_score", "score threshold", PRESETS[1].score),
                                ("det_nms", "NMS threshold", PRESETS[1].nms)):
        state[key], refused = threshold_or_default(state.get(key), label, default)  # the session is untrusted
        if refused:
            st.error(refused, icon=":material/error:")
    score = thresholds[1].slider("Score threshold", 0.0, 1.0, step=0.01, key="det_score")
    nms = thresholds[2].slider("NMS IoU threshold", 0.0, 1.0, step=0.01, key="det_nms")
    thresholds[3].multiselect("Classes (empty: all)", names, key="det_classes")
    wanted = wanted_classes(names)

    upload_tab, camera_tab, samples_tab = st.tabs(["Upload photos", "Camera", "Samples"])
    upload_tab.file_uploader("Photos to detect on", type=IMAGE_TYPES, accept_multiple_files=True, key="det_uploads")
    with camera_tab:
        if st.toggle("Use the camera", key="det_use_camera"):
            st.camera_input("Snapshot", key="det_camera")
    samples_tab.multiselect("Built-in samples (scikit-image)", list(SAMPLES), format_func=lambda n: SAMPLES[n],
                            key="det_samples")

    images = collected_images()
    if not images:
        st.info("Upload photos, take a snapshot or pick a built-in sample.", icon=":material/photo_library:")

    others = [b for b in available if b != backend_name]
    compare = bool(others) and st.toggle(
        "Side by side with the other backend", key="det_compare",
        help=f"Runs {backend_name} and {others[0] if others else '-'} on the first image: both annotated pictures, "
             "their times, and how far their raw outputs differ.")

    tables = []
    for image_id, name, pixels in images:
        with user_errors():
            with st.spinner(f"Running {title} on {name}…"):
                result = state.det_cache.candidates(adapters, active_key, backend_name, image_id, name, pixels,
                                                    input_size, letterbox)
            chosen = select(result.candidates, score, nms, wanted)
            table = detections_table(name, chosen, names)
            tables.append(table)
            st.subheader(name, divider="gray")
            left, right = st.columns([3, 2])
            left.image(draw(image_id, pixels, chosen, names, random_weights),
                       caption=f"{name}: {len(chosen)} detections", width="stretch")
            left.download_button("Annotated PNG",
                                 functools.partial(full_size_png, pixels, chosen, names, random_weights),
                                 file_name=f"{name.rsplit('.', 1)[0]}_detections.png", mime="image/png",
                                 key=f"det_png_{image_id}", icon=":material/download:")
            right.markdown(f"**{len(chosen)} detections** · {len(result.candidates)} candidates cached · "
                           f"{result.backend} at {input_size}")
            if not len(result.candidates):
                right.warning(f"The model scored no box above {CANDIDATE_FLOOR} on this picture. If there is "
                              "something to find, the model or (for ONNX) its family may be wrong.")
            right.dataframe(table.drop(columns=["image"]), hide_index=True, key=f"det_table_{image_id}")
            right.dataframe(counts_per_class(table), hide_index=True)
            timing = right.columns(3)
            for column, (stage, ms) in zip(timing, result.timings_ms.items()):
                column.metric(stage, f"{ms:.0f} ms")

    if compare and images:
        image_id, name, pixels = images[0]
        pair = (backend_name, others[0])
        with user_errors(), st.spinner("Running both backends…"):
            comparison = state.det_cache.compare(adapters, active_key, pair, image_id, name, pixels, input_size,
                                                 letterbox)
            st.subheader(f"{pair[0]} and {pair[1]} side by side", divider="gray")
            cols = st.columns(4)
            cols[0].metric("max |difference| of raw outputs", f"{comparison.max_difference:.2e}")
            times = comparison.timings
            for column, b in zip(cols[1:3], pair):
                column.metric(f"{b} inference (warm median)", f"{times[b].median_ms:.0f} ms",
                              help=f"{times[b].text}; the first (cold) call, {times[b].cold_ms:.0f} ms, is excluded.")
            cols[3].metric(f"{pair[0]} / {pair[1]} (warm)", f"{speed_ratio(times[pair[0]], times[pair[1]]):.2f}")
            st.caption(f"Inference times: {pair[0]} {times[pair[0]].text}, {pair[1]} {times[pair[1]].text} on this "
                       f"image; each backend's first (cold) call ({times[pair[0]].cold_ms:.0f} ms and "
                       f"{times[pair[1]].cold_ms:.0f} ms) loads and prepares the model and is excluded.")
            pictures = st.columns(2)
            for column, b in zip(pictures, pair):
                found = select(comparison.results[b].candidates, score, nms, wanted)
                column.image(draw(image_id, pixels, found, names, random_weights),
                             caption=f"{b}: {len(found)} detections", width="stretch")

    if tables:
        everything = pd.concat(tables, ignore_index=True)
        st.subheader("All detections", divider="gray")
        downloads = st.columns(2)
        downloads[0].download_button("Detections CSV", functools.partial(to_csv, everything),
                                     file_name=DETECTIONS_CSV, mime="text/csv", icon=":material/table:",
                                     key="det_csv")
        downloads[1].download_button("COCO results JSON", functools.partial(to_coco_results, everything, names),
                                     file_name=DETECTIONS_COCO, mime="application/json",
                                     icon=":material/data_object:", key="det_json")
        st.caption(f"{len(everything)} detections from {len(tables)} image(s) in the downloads.")


detections_view(active_key, backend_name, tuple(available), title, names, random_weights, input_size, letterbox)


# ---------------------------------------------------------------- batch
def show_batch_job(manager, job) -> None:
    """The job's live panel; once it ended, the inputs it skipped and (finished) its files."""
    job = live_job(manager, job.id, "det-batch")
    if job is None or job.active:
        return
    result = job.result or {}
    problems = result.get("problems") or []
    if problems:
        st.caption(f"{result.get('problem_count', len(problems))} problem(s): these inputs were skipped.")
        st.dataframe(pd.DataFrame(problems, columns=["image", "problem"]), hide_index=True,
                     key=f"det_batch_problems_{job.id}")
    if job.status != "finished":
        return
    outputs = batch_outputs(manager, job.id)
    if result.get("random_weights"):
        random_weights_badge("the annotated images carry that mark.")
    if DETECTIONS_CSV in outputs:
        st.dataframe(pd.read_csv(outputs[DETECTIONS_CSV]), hide_index=True, height=200)
    columns = st.columns(4)
    for column, (label, file, mime) in zip(columns, [
            ("Detections CSV", DETECTIONS_CSV, "text/csv"),
            ("COCO JSON", DETECTIONS_COCO, "application/json"),
            ("Annotated images (zip)", ANNOTATED_ZIP, "application/zip"),
            ("Problem report (CSV)", PROBLEMS_CSV, "text/csv")]):
        if file in outputs:
            column.download_button(label, outputs[file].read_bytes, file_name=file, mime=mime,
                                   key=f"det_batch_{job.id}_{file}")


with st.expander("Batch: a zip or many photos as a background job", icon=":material/dynamic_feed:",
                 key="det_batch_expander"):
    batch_files = st.file_uploader("Photos or zips", type=IMAGE_TYPES + ["zip"], accept_multiple_files=True,
                                   key="det_batch_files")
    why_disabled(None if batch_files else "Add photos or zips first.")
    if st.button("Start batch job", disabled=not batch_files, icon=":material/play_arrow:", key="det_batch_go"):
        with user_errors():
            wanted = wanted_classes(names)  # the thresholds live in the fragment above: read from the session
            submit_batch(job_manager(), active_key, backend_name, [(f.name, f.getvalue()) for f in batch_files],
                         BatchSettings(input_size, state.det_score, state.det_nms, letterbox,
                                       tuple(wanted) if wanted else None), title)
            st.toast("Batch job started; it keeps running if you leave the page.")

    for batch_job in job_manager().list(kind=kinds.DETECTION_BATCH)[:5]:
        show_batch_job(job_manager(), batch_job)
forget_deleted_notice()
