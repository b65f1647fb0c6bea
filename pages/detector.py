"""Object detector: YOLO (Darknet or ONNX) on photos, on TensorFlow or OpenCV (book ch. 6-7).

The network runs once per image, model, backend and input size; its candidates are kept in the
session, so the score / NMS thresholds and the class filter redraw the picture at once.
"""

from __future__ import annotations

import functools
import hashlib

import pandas as pd
import streamlit as st

from dashboard import detection_adapters as adapters
from dashboard.adapters import job_manager
from dashboard.widgets import job_status_line, job_stop_button, user_errors
from services.detection import registry
from services.detection.annotate import annotate
from services.detection.batch import JOB_KIND, BatchSettings, batch_outputs, submit_batch
from services.detection.decode import PRESETS, select
from services.detection.detector import compare_backends, run_detection
from services.detection.exports import counts_per_class, detections_table, to_coco_results, to_csv
from services.detection.models import parse_names
from services.detection.samples import SAMPLES
from services.errors import UserFacingError
from services.images import encode_png

INPUT_SIZES = (320, 416, 608)
IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"]
MAX_SIDE = 4096
CACHE_LIMIT = 40
DOWNLOAD_KIND = "detection-download"

state = st.session_state
state.setdefault("det_cache", {})
state.setdefault("det_network_runs", 0)
state.setdefault("det_score", PRESETS[1].score)
state.setdefault("det_nms", PRESETS[1].nms)
if "det_model_next" in state:  # set by buttons that pick a model; applied before the widget exists
    state.det_model = state.pop("det_model_next")


# ---------------------------------------------------------------- model
def model_options() -> dict[str, str]:
    options = {key: spec.title for key, spec in registry.REGISTRY.items()}
    options[registry.DEMO_KEY] = registry.DEMO_TITLE
    options.update({f"upload:{stem}": f"{stem} (uploaded Darknet)" for stem in registry.uploaded_models()})
    options.update({f"onnx:{stem}": f"{stem} (uploaded ONNX)" for stem in registry.onnx_models()})
    return options


def load_backend(key: str, backend_name: str):
    """(backend, names, title, random weights) of ``key``; raises UserFacingError."""
    if key.startswith("onnx:"):
        backend = adapters.onnx_backend(key.split(":", 1)[1])
        return backend, backend.names, key.split(":", 1)[1], False
    model = adapters.darknet_model(key)
    return adapters.darknet_backend(key, backend_name), model.names, model.title, model.random_weights


def active_backend(key: str, backend_name: str):
    """The chosen model, or the previous working one when the choice cannot be loaded."""
    try:
        with st.spinner("Loading the model…"):
            loaded = load_backend(key, backend_name)
        state.det_active = (key, backend_name)
        return loaded
    except UserFacingError as error:
        st.error(str(error), icon=":material/error:")
        if key in registry.REGISTRY:
            st.button(f"Try the page with '{registry.DEMO_TITLE}'", icon=":material/science:",
                      on_click=lambda: state.update(det_model_next=registry.DEMO_KEY))
        previous = state.get("det_active")
        if previous and previous != (key, backend_name):
            st.info(f"Still using the previous model: {model_options().get(previous[0], previous[0])} "
                    f"on {previous[1]}.")
            return load_backend(*previous)
        return None


def apply_preset() -> None:
    preset = next(p for p in PRESETS if p.name == state.det_preset)
    state.det_score, state.det_nms = preset.score, preset.nms


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
            decoded = adapters.decoded_upload(digest, data, MAX_SIDE)
        except UserFacingError as error:
            st.error(f"{upload.name}: {error}", icon=":material/broken_image:")
            continue
        for note in decoded.notes:
            st.caption(f"{upload.name}: {note}")
        images.append((digest, upload.name, decoded.pixels))
    for name in state.get("det_samples") or []:
        images.append((f"sample:{name}", f"{name}.png", adapters.sample_pixels(name)))
    return images


def network_result(key: tuple, compute):
    """``compute()`` once per ``key`` in this session (the network runs only on a cache miss)."""
    cache = state.det_cache
    if key not in cache:
        cache[key] = compute()
        state.det_network_runs += 1
        while len(cache) > CACHE_LIMIT:
            cache.pop(next(iter(cache)))
    return cache[key]


def candidates_for(backend, model_key: str, image_id: str, name: str, pixels, size: int, letterbox: bool):
    """The network's candidates on one image, cached per model, backend, size and letterbox."""
    return network_result((model_key, backend.name, size, letterbox, image_id),
                          lambda: run_detection(backend, pixels, size, name=name, letterbox=letterbox))


# ---------------------------------------------------------------- page
st.title(":material/center_focus_strong: Object detector (YOLO)")
st.caption("Book ch. 6-7: Darknet YOLO on COCO with OpenCV's `readNetFromDarknet`, and the same "
           "network rebuilt in Keras so it runs on TensorFlow (GPU when present).")

