"""Style transfer: fast arbitrary style transfer (Magenta) and Gatys et al. on VGG19 (book ch. 5),
and the silhouette stained-glass mode. Every run is a background job in a worker process; this
page never imports TensorFlow."""

import streamlit as st

from dashboard import feedback
from dashboard import style_adapters as ui
from dashboard.adapters import job_manager
from dashboard.widgets import (STATUS_ICONS, job_stop_button, link_to_page, live_job, mark_live, md, synthetic_badge,
                               user_errors)
from services import provenance
from services.jobs import kinds
from services.models import weights as registry
from services.style import builtin_images, fast_models, masks, submit
from services.style.losses import STYLE_LAYERS, LossWeights
from services.style.settings import FAST_SIDES, FastSettings, StyleSettings, default_max_side

STYLE_MODE, SILHOUETTE_MODE = "Style transfer", "Silhouette mosaic"
FAST_ENGINE, GATYS_ENGINE, BOTH_ENGINES = "Fast (Magenta)", "Gatys (VGG19)", "Both, side by side"
ENGINES_OF = {FAST_ENGINE: [submit.FAST], GATYS_ENGINE: [submit.GATYS], BOTH_ENGINES: [submit.FAST, submit.GATYS]}
ENGINE_TITLES = {submit.FAST: "Fast (Magenta)", submit.GATYS: "Gatys (VGG19)"}
RESOLUTION_CHOICES = (64, 128, 256, 512, 1024)

st.title(":material/palette: Style transfer")
st.caption("**Fast** arbitrary style transfer (Ghiasi et al. 2017, Magenta's networks): one pass, about a "
           "second on a CPU. **Gatys** (book chapter 5): the picture itself is optimised so its VGG19 features "
           "keep the content and its Gram matrices match the style; minutes on a CPU.")
manager = job_manager()


# --- job status, shared by every panel ----------------------------------------------------------

def job_line(state, stop_key: str) -> None:
    """Progress, status and message of one job; its error with a Dismiss button."""
    icon = STATUS_ICONS.get(state.status, "")
    st.progress(state.progress, text=f"{icon} **{md(state.status_text)}** · {md(state.title)}"
                + (f" · {md(state.message)}" if state.message else ""))
    job_stop_button(manager, state, stop_key, recovery=False)  # run_view has Resume and Retry
    if state.error and not state.dismissed:
        st.error(md(state.error), icon=":material/error:")
        if state.log_tail:
            with st.expander("End of the job's log"):
                st.code(state.log_tail, language=None)
        dismiss_button(state)


def dismiss_button(state) -> None:
    """Dismiss for a job's error: the page shows it no more."""
    if state.error and not state.dismissed and st.button("Dismiss", key=f"dismiss-{state.id}",
                                                         icon=":material/close:"):
        manager.dismiss(state.id)
        st.rerun()


def latest(jobs):
    return jobs[0] if jobs else None


def download_panel(jobs, key: str) -> None:
    """The newest download job of one kind, live while it runs; its error until dismissed."""
    state = latest(jobs)
    if state is None or (state.dismissed and not state.active):
        return
    live_job(manager, state.id, f"{key}-stop", recovery=False)
    dismiss_button(state)


# --- the engines' files -------------------------------------------------------------------------

def fast_panel(variant: str) -> bool:
    """Where the Magenta files stand; True when the fast engine can run."""
    status = fast_models.status(variant)
    if status.usable:
        st.caption(f":material/check_circle: {status.reason}")
        return True
    st.info(f"**{status.reason}**\n\n{status.fix}", icon=":material/download:")
    if st.button("Download the Magenta style networks", icon=":material/download:", key="fast_download"):
        with user_errors():
            mark_live(submit.submit_fast_download(manager, variant))
            feedback.toast("Downloading the Magenta style networks: progress below.", "info")
    download_panel(manager.list(kind=kinds.STYLE_MODEL_DOWNLOAD), "fast_download")
    return False


def vgg19_panel() -> str | None:
    """Where the VGG19 weights stand; the weights a Gatys run will use ("imagenet", or "random"
    when explicitly switched on), None while a Gatys run may not start."""
    status = registry.weights_status(submit.VGG19)
    if status.usable:
        st.caption(f":material/check_circle: VGG19: {status.reason}")
        return provenance.IMAGENET
    st.warning(f"**VGG19 ImageNet weights are not available.** {status.reason}\n\n{status.fix}",
               icon=":material/warning:")
    link_to_page("transfer_learning.py", "Upload the VGG19 weights file on Transfer learning (Backbones and their "
                 "ImageNet weights)", icon=":material/upload:")
    if status.state == registry.DOWNLOADABLE and st.button("Download VGG19 weights", icon=":material/download:"):
        with user_errors():
            mark_live(submit.submit_vgg19_download(manager))
            feedback.toast("Downloading the VGG19 weights: progress below.", "info")
    vgg19_downloads = [job for job in manager.list(kind=kinds.WEIGHTS_DOWNLOAD) if submit.is_vgg19_download(job)]
    download_panel(vgg19_downloads, "vgg19_download")
    use_random = st.toggle("Use random (untrained) VGG19 weights instead",
                           help="Only to try the page: untrained features do not capture style, and every "
                                "result is marked RANDOM WEIGHTS.", key="style_random_weights")
    return provenance.RANDOM if use_random else None


