"""The sections of the Dataset explorer page (kept here so the page file reads like its UI).

Nothing here imports TensorFlow: the augmentation preview asks the model service. Names that
come from files (class folders, tiles, splits) are escaped before any Markdown or HTML.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import choices
from dashboard import datasets_adapters as adapters
from dashboard.adapters import job_manager
from dashboard.auth import current_actor
from dashboard.delete_control import delete_control, show_deleted_notice
from dashboard.feedback import flash, show_flashes
from dashboard.widgets import (job_failure_banner, live_job, mark_live, md, show_image, swatches_html,
                               synthetic_badge, user_errors, why_disabled)
from services.config import check_upload, confine, display_path, get_settings
from services.datasets import job_requests, predictions, published, quality, sources, splits, tasks
from services.datasets.index import class_names, usable
from services.datasets.naming import safe_name
from services.datasets.sources import DatasetInfo
from services.errors import UserFacingError
from services.images import display_copy
from services.jobs import kinds

SECTIONS = ["Gallery", "Colour", "Quality", "Splits", "Augmentation"]
ROWS_PER_PAGE = 4
SELECTED = "explorer_selected_tile"
UPLOAD, UPLOAD_NAME = "explorer_upload", "explorer_upload_name"
CONFIRM_OVERWRITE = "explorer_split_overwrite"
PICKER, ADDED = "explorer_dataset", "explorer-added"
WATCHED = "explorer_watched_jobs"
"""Session key: ids of this session's download and import jobs, whose dataset is selected when they finish."""
ENLARGED_SIDE = 560
"""Width in pixels of a tile enlarged in the gallery's dialog."""


# ---------------------------------------------------------------- sources and jobs

def source_picker() -> DatasetInfo:
    select_finished_imports()
    datasets = sources.list_datasets()
    names = [d.name for d in datasets]
    titles = {d.name: d.title for d in datasets}
    choices.apply_selection(PICKER, names)
    chosen = st.selectbox("Dataset", names, format_func=titles.get, key=PICKER, persist_state="session")
    show_flashes(ADDED)
    with st.expander("Add a dataset: Kather 2016, NCT-CRC-HE, a folder or a zip", icon=":material/add:",
                     key="explorer_add_expander"):
        add_dataset_forms()
    show_deleted_notice()
    show_dataset_jobs()
    return next(d for d in datasets if d.name == chosen)


def delete_section(info: DatasetInfo) -> None:
    """Delete an imported or downloaded dataset (owner or administrator; never the demo set
    nor a folder registered where it lies)."""
    if sources.managed_folder(info) is None:
        return

    def delete(actor) -> None:
        if tasks.active_job(job_manager(), kinds.DATASET_INDEX, info.name) is not None:
            raise UserFacingError(f"{info.name} is being indexed; delete it when that job has finished.")
        sources.delete_dataset(info.name, actor)
        st.session_state.pop(PICKER, None)

    with st.expander("Delete this dataset", icon=":material/delete:", key="explorer_delete_expander"):
        delete_control("Delete dataset", f"the dataset {info.name!r}", sources.dataset_owner(info),
                       f"dataset-{info.name}", delete)


def _fill_upload_name() -> None:
    """A new upload proposes its file name (made safe) as the dataset name."""
    upload = st.session_state.get(UPLOAD)
    if upload is not None:
        st.session_state[UPLOAD_NAME] = safe_name(Path(upload.name).stem)


def add_dataset_forms() -> None:
    *published_tabs, folder_tab, upload_tab = st.tabs([*(f"{item.label} download" for item in published.PUBLISHED),
                                                       "Folder or zip on disk", "Upload a zip"])
    for tab, item in zip(published_tabs, published.PUBLISHED):
        with tab:
            published_panel(item)
    with folder_tab:
        st.caption("A path inside the data root (DASHBOARD_DATA_DIR): a folder of class sub-folders, or a zip "
                   "of one (the zips of the published sets are verified against their md5).")
        path = st.text_input("Path under the data root", key="explorer_add_path")
        why_disabled(None if path else "Type a path first.")
        if st.button("Add", icon=":material/folder_open:", disabled=not path):
            with user_errors():
                add_from_path(path)
    with upload_tab:
        upload = st.file_uploader("Zip of class folders", type=["zip"], key=UPLOAD, on_change=_fill_upload_name)
        name = st.text_input("Dataset name", key=UPLOAD_NAME)
        why_disabled("Upload a zip first." if upload is None else None)
        if st.button("Import", icon=":material/upload:", disabled=upload is None):
            with user_errors():
                import_upload(upload, name)