options = model_options()
controls = st.columns([3, 2, 2, 1.4])
model_key = controls[0].selectbox("Model", list(options), format_func=options.get, key="det_model")
is_onnx = model_key.startswith("onnx:")
backend_name = controls[1].radio("Backend", ["OpenCV ONNX"] if is_onnx else ["TensorFlow", "OpenCV"],
                                 horizontal=True, key="det_backend_onnx" if is_onnx else "det_backend")
input_size = controls[2].radio("Input size", INPUT_SIZES, index=1, horizontal=True, key="det_size")
letterbox = controls[3].toggle("Letterbox", key="det_letterbox",
                               help="Keep the aspect ratio with grey borders instead of the book's plain resize.")

loaded = active_backend(model_key, backend_name)

with st.expander("Add a model: download weights, upload Darknet cfg + weights + names, or ONNX",
                 icon=":material/add_circle:"):
    download_tab, darknet_tab, onnx_tab = st.tabs(["Download weights", "Upload Darknet", "Upload ONNX"])
    with download_tab:
        manager = job_manager()
        for spec in registry.REGISTRY.values():
            message = registry.missing_files_message(spec)
            if message is None:
                st.markdown(f":material/check: **{spec.title}**: weights at `{spec.weights_path}`")
            elif st.button(f"Download {spec.weights_name} ({spec.weights_size / 1e6:.0f} MB)",
                           key=f"det_dl_{spec.key}", icon=":material/download:"):
                manager.submit(DOWNLOAD_KIND, f"download {spec.weights_name}",
                               lambda context, spec=spec: str(registry.fetch_weights(
                                   spec, lambda done, total: context.progress(done / (total or spec.weights_size),
                                                                              f"{done / 1e6:.0f} MB"),
                                   context.stop_event)))
        for job in manager.list(kind=DOWNLOAD_KIND)[:3]:
            job_status_line(job)
            job_stop_button(manager, job, "det-dl")
    with darknet_tab:
        cfg_file = st.file_uploader("cfg", type=["cfg"], key="det_up_cfg")
        weights_file = st.file_uploader("weights", type=["weights"], key="det_up_weights")
        names_file = st.file_uploader("names (one class per line)", type=["names", "txt"], key="det_up_names")
        if st.button("Check and add", disabled=not (cfg_file and weights_file and names_file), key="det_up_go"):
            with user_errors():
                model = registry.save_upload((cfg_file.name, cfg_file.getvalue()),
                                             (weights_file.name, weights_file.getvalue()),
                                             (names_file.name, names_file.getvalue()))
                state.det_model_next = model.key
                st.rerun()
    with onnx_tab:
        onnx_file = st.file_uploader("ONNX detector (YOLOv5/YOLOv8 export layout)", type=["onnx"], key="det_up_onnx")
        onnx_names = st.file_uploader("names (default: COCO's 80 classes)", type=["names", "txt"],
                                      key="det_up_onnx_names")
        if st.button("Check and add", disabled=onnx_file is None, key="det_up_onnx_go"):
            with user_errors():
                names = (parse_names(onnx_names.getvalue().decode("utf-8", "replace"), onnx_names.name)
                         if onnx_names else registry.coco_names())
                state.det_model_next = "onnx:" + registry.save_onnx(onnx_file.name, onnx_file.getvalue(), names)
                st.rerun()

if loaded is None:
    st.stop()
backend, names, title, random_weights = loaded
active_key = state.det_active[0]  # the previous model when the chosen one failed to load
is_onnx = active_key.startswith("onnx:")
if is_onnx and backend.input_size != input_size:
    st.caption(f"This ONNX model declares a {backend.input_size} x {backend.input_size} input; that size is used.")
    input_size = backend.input_size
if random_weights:
    st.warning(f":orange-badge[:material/science: {registry.DEMO_TITLE}] The weights are random numbers in "
               "the exact Darknet layout: the page works end to end, but boxes, classes and scores mean "
               "nothing. Download or upload real weights for real detections.", icon=":material/science:")

thresholds = st.columns([2, 2, 2, 3])
thresholds[0].selectbox("Preset", [p.name for p in PRESETS], index=1, key="det_preset", on_change=apply_preset,
                        help="\n".join(f"- **{p.name}**: score {p.score}, NMS {p.nms} ({p.note})" for p in PRESETS))
score = thresholds[1].slider("Score threshold", 0.0, 1.0, step=0.01, key="det_score")
nms = thresholds[2].slider("NMS IoU threshold", 0.0, 1.0, step=0.01, key="det_nms")
class_filter = thresholds[3].multiselect("Classes (empty: all)", names, key="det_classes")
wanted = [names.index(n) for n in class_filter] or None

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

