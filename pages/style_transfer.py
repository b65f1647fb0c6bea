"""Style transfer: Gatys et al. on VGG19 (book ch. 5), and the silhouette stained-glass mode."""

from pathlib import Path

import streamlit as st

from dashboard import style_adapters as ui
from dashboard.adapters import job_manager
from dashboard.widgets import job_status_line, job_stop_button, synthetic_badge, user_errors
from services.models import weights as registry
from services.style import builtin_images, masks, transfer
from services.style.losses import STYLE_LAYERS, LossWeights

STYLE_MODE, SILHOUETTE_MODE = "Style transfer", "Silhouette mosaic"
RESOLUTION_CHOICES = (64, 128, 256, 512, 1024)

st.title(":material/palette: Style transfer")
st.caption("Neural style transfer (Gatys et al.) on VGG19 as in book chapter 5: the picture itself is "
           "optimised so its VGG19 features keep the content and its Gram matrices match the style.")
manager = job_manager()


# --- VGG19 weights --------------------------------------------------------------------------

def download_progress() -> None:
    job = manager.list(kind="weights-download")[0]
    job_status_line(job)
    job_stop_button(manager, job, "download-stop")
    if not job.active and st.session_state.get("download_live"):
        st.session_state["download_live"] = False
        st.rerun(scope="app")


def weights_panel() -> str | None:
    """Shows where the VGG19 weights stand; returns the weights a run will use ("imagenet", or
    "random" when explicitly switched on), None while a run may not start."""
    status = registry.weights_status("vgg19")
    if status.usable:
        st.caption(f":material/check_circle: {status.reason}")
        return registry.IMAGENET
    st.warning(f"**VGG19 ImageNet weights are not available.** {status.reason}\n\n{status.fix}",
               icon=":material/warning:")
    columns = st.columns(2)
    with columns[0]:
        if status.state == registry.DOWNLOADABLE and st.button("Download VGG19 weights", icon=":material/download:"):
            manager.submit("weights-download", "Download VGG19 weights", registry.download_job("vgg19"),
                           {"backbone": "vgg19"})
        downloads = manager.list(kind="weights-download")[:1]
        if downloads:
            st.session_state["download_live"] = downloads[0].active
            st.fragment(download_progress, run_every=1.0 if downloads[0].active else None)()
    with columns[1]:
        upload = st.file_uploader("…or upload vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", type=["h5"])
        if upload is not None and st.button("Check and install this file", icon=":material/upload:"):
            with user_errors(), st.spinner("Loading the file into VGG19 to check it…"):
                registry.install_weights_file("vgg19", upload, original_name=upload.name)
                st.rerun()
    use_random = st.toggle("Use random (untrained) VGG19 weights instead",
                           help="Only to try the page: untrained features do not capture style, and every "
                                "result is labelled RANDOM WEIGHTS.", key="style_random_weights")
    return registry.RANDOM if use_random else None


weights = weights_panel()
weights_ready, use_random = weights is not None, weights == registry.RANDOM


# --- pictures -------------------------------------------------------------------------------

def dataset_tile():
    """A tile from one of the lab's datasets (a fun demo, labelled when the data is synthetic)."""
    from services.datasets.sources import list_datasets

    datasets = {info.name: info for info in list_datasets()}
    name = st.selectbox("Dataset", list(datasets), format_func=lambda n: datasets[n].title, key="tile_dataset")
    with user_errors():
        class_folder = st.selectbox("Class", ui.dataset_classes(name), key="tile_class")
        tiles = ui.class_tiles(name, class_folder)
        if not tiles:
            st.info("No readable tiles in this class folder.")
            return None
        index = st.slider("Tile", 1, len(tiles), 1, key="tile_index") - 1
        if datasets[name].is_synthetic:
            synthetic_badge()
        decoded = ui.decode_upload(Path(tiles[index]).read_bytes())
        return decoded.pixels
    return None


def picture(label: str, builtins: dict, loader, key: str, *, tiles: bool = False):
    """A built-in, uploaded (or dataset-tile) RGB picture; None when nothing usable is chosen."""
    sources = ["Built-in", "Upload"] + (["Dataset tile"] if tiles else [])
    source = st.radio(f"{label} source", sources, horizontal=True, key=f"{key}_source")
    if source == "Dataset tile":
        return dataset_tile()
    if source == "Built-in":
        name = st.selectbox(label, list(builtins), key=f"{key}_builtin")
        if builtins[name].generated:
            st.caption(f":orange-badge[:material/science: generated] {builtins[name].description}, drawn by "
                       "the dashboard (no artwork).")
        return loader(name)
    upload = st.file_uploader(f"{label} image", type=ui.UPLOAD_TYPES, key=f"{key}_upload")
    if upload is None:
        return None
    with user_errors():
        decoded = ui.decode_upload(upload.getvalue())
        for note in decoded.notes:
            st.caption(f":material/info: {note}")
        return decoded.pixels
    return None