def published_panel(item: published.Published) -> None:
    """A published set: what it is, then download it or take its zip from under the data root
    (both verified against the published size and md5)."""
    st.markdown(f"**{item.file_name}** from [{item.record}]({item.url}) ({item.size_text}, md5 `{item.md5}`). "
                f"{item.citation}")
    if item.is_installed():
        st.success(f"{item.label} is installed; pick it in the Dataset list.", icon=":material/check:")
        return
    if st.button("Download, verify and extract", icon=":material/download:", key=f"published-download-{item.name}"):
        with user_errors():
            if get_settings().offline:
                raise UserFacingError(item.manual_instructions())
            start_job(job_requests.published_download(item))
    columns = st.columns([3, 1], vertical_alignment="bottom")
    path = columns[0].text_input(f"Or {item.file_name} already under the data root", key=f"published-path-{item.name}",
                                 placeholder=f"downloads/{item.file_name}")
    if columns[1].button("Verify and extract", icon=":material/folder_zip:", key=f"published-zip-{item.name}",
                         disabled=not path):
        with user_errors():
            start_job(job_requests.published_zip(item, _zip_under_data_root(path)))
    st.caption(f"Offline? {md(item.manual_instructions())}")


def _zip_under_data_root(path: str) -> str:
    """``path`` (a zip file inside the data root) relative to the data root."""
    resolved = confine(path)
    if not resolved.is_file():
        raise UserFacingError(f"{resolved.name} is not a file under the data root.")
    return resolved.relative_to(get_settings().data_root).as_posix()


def import_upload(upload, name: str) -> None:
    """Submit the uploaded zip (as the job's file; the job deletes it after the import)."""
    name = name or safe_name(Path(upload.name).stem)
    check_upload([upload.size])
    sources.check_new_name(name)
    start_job(job_requests.upload_import(name, upload.name, upload.getvalue(), current_actor().owner))


def add_from_path(path: str) -> None:
    data_root = get_settings().data_root
    resolved = confine(path)
    relative = resolved.relative_to(data_root).as_posix()
    if resolved.is_file() and resolved.suffix.lower() == ".zip":
        start_job(job_requests.zip_job(resolved, relative, current_actor().owner))
        return
    info = sources.register_folder(resolved)
    flash(ADDED, f"Added {info.title}; it is selected.")
    choices.select_next(PICKER, info.name)
    st.rerun()


def start_job(job: job_requests.DatasetJob, *, rerun: bool = False) -> None:
    """Submit a dataset job. A download or import says so at once, where the user pressed the
    button (no rerun: the job list drawn further down this run already shows its progress), and
    its dataset is selected when it finishes (:func:`select_finished_imports`). ``rerun``: run the
    page again (for a job started below the job list)."""
    job_id = job.submit(job_manager())
    mark_live(job_id)
    if job.selects_dataset:
        st.session_state.setdefault(WATCHED, []).append(job_id)
        started = f"{job.title}: started. Its progress is shown below; the dataset is selected when it is ready."
        st.info(md(started), icon=":material/hourglass_top:")
        st.toast(md(f"{job.title}: started"), icon=":material/hourglass_top:")
    if rerun:
        st.rerun()


def select_finished_imports() -> None:
    """Select the dataset of each watched job that finished, and say so (a failure shows its own
    banner from :func:`show_dataset_jobs`)."""
    manager = job_manager()
    still_running = []
    for job_id in st.session_state.get(WATCHED) or []:
        state = manager.get(job_id)
        if state is not None and state.active:
            still_running.append(job_id)
        elif state is not None and state.status == "finished":
            result = state.result or {}
            choices.select_next(PICKER, result.get("dataset") or state.params.get("dataset"))
            counts = (f", {result['usable']:,} usable tiles of {result['files']:,} files"
                      if isinstance(result.get("usable"), int) and isinstance(result.get("files"), int) else "")
            flash(ADDED, f"{state.title}: done{counts}. The dataset is selected.")
    st.session_state[WATCHED] = still_running