compare = not is_onnx and st.toggle(
    "Run TensorFlow and OpenCV side by side", key="det_compare",
    help="Runs both backends on the first image and shows how far their raw outputs differ.")

tables = []
for image_id, name, pixels in images:
    with user_errors():
        result = candidates_for(backend, active_key, image_id, name, pixels, input_size, letterbox)
        chosen = select(result.candidates, score, nms, wanted)
        table = detections_table(name, chosen, names)
        tables.append(table)
        annotated = annotate(pixels, chosen, names)
        st.subheader(name, divider="gray")
        left, right = st.columns([3, 2])
        left.image(annotated, caption=f"{name}: {len(chosen)} detections", width="stretch")
        left.download_button("Annotated PNG", functools.partial(encode_png, annotated),
                             file_name=f"{name.rsplit('.', 1)[0]}_detections.png", mime="image/png",
                             key=f"det_png_{image_id}", icon=":material/download:")
        right.markdown(f"**{len(chosen)} detections** · {len(result.candidates)} candidates cached · "
                       f"{backend.name} at {input_size}")
        right.dataframe(table.drop(columns=["image"]), hide_index=True, key=f"det_table_{image_id}")
        right.dataframe(counts_per_class(table), hide_index=True)
        timing = right.columns(3)
        for column, (stage, ms) in zip(timing, result.timings_ms.items()):
            column.metric(stage, f"{ms:.0f} ms")

if compare and images:
    with user_errors(), st.spinner("Running both backends…"):
        comparison = network_result(
            ("compare", active_key, input_size, letterbox, images[0][0]),
            lambda: compare_backends(adapters.darknet_backend(active_key, "TensorFlow"),
                                     adapters.darknet_backend(active_key, "OpenCV"), images[0][2], input_size,
                                     letterbox))
        st.subheader("TensorFlow vs OpenCV", divider="gray")
        cols = st.columns(4)
        cols[0].metric("max |difference| of raw outputs", f"{comparison.max_abs_difference:.2e}")
        for column, (name, ms) in zip(cols[1:], comparison.milliseconds.items()):
            column.metric(f"{name} inference", f"{ms:.0f} ms")
        ratio = comparison.milliseconds["TensorFlow"] / max(comparison.milliseconds["OpenCV"], 1e-9)
        cols[3].metric("TensorFlow / OpenCV", f"{ratio:.2f}")

if tables:
    everything = pd.concat(tables, ignore_index=True)
    st.subheader("All detections", divider="gray")
    downloads = st.columns(2)
    downloads[0].download_button("Detections CSV", to_csv(everything), file_name="detections.csv",
                                 mime="text/csv", icon=":material/table:", key="det_csv")
    downloads[1].download_button("COCO results JSON", to_coco_results(everything, names),
                                 file_name="detections_coco.json", mime="application/json",
                                 icon=":material/data_object:", key="det_json")
    st.caption(f"{len(everything)} detections from {len(tables)} image(s) in the downloads.")


# ---------------------------------------------------------------- batch
with st.expander("Batch: a zip or many photos as a background job", icon=":material/dynamic_feed:"):
    batch_files = st.file_uploader("Photos or zips", type=IMAGE_TYPES + ["zip"], accept_multiple_files=True,
                                   key="det_batch_files")
    if st.button("Start batch job", disabled=not batch_files, icon=":material/play_arrow:", key="det_batch_go"):
        with user_errors():
            submit_batch(job_manager(), backend, names, [(f.name, f.getvalue()) for f in batch_files],
                         BatchSettings(input_size, score, nms, letterbox, tuple(wanted) if wanted else None), title)
            st.toast("Batch job started; it keeps running if you leave the page.")

    @st.fragment(run_every=1.0 if any(j.active for j in job_manager().list(kind=JOB_KIND)) else None)
    def batch_jobs() -> None:
        manager = job_manager()
        for job in manager.list(kind=JOB_KIND)[:5]:
            job_status_line(job)
            job_stop_button(manager, job, "det-batch")
            if job.status == "finished":
                outputs = batch_outputs(manager, job.id)
                if "detections.csv" in outputs:
                    st.dataframe(pd.read_csv(outputs["detections.csv"]), hide_index=True, height=200)
                columns = st.columns(3)
                for column, (label, file, mime) in zip(columns, [
                        ("Detections CSV", "detections.csv", "text/csv"),
                        ("COCO JSON", "detections_coco.json", "application/json"),
                        ("Annotated images (zip)", "annotated.zip", "application/zip")]):
                    if file in outputs:
                        column.download_button(label, outputs[file].read_bytes, file_name=file, mime=mime,
                                               key=f"det_batch_{job.id}_{file}")

    batch_jobs()