default_engine = FAST_ENGINE if fast_models.status().usable else GATYS_ENGINE
engine_choice = st.segmented_control("Engine", list(ENGINES_OF), default=default_engine, key="style_engine") \
    or default_engine
engines = ENGINES_OF[engine_choice]
fast_variant = st.session_state.get("fast_variant", fast_models.DEFAULT_VARIANT)
fast_ready = fast_panel(fast_variant) if submit.FAST in engines else False
gatys_weights = vgg19_panel() if submit.GATYS in engines else None
use_random = gatys_weights == provenance.RANDOM


# --- pictures -----------------------------------------------------------------------------------

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
        return ui.tile_pixels(tiles[index])
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
        st.image(ui.show(masks.mask_preview(checked.mask)), caption="Silhouette used", width=240)
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
        st.image([ui.show(photo), ui.show(masks.mask_preview(derived))], caption=["Photo", "Derived silhouette"],
                 width=240)
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
            st.image(ui.show(content), width=320)
    else:
        silhouette = silhouette_picture()
        content = masks.mask_preview(silhouette) if silhouette is not None else None
with right:
    st.subheader("Style")
    style = picture("Style", builtin_images.STYLE_IMAGES, ui.builtin_style, "style")
    if style is not None:
        st.image(ui.show(style), width=320)


# --- settings -----------------------------------------------------------------------------------

def fast_settings_form() -> FastSettings:
    with st.expander("Fast engine settings", icon=":material/bolt:", expanded=True):
        columns = st.columns(3)
        strength = columns[0].slider("Style strength", 0.0, 1.0, 1.0, 0.05, key="fast_strength",
                                     help="Blends the style's bottleneck with the content picture's own, and the "
                                          "rendered picture with the content picture: 0 keeps the content.")
        side = columns[1].selectbox("Longest side (px)", FAST_SIDES, index=FAST_SIDES.index(384), key="fast_side",
                                    help="The network works at 384x384; other sizes are resized to and from it.")
        variant = columns[2].selectbox("Network", list(fast_models.TRANSFER_VARIANTS), key="fast_variant",
                                       help="f16: float16 weights (better); int8: quantized (smaller).")
    return FastSettings(max_side=int(side), strength=float(strength), variant=variant)


def gatys_settings_form() -> StyleSettings:
    default_side = default_max_side()
    with st.expander("Gatys settings (the book's values are the defaults)", icon=":material/tune:"):
        columns = st.columns(4)
        side = columns[0].selectbox("Longest side (px)", RESOLUTION_CHOICES,
                                    index=RESOLUTION_CHOICES.index(default_side), key="style_side",
                                    help="256 on CPU, 512 on GPU by default; 64/128 for quick looks.")
        steps = columns[1].number_input("Steps", 1, 100_000, 200, key="style_steps")
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
    return StyleSettings(
        max_side=int(side), steps=int(steps), preview_every=int(preview_every), learning_rate=learning_rate,
        beta_1=beta_1, epsilon=epsilon, coarse_to_fine=coarse,
        loss=LossWeights(style_weight, content_weight, tv_weight, layer_weights),
        jit_compile={"auto": None, "on": True, "off": False}[xla],
        weights=provenance.RANDOM if use_random else provenance.IMAGENET)


fast_settings = fast_settings_form() if submit.FAST in engines else None
gatys_settings = gatys_settings_form() if submit.GATYS in engines else None
feather = st.slider("Feathered mask edge (px)", 0.0, 5.0, 0.0, 0.5, key="style_feather") \
    if mode == SILHOUETTE_MODE else 0.0

ready_of = {submit.FAST: fast_ready, submit.GATYS: gatys_weights is not None}
pictures_ready = content is not None and style is not None
ready = pictures_ready and all(ready_of[engine] for engine in engines)
if st.button("Start", type="primary", icon=":material/play_arrow:", disabled=not ready):
    started = {}
    with user_errors():
        for engine in engines:
            if engine == submit.FAST:
                title = f"{mode} · fast · {fast_settings.max_side} px · strength {fast_settings.strength:.2f}"
                started[engine] = submit.submit_fast(manager, content, style, fast_settings, title=title,
                                                     mask=silhouette, feather=feather)
            else:
                title = (f"{mode} · Gatys · {gatys_settings.max_side} px · {gatys_settings.steps} steps"
                         + (" · RANDOM WEIGHTS" if use_random else ""))
                started[engine] = submit.submit_gatys(manager, content, style, gatys_settings, title=title,
                                                      mask=silhouette, feather=feather)
    if started:
        st.session_state["style_current"] = started
        feedback.toast(f"Started {' and '.join(ENGINE_TITLES[engine] for engine in started)}: progress below.")