def show_dataset_jobs() -> None:
    """Running dataset jobs (download, import, indexing) with progress and a stop button, and
    the latest failed download or import of this page until it is dismissed."""
    manager = job_manager()
    for state in (s for kind in tasks.DATASET_KINDS for s in manager.list(kind=kind) if s.active):
        live_job(manager, state.id, "dataset-job")
    for kind in (*tasks.DOWNLOAD_KINDS, kinds.DATASET_IMPORT):
        latest = manager.list(kind=kind)
        if latest:
            job_failure_banner(manager, latest[0], key_prefix="dataset-dismiss")


def load_or_index(info: DatasetInfo) -> pd.DataFrame | None:
    """The dataset's index from the cache, or start (or follow) the indexing job and return None."""
    if info.is_synthetic:
        synthetic_badge("synthetic demo")
    with user_errors():
        frame = adapters.cached_index(info.folder)
        if frame is not None:
            return frame
        manager = job_manager()
        latest = job_requests.latest_index_job(manager, info.name)
        if job_requests.index_failed(latest):
            st.error(f"Indexing {md(info.name)}: {md(latest.error or latest.message or latest.status)}")
            if not st.button("Try again", icon=":material/refresh:"):
                return None
        if latest is None or not latest.active:
            start_job(job_requests.index_job(info.name), rerun=True)
        st.info("Preparing the dataset index in the background (generated and read once, then cached).",
                icon=":material/hourglass_top:")
    return None


# ---------------------------------------------------------------- overview

def overview(info: DatasetInfo, frame: pd.DataFrame) -> None:
    rows = usable(frame)
    columns = st.columns(5)
    columns[0].metric("Tiles", f"{len(frame):,}")
    columns[1].metric("Classes", frame["label"].nunique())
    columns[2].metric("Usable", f"{len(rows):,}")
    columns[3].metric("Excluded", f"{len(frame) - len(rows):,}")
    columns[4].metric("Source images", f"{rows['source_image'].nunique():,}")
    left, right = st.columns([2, 1])
    counts = (rows.groupby(["label_index", "label"]).size().reset_index(name="tiles").sort_values("label_index"))
    figure = go.Figure(go.Bar(x=[html.escape(label) for label in counts["label"]], y=counts["tiles"],
                              text=counts["tiles"], marker_color=px.colors.qualitative.Plotly[: len(counts)] * 2))
    figure.update_layout(title="Usable tiles per class" + (" (synthetic demo)" if info.is_synthetic else ""),
                         height=320, margin=dict(t=40, b=10, l=10, r=10), yaxis_title="tiles")
    left.plotly_chart(figure, key="explorer_counts")
    summary = (rows.assign(size=rows["width"].astype(str) + "x" + rows["height"].astype(str))
               .groupby(["size", "mode"]).size().reset_index(name="tiles"))
    right.markdown("**Image sizes and modes**")
    right.dataframe(summary, hide_index=True)
    right.caption(f"Folder: {md(display_path(info.folder))}")


# ---------------------------------------------------------------- gallery