def silhouette_picture():
    """A validated silhouette (black shape on white) from the horse, an upload or a photo."""
    source = st.radio("Silhouette source", ["Built-in horse", "Upload", "From a photo"], horizontal=True,
                      key="silhouette_source")
    raw = None
    if source == "Built-in horse":
        raw = ui.builtin_silhouette("Horse (scikit-image)")
    elif source == "Upload":
        upload = st.file_uploader("Silhouette (black shape on white)", type=ui.UPLOAD_TYPES, key="silhouette_upload")
        with user_errors():
            raw = ui.decode_upload(upload.getvalue()).pixels if upload is not None else None
    else:
        photo = picture("Photo", builtin_images.CONTENT_IMAGES, ui.builtin_content, "silhouette_photo")
        if photo is not None:
            raw = derived_silhouette(photo)
    if raw is None:
        return None
    with user_errors():
        checked = masks.validate_mask(raw)
        for note in checked.notes:
            st.caption(f":material/info: {note}")
        st.image(masks.mask_preview(checked.mask), caption="Silhouette used", width=240)
        return checked.mask
    return None


def derived_silhouette(photo):
    method = st.radio("Method", ["Otsu threshold", "GrabCut from a rectangle"], horizontal=True)
    with user_errors():
        if method == "Otsu threshold":
            derived = masks.otsu_silhouette(photo, invert=st.checkbox("Swap shape and background"))
        else:
            height, width = photo.shape[:2]
            x0, x1 = st.slider("Rectangle left/right (px)", 0, width, (width // 8, width * 7 // 8))
            y0, y1 = st.slider("Rectangle top/bottom (px)", 0, height, (height // 8, height * 7 // 8))
            with st.spinner("GrabCut…"):
                derived = masks.grabcut_silhouette(photo, (x0, y0, x1 - x0, y1 - y0))
        st.image([photo, masks.mask_preview(derived)], caption=["Photo", "Derived silhouette"], width=240)
        if st.checkbox("Use this silhouette", key="accept_silhouette"):
            return derived
        st.info("Tick “Use this silhouette” to accept the preview.")
    return None


mode = st.segmented_control("Mode", [STYLE_MODE, SILHOUETTE_MODE], default=STYLE_MODE, key="style_mode") or STYLE_MODE
left, right = st.columns(2)
silhouette = None
with left:
    st.subheader("Content")
    if mode == STYLE_MODE:
        content = picture("Content", builtin_images.CONTENT_IMAGES, ui.builtin_content, "content", tiles=True)
        if content is not None:
            st.image(content, width=320)
    else:
        silhouette = silhouette_picture()
        content = masks.mask_preview(silhouette) if silhouette is not None else None
with right:
    st.subheader("Style")
    style = picture("Style", builtin_images.STYLE_IMAGES, ui.builtin_style, "style")
    if style is not None:
        st.image(style, width=320)


# --- settings -------------------------------------------------------------------------------

def settings_form() -> tuple[transfer.StyleSettings, float]:
    default_side = transfer.default_max_side()
    with st.expander("Settings (the book's values are the defaults)", icon=":material/tune:"):
        columns = st.columns(4)
        side = columns[0].selectbox("Longest side (px)", RESOLUTION_CHOICES,
                                    index=RESOLUTION_CHOICES.index(default_side), key="style_side",
                                    help="256 on CPU, 512 on GPU by default; 64/128 for quick looks.")
        steps = columns[1].number_input("Steps", 1, 5000, 200, key="style_steps")
        preview_every = columns[2].number_input("Preview every N steps", 1, 1000, 20, key="style_preview_every")
        coarse = columns[3].checkbox("Coarse-to-fine", help="Half the steps at half resolution, then full.")
        columns = st.columns(3)
        style_weight = columns[0].number_input("Style weight", 0.0, value=1e-2, format="%.4g", key="w_style")
        content_weight = columns[1].number_input("Content weight", 0.0, value=1e4, format="%.4g", key="w_content")
        tv_weight = columns[2].number_input("Total-variation weight", 0.0, value=30.0, format="%.4g", key="w_tv")
        st.caption("Style layer weights")
        layer_columns = st.columns(len(STYLE_LAYERS))
        layer_weights = {name: column.number_input(name, 0.0, value=1.0, key=f"w_{name}")
                         for name, column in zip(STYLE_LAYERS, layer_columns)}
        columns = st.columns(4)
        learning_rate = columns[0].number_input("Adam learning rate", 1e-5, 1.0, 0.02, format="%.4g")
        beta_1 = columns[1].number_input("Adam beta_1", 0.0, 0.999, 0.99, format="%.3f")
        epsilon = columns[2].number_input("Adam epsilon", 1e-8, 10.0, 0.1, format="%.4g")
        xla = columns[3].selectbox("XLA compile", ["auto", "on", "off"], help="auto: on GPU only.")
        feather = st.slider("Feathered mask edge (px)", 0.0, 5.0, 0.0, 0.5) if mode == SILHOUETTE_MODE else 0.0
    settings = transfer.StyleSettings(
        max_side=int(side), steps=int(steps), preview_every=int(preview_every), learning_rate=learning_rate,
        beta_1=beta_1, epsilon=epsilon, coarse_to_fine=coarse,
        loss=LossWeights(style_weight, content_weight, tv_weight, layer_weights),
        jit_compile={"auto": None, "on": True, "off": False}[xla],
        weights=registry.RANDOM if use_random else registry.IMAGENET)
    return settings, feather


settings, feather = settings_form()
ready = weights_ready and content is not None and style is not None
if st.button("Start", type="primary", icon=":material/play_arrow:", disabled=not ready):
    with user_errors():
        title = f"{mode} · {settings.max_side} px · {settings.steps} steps" + (" · RANDOM WEIGHTS" if use_random else "")
        inputs = transfer.StyleJobInputs(content, style, settings, mask=silhouette, feather=feather)
        st.session_state["style_job"] = transfer.start_style_job(manager, inputs, title=title)
if not weights_ready:
    st.caption("Start needs VGG19 weights (or the explicit random-weights switch).")


# --- the running / latest job ---------------------------------------------------------------

def show_result(state) -> None:
    params = state.params
    if params.get("random_weights"):
        st.error("RANDOM WEIGHTS: VGG19 was not pretrained; this is not a real style transfer.",
                 icon=":material/science:")
    preview = ui.job_file(manager, state, "result") or ui.job_file(manager, state, "preview")
    if preview is None:
        return
    step = (state.result or {}).get("preview_step")
    caption = "Result" if ui.job_file(manager, state, "result") else f"Preview at step {step}"
    if params.get("silhouette") and ui.job_file(manager, state, "result_masked"):
        columns = st.columns(3)
        columns[0].image(str(preview), caption=caption)
        columns[1].image(str(ui.job_file(manager, state, "style_masked")), caption="Style image masked directly")
        columns[2].image(str(ui.job_file(manager, state, "result_masked")), caption="NST result masked")
    else:
        st.image(str(preview), caption=caption, width=512)
    if ui.job_file(manager, state, "result"):
        download = ui.job_file(manager, state, "result_masked") or preview
        st.download_button("Download result (PNG)", download.read_bytes(), file_name=f"style-{state.id}.png",
                           mime="image/png", icon=":material/download:", key=f"download-{state.id}")


def live_view() -> None:
    state = manager.get(st.session_state["style_job"])
    if state is None:
        return
    job_status_line(state)
    job_stop_button(manager, state, "style-stop")
    result = state.result if isinstance(state.result, dict) else {}
    if result.get("seconds_to_first_preview") is not None:
        st.caption(f"First preview after {result['seconds_to_first_preview']} s · {result.get('weights_label', '')}")
    show_result(state)
    losses = ui.loss_frame(state)
    if not losses.empty:
        st.line_chart(losses, x_label="step", y_label="weighted loss")
    if not state.active and st.session_state.get("style_live"):
        st.session_state["style_live"] = False
        st.rerun(scope="app")


jobs = ui.style_jobs(manager)
if "style_job" not in st.session_state and jobs:
    st.session_state["style_job"] = jobs[0].id  # after a reload: the newest job
if "style_job" in st.session_state:
    st.subheader("Current run")
    current = manager.get(st.session_state["style_job"])
    st.session_state["style_live"] = bool(current and current.active)
    st.fragment(live_view, run_every=1.0 if st.session_state["style_live"] else None)()


# --- gallery ----------------------------------------------------------------------------------

finished = [job for job in jobs if ui.job_file(manager, job, "result")]
if finished:
    st.subheader("Gallery")
    columns = st.columns(4)
    for index, job in enumerate(finished):
        image = ui.job_file(manager, job, "result_masked") or ui.job_file(manager, job, "result")
        label = " · RANDOM WEIGHTS" if job.params.get("random_weights") else ""
        columns[index % 4].image(str(image), caption=f"{job.title} · {job.status}{label}")