if not ready:
    missing = [ENGINE_TITLES[engine] for engine in engines if not ready_of[engine]]
    if missing:
        st.caption(f"Start needs the files of: {', '.join(missing)} (see above"
                   + (", or the explicit random-weights switch" if submit.GATYS in engines else "") + ").")


# --- the running / latest jobs ------------------------------------------------------------------

def show_result(state) -> None:
    """The preview or result (random runs marked in the image), silhouette maskings, download."""
    if ui.is_random(state):
        st.error("RANDOM WEIGHTS: VGG19 was not pretrained; this is not a real style transfer.",
                 icon=":material/science:")
    finished = manager.file(state, "result") is not None
    key = "result" if finished else "preview"
    picture_shown = ui.job_picture(manager, state, key)
    if picture_shown is None:
        return
    step = state.result.get("preview_step") if isinstance(state.result, dict) else None
    caption = "Result" if finished else f"Preview at step {step}"
    masked = ui.job_picture(manager, state, "result_masked") if state.params.get("silhouette") else None
    if masked is not None:
        columns = st.columns(3)
        columns[0].image(picture_shown, caption=caption)
        columns[1].image(ui.job_picture(manager, state, "style_masked"), caption="Style image masked directly")
        columns[2].image(masked, caption="Stylised result masked")
    else:
        st.image(picture_shown, caption=caption, width=512)
    if finished:
        download_key = "result_masked" if masked is not None else "result"
        label = "Download the masked result (PNG)" if masked is not None else "Download result (PNG)"
        st.download_button(label, ui.download_png(manager, state, download_key), file_name=f"style-{state.id}.png",
                           mime="image/png", icon=":material/download:", key=f"download-{state.id}")


def run_view(job_id: str):
    """One job's line, buttons, picture and losses; the job's state (None when it is gone)."""
    state = manager.get(job_id)
    if state is None:
        return None
    job_line(state, "style-stop")
    result = state.result if isinstance(state.result, dict) else {}
    if result.get("seconds_to_first_preview") is not None:
        st.caption(f"First preview after {result['seconds_to_first_preview']} s · {result.get('weights_label', '')}")
    elif state.kind == kinds.FAST_STYLE_TRANSFER and result.get("seconds") is not None:
        st.caption(f"Stylised in {result['seconds']:.2f} s ({result.get('interpreter', 'TF Lite')}, "
                   f"network at {result.get('native_side', 384)} px)")
    if state.status in ("stopped", "interrupted", "failed") and state.kind == kinds.STYLE_TRANSFER:
        if st.button("Resume", key=f"resume-{state.id}", icon=":material/play_arrow:"):
            with user_errors():
                manager.resume(state.id)
                st.rerun(scope="app")
    if state.status in ("failed", "interrupted"):
        if st.button("Retry", key=f"retry-{state.id}", icon=":material/replay:"):
            with user_errors():
                current = st.session_state["style_current"]
                engine = next((name for name, job_id in current.items() if job_id == state.id), submit.GATYS)
                st.session_state["style_current"] = {**current, engine: manager.retry(state.id)}
                st.rerun(scope="app")
    show_result(state)
    losses = ui.loss_frame(state)
    if not losses.empty:
        st.plotly_chart(ui.loss_figure(losses), key=f"losses-{state.id}")
    return state


def live_view() -> None:
    current = st.session_state["style_current"]
    columns = st.columns(len(current)) if len(current) > 1 else [st.container()]
    active = False
    for column, (engine, job_id) in zip(columns, current.items()):
        with column:
            if len(current) > 1:
                st.markdown(f"**{ENGINE_TITLES.get(engine, engine)}**")
            state = run_view(job_id)
        active = active or bool(state and state.active)
    if not active and st.session_state.get("style_live"):
        st.session_state["style_live"] = False
        st.rerun(scope="app")


jobs = ui.style_jobs(manager)
if "style_current" not in st.session_state and jobs:  # after a reload: the newest job
    st.session_state["style_current"] = {jobs[0].params.get("engine", submit.GATYS): jobs[0].id}
if st.session_state.get("style_current"):
    st.subheader("Current run")
    states = [manager.get(job_id) for job_id in st.session_state["style_current"].values()]
    st.session_state["style_live"] = any(state and state.active for state in states)
    st.fragment(live_view, run_every=1.0 if st.session_state["style_live"] else None)()


# --- gallery --------------------------------------------------------------------------------------

finished_jobs = [job for job in jobs if manager.file(job, "result") is not None]
if finished_jobs:
    st.subheader("Gallery")
    columns = st.columns(4)
    for index, job in enumerate(finished_jobs[:24]):
        key = "result_masked" if manager.file(job, "result_masked") is not None else "result"
        label = " · RANDOM WEIGHTS" if ui.is_random(job) else ""
        columns[index % 4].image(ui.job_picture(manager, job, key, max_side=320),
                                 caption=f"{job.title} · {job.status}{label}")