def prediction_filters(info: DatasetInfo, tiles: pd.DataFrame) -> pd.DataFrame:
    """Once a finished run on this dataset recorded predictions: the tiles it predicted, narrowed
    by predicted class, confidence range and mistakes only (``tiles`` unchanged otherwise)."""
    from dashboard.training_adapters import run_store
    from services.training.overview import val_predictions

    try:
        store = run_store()
        runs = {run.id: run for run in predictions.runs_with_predictions(store, info.name)}
    except UserFacingError:  # an unreadable run store: the training monitor says why
        return tiles
    if not runs:
        return tiles
    with st.expander("Filter by a model's predictions", icon=":material/filter_alt:", key="gallery_predictions"):
        run_id = st.selectbox("Predictions of the run", [None, *runs], key="gallery_run",
                              format_func=lambda i: "none (every tile)" if i is None else f"{runs[i].name} · {i[-6:]}")
        if run_id is None:
            return tiles
        predicted_tiles = predictions.with_predictions(tiles, val_predictions(store, run_id))
        columns = st.columns([2, 2, 1], vertical_alignment="bottom")
        predicted = columns[0].multiselect("Predicted as", class_names(tiles), key="gallery_predicted",
                                           placeholder="any class")
        confidence = columns[1].slider("Confidence", 0.0, 1.0, predictions.CONFIDENCE_RANGE, 0.01,
                                       key="gallery_confidence")
        only_mistakes = columns[2].toggle("Only mistakes", key="gallery_mistakes")
        chosen = predictions.filter_tiles(predicted_tiles, predicted=predicted, confidence=confidence)
        if only_mistakes:
            chosen = predictions.mistakes(chosen)
        st.caption(f"The run predicted {len(predicted_tiles):,} of the {len(tiles):,} usable tiles (its "
                   f"validation split: held out from its training, not from its checkpoint choice); "
                   f"{len(chosen):,} match these filters (all classes; pick one below).")
    return chosen


def gallery(info: DatasetInfo, frame: pd.DataFrame) -> None:
    labels = class_names(frame)
    tiles = prediction_filters(info, usable(frame))
    controls = st.columns([2, 2, 1])
    label = controls[0].selectbox("Class", labels, key="gallery_class")
    size = controls[1].slider("Thumbnail size", 48, 200, 110, step=2, key="gallery_size")
    per_row = max(2, min(12, 1200 // (size + 24)))
    tiles = tiles[tiles["label"] == label]
    if tiles.empty:
        st.info("No tile of this class matches the filters.", icon=":material/filter_alt_off:")
    per_page = per_row * ROWS_PER_PAGE
    pages = max(1, -(-len(tiles) // per_page))
    page = controls[2].number_input(f"Page (of {pages})", 1, pages, 1, key=f"gallery_page_{label}_{per_page}")
    shown = tiles.iloc[(page - 1) * per_page: page * per_page]
    grid = st.container(horizontal=True, gap="xsmall")
    for row in shown.to_dict("records"):
        cell = grid.container(width=size, gap=None, horizontal_alignment="center")
        data = adapters.thumbnail(row["path"], size, row["mtime_ns"])
        if data is None:
            cell.warning("unreadable")
            continue
        cell.image(data, width=size)
        if "predicted" in row:
            cell.caption(f"{md(row['predicted'])} · {row['confidence']:.2f}")
        if cell.button(":material/zoom_in:", key=f"view-{row['relpath']}", help=Path(row["relpath"]).name,
                       type="tertiary"):
            st.session_state[SELECTED] = (info.name, row["relpath"])
            enlarged_tile(row["label"], row["relpath"], row["path"], row["mtime_ns"])
    selected_tile(info, frame, shown=tiles)


@st.dialog("Tile", width="medium")
def enlarged_tile(label: str, relpath: str, path: str, mtime_ns: int) -> None:
    """The clicked thumbnail at full size, in place (a dialog over the gallery)."""
    with user_errors():
        pixels = adapters.tile_and_stains(path, mtime_ns)[0]
        st.markdown(f"**{md(label)}** · {md(Path(relpath).name)} · shown at {pixels.shape[1]}x{pixels.shape[0]} "
                    "pixels")
        show_image(pixels, width=min(ENLARGED_SIDE, 4 * pixels.shape[1]))


def _selected_row(info: DatasetInfo, frame: pd.DataFrame) -> pd.Series | None:
    """The tile chosen in the gallery (the first usable one by default; None if there is none)."""
    rows = usable(frame)
    chosen = st.session_state.get(SELECTED)
    if chosen and chosen[0] == info.name:
        match = rows[rows["relpath"] == chosen[1]]
        if not match.empty:
            return match.iloc[0]
    if rows.empty:
        st.warning("No usable tile in this dataset: see Quality for the reasons.", icon=":material/warning:")
        return None
    return rows.iloc[0]


HIDDEN_SELECTION = ("Not among the tiles the class and filters above show: it stays selected until you pick "
                    "another.")


def selected_tile(info: DatasetInfo, frame: pd.DataFrame, shown: pd.DataFrame | None = None) -> None:
    """The selected tile, kept while the gallery's class and filters change (``shown``: the tiles
    they show; a selection outside them says so)."""
    row = _selected_row(info, frame)
    if row is None:
        return
    st.subheader(f"Selected tile · {md(row['label'])}")
    if shown is not None and not shown["relpath"].eq(row["relpath"]).any():
        st.caption(HIDDEN_SELECTION)
    with user_errors():
        pixels, stains = adapters.tile_and_stains(row["path"], row["mtime_ns"])
        left, middle, right = st.columns([1, 1, 2])
        size = f"{row['width']}x{row['height']}"
        shown_size = f"{pixels.shape[1]}x{pixels.shape[0]}"
        show_image(pixels, target=left, caption=f"full resolution ({size})" if size == shown_size
                   else f"{size}, shown at {shown_size}")
        middle.image([display_copy(stains["Hematoxylin"]), display_copy(stains["Eosin"])],
                     caption=["hematoxylin", "eosin"], width=110)
        details = row.drop(labels=["path"]).rename("value").astype(str).to_frame()
        right.dataframe(details, height=300)


# ---------------------------------------------------------------- colour

def colour_section(info: DatasetInfo, frame: pd.DataFrame) -> None:
    st.caption("The book's histogram analysis per class, and H&E stain separation by colour deconvolution "
               "(Ruifrok-Johnston H&E-DAB matrix).")
    controls = st.columns(3)
    per_class = controls[0].slider("Tiles sampled per class", 5, 100, 20, step=5, key="colour_per_class")
    space = controls[1].radio("Histogram", ["rgb", "hsv"], format_func=str.upper, horizontal=True, key="colour_space")
    seed = controls[2].number_input("Sample seed", 0, 10_000, 0, key="colour_seed")
    profile = adapters.colour_profile(frame, adapters.signature_of(frame), per_class, seed)
    if profile.means.empty:
        st.warning("No usable tile to analyse: see Quality for the reasons.", icon=":material/warning:")
        return
    means = profile.means
    st.markdown("**Mean colour per class**")
    st.html(swatches_html((m.label, m.hex) for m in means.itertuples()))
    histograms = profile.histograms[profile.histograms["space"] == space]
    figure = px.line(histograms, x="value", y="fraction", color="channel", facet_col="label", facet_col_wrap=4,
                     color_discrete_sequence=["#d62728", "#2ca02c", "#1f77b4"], height=480,
                     title=f"{space.upper()} histograms per class")
    st.plotly_chart(_plain_facets(figure), key="colour_histograms")
    stains = px.line(profile.stains, x="value", y="fraction", color="stain", facet_col="label", facet_col_wrap=4,
                     color_discrete_map={"Hematoxylin": "#4b2c83", "Eosin": "#e377c2"}, height=480,
                     title="Per-pixel stain concentration (optical density) per class")
    st.plotly_chart(_plain_facets(stains), key="colour_stains")
    tile_means = profile.tile_stains.melt(id_vars=["label", "relpath"], value_vars=["hematoxylin", "eosin"],
                                          var_name="stain", value_name="mean concentration")
    tile_means["label"] = tile_means["label"].map(html.escape)
    st.plotly_chart(px.box(tile_means, x="label", y="mean concentration", color="stain", height=380,
                           color_discrete_map={"hematoxylin": "#4b2c83", "eosin": "#e377c2"},
                           title="Mean stain concentration per tile"), key="colour_tile_stains")


def _plain_facets(figure):
    """Facet titles "TUMOR" instead of plotly's "label=TUMOR" (escaped: plotly renders tags)."""
    return figure.for_each_annotation(lambda note: note.update(text=html.escape(note.text.split("=", 1)[-1])))


# ---------------------------------------------------------------- quality

def quality_section(info: DatasetInfo, frame: pd.DataFrame) -> None:
    key = adapters.signature_of(frame)
    problems = quality.problems(frame)
    st.markdown(f"**Excluded files** ({len(problems)})")
    if problems.empty:
        st.success("Every file could be read.", icon=":material/check:")
    else:
        st.dataframe(problems, hide_index=True)
    converted, odd = quality.conversions(frame), quality.odd_files(frame)
    if not converted.empty:
        st.markdown(f"**Converted when read** ({len(converted)}): kept, converted to 8-bit RGB")
        st.dataframe(converted, hide_index=True)
    if not odd.empty:
        st.markdown(f"**Odd size or mode** ({len(odd)}): kept, resized by the training pipeline")
        st.dataframe(odd, hide_index=True)
    mtimes = dict(zip(frame["path"], frame["mtime_ns"]))
    exact = adapters.exact_duplicates(frame, key)
    st.markdown(f"**Exact duplicates** ({_pairs_count(exact)} of byte-identical files)")
    _pairs(exact, "exact", mtimes)
    distance = st.slider("Near duplicates: maximum perceptual-hash distance (bits of 64)", 0, 16, 4,
                         key="quality_distance")
    near = adapters.near_duplicates(frame, key, distance)
    st.markdown(f"**Near duplicates** ({_pairs_count(near)}{', the closest 1000' if len(near) == 1000 else ''})")
    _pairs(near, "near", mtimes)


def _pairs_count(pairs: pd.DataFrame) -> str:
    return f"{len(pairs)} pair" + ("" if len(pairs) == 1 else "s")


def _pairs(pairs: pd.DataFrame, key: str, mtimes: dict[str, int]) -> None:
    if pairs.empty:
        st.caption("none")
        return
    st.dataframe(pairs.drop(columns=["path_a", "path_b"]), hide_index=True, key=f"pairs_{key}")
    shown = pairs.head(4)
    for column, row in zip(st.columns(4), shown.itertuples()):
        images = [adapters.thumbnail(p, 96, mtimes[p]) for p in (row.path_a, row.path_b)]
        if all(images):
            column.image(images, width=96, caption=[row.label_a, f"{row.label_b} · d={row.distance}"])


# ---------------------------------------------------------------- splits

def splits_section(info: DatasetInfo, frame: pd.DataFrame) -> None:
    has_sources = (frame["tile_row"] >= 0).any()
    controls = st.columns(4)
    method = controls[0].radio("Method", splits.METHODS, index=0 if has_sources else 1, key="split_method",
                               format_func={"grouped": "grouped by source image", "random": "random, stratified"}.get)
    train = controls[1].slider("Train %", 10, 90, 60, step=5, key="split_train")
    val = controls[2].slider("Validation %", 0, 100 - train, min(20, 100 - train), step=5, key="split_val")
    seed = controls[3].number_input("Seed", 0, 1_000_000, 42, key="split_seed")
    test = 100 - train - val
    st.caption(f"Test {test} %. The book splits 60/20/20 at random; tiles of one source image are correlated, "
               "so a grouped split is the honest estimate.")
    with user_errors():
        fractions = (train / 100, val / 100, test / 100)
        split = splits.make_split(frame, method=method, fractions=fractions, seed=seed)
        show_split(split, fractions)
        save_form(info, split)
    saved = splits.list_splits(info.name)
    if saved:
        name = st.selectbox("Saved splits", saved, key="split_saved")
        with user_errors():
            loaded = splits.load_split(info.name, name)
            st.caption(f"{md(name)}: {len(loaded):,} tiles")
            st.dataframe(splits.split_summary(loaded))


def show_split(split: pd.DataFrame, fractions: tuple[float, float, float]) -> None:
    st.dataframe(splits.split_summary(split))
    empty = splits.empty_classes(split, fractions)
    if empty:
        st.warning("No tiles of " + "; ".join(f"{md(label)} in {part}" for label, part in empty)
                   + ". A model is then never trained or never tested on that class: try another seed, "
                     "other fractions, or more source images.", icon=":material/warning:")
    leaks = splits.leakage_report(split)
    if leaks.empty:
        st.success("No leakage: no source image or identical file is in more than one split.", icon=":material/check:")
    else:
        by_kind = leaks.groupby("kind").size().to_dict()
        st.warning("Leakage between splits: " + ", ".join(f"{n} {k}s" for k, n in by_kind.items())
                   + " appear in more than one split.", icon=":material/warning:")
        st.dataframe(leaks, hide_index=True, height=200)


def save_form(info: DatasetInfo, split: pd.DataFrame) -> None:
    """Save the split under a name; a name already taken asks before replacing that split."""
    columns = st.columns([3, 1], vertical_alignment="bottom")
    method = st.session_state.get("split_method", "split")
    name = columns[0].text_input("Save as", value=f"{method}-{st.session_state.get('split_seed', 42)}", key="split_name")
    if columns[1].button("Save split", icon=":material/save:"):
        if name in splits.list_splits(info.name):
            st.session_state[CONFIRM_OVERWRITE] = (info.name, name)
        else:
            _save(info, name, split)
    if st.session_state.get(CONFIRM_OVERWRITE) == (info.name, name):
        question = st.empty()  # answered, the question goes at once (its answer shows below)
        with question.container():
            st.warning(f"A split called {md(name)} already exists for this dataset. Replace it with this one?",
                       icon=":material/warning:")
            replace, keep = st.columns(2)
        if replace.button("Replace it", icon=":material/save:", key="split_replace"):
            st.session_state.pop(CONFIRM_OVERWRITE)
            question.empty()
            _save(info, name, split)
        elif keep.button("Keep the saved one", key="split_keep"):
            st.session_state.pop(CONFIRM_OVERWRITE)
            st.rerun()


def _save(info: DatasetInfo, name: str, split: pd.DataFrame) -> None:
    path = splits.save_split(info.name, name, split)
    st.success(f"Saved {md(display_path(path))}; the training pages can use it.")


# ---------------------------------------------------------------- augmentation

def augmentation_section(info: DatasetInfo, frame: pd.DataFrame) -> None:
    from services.datasets.augmentation import BOOK_DEFAULTS

    row = _selected_row(info, frame)
    if row is None:
        return
    st.caption(f"The book's augmentations as Keras preprocessing layers, applied to the selected tile "
               f"({md(row['label'])}, {md(Path(row['relpath']).name)}); pick another tile in the Gallery.")
    columns = st.columns(4)
    options = {
        "rotation_degrees": columns[0].slider("Rotation (degrees)", 0, 180, int(BOOK_DEFAULTS["rotation_degrees"])),
        "shift": columns[1].slider("Width/height shift", 0.0, 0.5, BOOK_DEFAULTS["shift"], step=0.05),
        "shear": columns[2].slider("Shear", 0.0, 0.5, BOOK_DEFAULTS["shear"], step=0.05),
        "zoom": columns[3].slider("Zoom", 0.0, 0.5, BOOK_DEFAULTS["zoom"], step=0.05),
    }
    columns = st.columns(4)
    options["horizontal_flip"] = columns[0].checkbox("Horizontal flip", True)
    options["vertical_flip"] = columns[1].checkbox("Vertical flip", True)
    options["fill_mode"] = columns[2].selectbox("Fill mode", ["nearest", "reflect", "wrap", "constant"])
    count = columns[3].slider("Variants", 4, 16, 8, step=4)
    seed = st.number_input("Seed", 0, 10_000, 0, key="augment_seed")
    if st.toggle("Show variants", key="augment_show",
                 help="Runs in the model service (TensorFlow starts there on first use, a few seconds)."):
        with user_errors(), st.spinner("Augmenting…"):
            pixels = adapters.tile_and_stains(row["path"], row["mtime_ns"])[0]
            variants = adapters.augmentation_variants(row["path"], row["mtime_ns"], count, seed, options)
            st.image([display_copy(pixels), *variants], width=140,
                     caption=["original", *[f"#{i + 1}" for i in range(count)]])


RENDERERS = {"Gallery": gallery, "Colour": colour_section, "Quality": quality_section,
             "Splits": splits_section, "Augmentation": augmentation_section}
