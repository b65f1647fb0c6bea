"""Training monitor: start runs, watch them live, compare runs, inspect what a model learned.

Runs execute as ``training`` jobs in worker processes (closing the browser does not stop them);
the runs table, the curves and the run details refresh with st.fragment while a run is active.
"""

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.adapters import job_manager
from dashboard.auth import current_actor
from dashboard.datasets_adapters import thumbnail
from dashboard.feedback import flash, show_flashes
from dashboard.run_share import share_link, shared_run_page
from dashboard.training_adapters import first_layer_view, ingest_address, ingest_running, run_store
from dashboard.widgets import (STATUS_ICONS, asking_the_model_service, live_job, md, random_weights_badge, show_image,
                               synthetic_badge, user_errors)
from services import provenance
from services.datasets import sources, splits
from services.images import decode_image
from services.metrics.calibration import calibration_text
from services.metrics.formatting import percent
from services.metrics.honesty import headline, labelled, leakage_badge, leakage_of
from services.models.catalog import DESCRIPTIONS, model_names
from services.training import charts, curves, launcher, overview, sharing, tb_import
from services.training.config import KEEP, OPTIMIZERS, RunConfig
from services.training.store import ACTIVE, DIVERGED, ENDED, FAILED, INTERRUPTED, QUEUED, RUNNING

st.title(":material/monitoring: Training monitor")
st.caption("Train the book's histology models (ch. 8) and watch them learn. Runs keep going when the "
           "browser closes; a script on another machine shows up here by adding `DashboardCallback`.")

store = manager = None
with user_errors():
    store = run_store()
    manager = job_manager()
if store is None:
    st.stop()
if st.query_params.get(sharing.QUERY_KEY):  # a shared link: that one run, read-only
    shared_run_page(store, st.query_params[sharing.QUERY_KEY])
    st.stop()

# Where the page says what a button did.
RUNS, CLEANUP, DETAILS = "training-runs", "training-cleanup", "training-details"
DEVICES = {"auto": "all local GPUs (MirroredStrategy when several), else CPU", "none": "one device",
           "mirrored": "MirroredStrategy over every local device"}


def run_label(run) -> str:
    return labelled(f"{run.name} · {run.id[-6:]}", leakage_of(run.summary))


def select_imported_run(state) -> None:
    """When the TensorBoard import ends, the page reloads on the imported run."""
    if state.status == "finished" and (state.result or {}).get("run_id"):
        st.session_state["selected_runs"] = [state.result["run_id"]]


# --- start a run -------------------------------------------------------------------------------
with st.expander("Start a training run", icon=":material/play_arrow:", expanded=not store.list_runs()):
    top_left, top_right = st.columns(2)
    dataset = top_left.selectbox("Dataset", [info.name for info in sources.list_datasets()], key="train_dataset",
                                 persist_state="session")
    split = top_right.selectbox("Split", [None, *(splits.list_splits(dataset) if dataset else [])],
                                format_func=lambda s: s or "new split grouped by source image (60/20/20)",
                                key="train_split", persist_state="session")
    with st.form("start_run", enter_to_submit=False):
        left, middle, right = st.columns(3)
        model = left.selectbox("Model", model_names(standalone=True), format_func=lambda n: f"{n} — {DESCRIPTIONS.get(n, '')}")
        devices = left.selectbox("Devices", list(DEVICES), format_func=DEVICES.get)
        keep = left.selectbox("Keep when finished", KEEP,
                              format_func=lambda k: "best checkpoint only" if k == "best" else "best and last checkpoints")
        epochs = middle.number_input("Epochs", 1, 10_000, 5)
        batch_size = middle.number_input("Batch size", 1, 4096, 32)
        image_size = middle.number_input("Image size (px)", 8, 1024, 150)
        optimizer = right.selectbox("Optimizer", OPTIMIZERS)
        learning_rate = right.number_input("Learning rate", value=1e-3, format="%.5f", step=1e-4)
        seed = right.number_input("Seed", 0, 2**31 - 1, 42)
        augment = right.toggle("Augmentation (rotation, shift, shear, zoom, flips)")
        name = st.text_input("Run name (optional)")
        if st.form_submit_button("Start training", icon=":material/rocket_launch:"):
            with user_errors():
                config = RunConfig(model=model, dataset=dataset, split=split, epochs=int(epochs),
                                   batch_size=int(batch_size), optimizer=optimizer,
                                   learning_rate=float(learning_rate), augment=augment, seed=int(seed),
                                   image_size=int(image_size), name=name or None, distribution=devices, keep=keep)
                run_id = launcher.start_run(config, store, manager, owner=current_actor().owner)
                st.session_state["selected_runs"] = [run_id]
                st.toast("Run queued; it starts as soon as a training slot is free.")

with st.expander("Log a script on another machine, or import TensorBoard files", icon=":material/cloud_upload:",
                 key="train_remote_expander"):
    url, token = ingest_address()
    if not ingest_running():
        st.warning("Remote logging needs the ingest endpoint, which is not running: start the app with "
                   "`make run` (it starts the endpoint beside the web server; `streamlit run` alone, as on "
                   "Streamlit Community Cloud, does not). Importing TensorBoard files below works without it.",
                   icon=":material/cloud_off:")
    st.caption("Add the callback to any Keras `fit` (install it there with `pip install <this repository>`; "
               "no Streamlit needed). Events wait in a local spool while this dashboard is unreachable.")
    st.code(f'from services.training.callback import DashboardCallback\n'
            f'callback = DashboardCallback("my run", url="{url}", token="{token}")\n'
            f'model.fit(x, y, epochs=10, callbacks=[callback])', language="python")
    uploads = st.file_uploader("TensorBoard event files, or a zip of a run's log folder", accept_multiple_files=True,
                               key="tb_files")
    import_name = st.text_input("Name of the imported run", key="tb_name")
    if st.button("Import", icon=":material/upload:", disabled=not uploads, key="tb_import"):
        with user_errors():
            st.session_state["tb_job"] = tb_import.submit_import(
                manager, [(f.name, f.getvalue()) for f in uploads], import_name or uploads[0].name,
                current_actor().owner)
    if st.session_state.get("tb_job"):
        live_job(manager, st.session_state["tb_job"], "tb-import", recovery=False, on_end=select_imported_run)

# --- runs table --------------------------------------------------------------------------------
show_flashes(RUNS)
runs = store.list_runs()
if not runs:
    st.info("No runs yet: start one above, or add `DashboardCallback` to your own `model.fit`.")
    st.stop()
by_id = {r.id: r for r in runs}
any_active = any(r.status in ACTIVE for r in runs)

st.subheader("Runs")
left, middle, right, tags_column = st.columns(4)
run_filter = overview.RunFilter(tuple(left.multiselect("Status", sorted({r.status for r in runs}))),
                               tuple(middle.multiselect("Model", sorted({r.model or "" for r in runs}))),
                               tuple(right.multiselect("Dataset", sorted({r.dataset or "" for r in runs}))),
                               tuple(tags_column.multiselect("Tag", sorted({t for r in runs for t in r.tags}))))


@st.fragment(run_every=overview.REFRESH_SECONDS if any_active else None)
def runs_table() -> None:
    current = store.list_runs()
    st.dataframe(overview.runs_frame(store, run_filter.shown(current)), hide_index=True, key="runs_table", column_config={
        "best val acc": st.column_config.ProgressColumn(format="%.3f", min_value=0.0, max_value=1.0),
        "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})
    _, total = overview.disk_usage(store, [])
    damaged = [r for r in current if r.damaged]
    st.caption(f"Disk use of all runs: {total / 1e6:,.1f} MB" +
               (f" · {len(damaged)} run(s) with damaged records (shown with what could be read)" if damaged else ""))


runs_table()

with st.expander("Clean up old runs", icon=":material/cleaning_services:", key="train_cleanup_expander"):
    days = st.number_input("Ended more than this many days ago", 0.0, 3650.0, 30.0, key="cleanup_days")
    statuses = st.multiselect("With status", ["failed", "stopped", "interrupted", "diverged", "finished"],
                              default=["failed", "stopped", "interrupted", "diverged"], key="cleanup_statuses")
    candidates = overview.cleanup_candidates(store, runs, days, tuple(statuses))
    candidate_bytes = sum(store.disk_bytes(run.id) for run in candidates)  # not the whole runs folder
    st.caption(f"{len(candidates)} run(s), {candidate_bytes / 1e6:,.1f} MB")
    if st.button("Delete them", disabled=not candidates, key="cleanup_go", icon=":material/delete_sweep:"):
        with user_errors():
            deleted, kept = overview.delete_runs(store, candidates, current_actor())
            flash(CLEANUP, f"Deleted {deleted} run(s)."
                  + (f" {kept} run(s) belong to others and were kept." if kept else ""))
            st.rerun()
    show_flashes(CLEANUP)

if "selected_runs" not in st.session_state:
    st.session_state["selected_runs"] = [runs[0].id]
st.session_state["selected_runs"] = [i for i in st.session_state["selected_runs"] if i in by_id]
selected = st.multiselect("Runs to show", list(by_id), format_func=lambda i: run_label(by_id[i]),
                          key="selected_runs")
if not selected:
    st.stop()

options = st.columns([2, 1, 2])
smoothing = options[0].slider("Smoothing", 0.0, 0.99, 0.0, 0.01, key="smoothing",
                              help="Exponential moving average, as in TensorBoard; raw points stay faint behind.")
log_y = options[1].toggle("Log scale", key="log_y")
x_axis = options[2].radio("x axis", curves.X_AXES, horizontal=True, key="x_axis")
selected_active = any(by_id[i].status in ACTIVE for i in selected)


# --- live curves -------------------------------------------------------------------------------
@st.fragment(run_every=overview.REFRESH_SECONDS if selected_active else None)
def live_view(run_ids: list[str], was_active: bool) -> None:
    current = [run for run in (store.find_run(i) for i in run_ids) if run is not None]
    epoch_tables = {run.id: curves.epoch_table(store, run.id) for run in current}  # read once per refresh
    tables = {run_label(run): curves.curve_table(store, run, x_axis, epoch_tables[run.id]) for run in current}
    st.plotly_chart(curves.curves_figure(tables, smoothing=smoothing, log_y=log_y, x_axis=x_axis), key="curves")
    for run in current:
        progress = overview.run_progress(store, run)
        job = manager.get(run.job_id) if run.status == QUEUED and run.job_id else None
        waiting = f" · {job.queue_ahead} ahead in the queue" if job is not None and job.queue_ahead else ""
        st.progress(progress.fraction, text=f"{STATUS_ICONS.get(run.status, '')} **{md(run_label(run))}** · "
                                            f"{progress.text}{waiting}")
        if run.status == RUNNING:
            batches = store.metrics(run.id, names=["batch_loss"])
            if not batches.empty:
                st.plotly_chart(curves.batch_loss_figure(batches, run_label(run), smoothing=smoothing, log_y=log_y),
                                key=f"batches-{run.id}")
    with st.expander("Min / max per run"):
        for run in current:
            stats = overview.metric_stats(epoch_tables[run.id])
            if not stats.empty:
                st.caption(md(run_label(run)))
                st.dataframe(stats, hide_index=True)
    if len(current) > 1:
        st.subheader("Comparison")
        only = st.toggle("Show only differences", key="only_differences")
        st.dataframe(overview.comparison_frame(current, epoch_tables, {r.id: run_label(r) for r in current}, only),
                     key="comparison")
    if was_active and not any(run.active for run in current):
        st.rerun()  # everything ended: one full rerun redraws the page without the timer


live_view(selected, selected_active)


# --- one run in detail -------------------------------------------------------------------------
def run_actions(run) -> None:
    columns = st.columns(6)
    if run.status in ACTIVE and columns[0].button("Stop", icon=":material/stop:"):
        launcher.stop_run(run.id, store, manager)
        st.toast("Stop requested: the run ends after its current batch.")
        st.rerun()
    if run.status in launcher.RESUMABLE and run.source in ("dashboard", "cli") and \
            columns[1].button("Resume", icon=":material/replay:"):
        with user_errors():
            launcher.resume_run(run.id, store, manager)
            st.toast(f"Resumed {md(run.name)}: it continues from its last saved epoch.", icon=":material/replay:")
            st.rerun()
    with columns[2].popover("Delete", icon=":material/delete:", disabled=run.status == RUNNING):
        st.write(f"Delete **{md(run.name)}** with its metrics, checkpoints and models?")
        if st.button("Yes, delete it", type="primary"):
            with user_errors():
                current_actor().check_can_delete(run.owner, what=f"the run {run.name!r}")
                store.delete_run(run.id)
                flash(RUNS, f"Deleted the run {run.name}.")
                st.rerun()
    columns[3].download_button("Metrics CSV", lambda: overview.metrics_csv(store, run.id),
                               f"{run.id}-metrics.csv", "text/csv", icon=":material/download:", on_click="ignore")
    for column, kind, label in ((columns[4], "best_model", "Best model"), (columns[5], "last_model", "Last model")):
        path = store.artifact_path(run.id, kind)  # confined to the run's folder
        if path is not None:
            column.download_button(label, path.read_bytes, f"{run.id}-{path.name}", "application/octet-stream",
                                   icon=":material/download:", on_click="ignore")


def summary_metrics(run) -> None:
    summary, table = run.summary, curves.epoch_table(store, run.id)
    line, badge = headline(summary), leakage_badge(leakage_of(summary))
    if badge:
        st.warning(f"**{badge}** of this run's split: its held-out numbers are optimistic.", icon=":material/warning:")
    st.markdown(f"**{line.text()}** · {line.note}.")
    columns = st.columns(6)
    best = overview.best_val_accuracy(table)
    columns[0].metric("best val accuracy (chose the checkpoint)", percent(best))
    columns[1].metric("held-out test accuracy", percent(line.estimate.value if line.held_out else None))
    columns[2].metric("test macro F1", percent(summary.get("test_macro_f1")))
    total = summary.get("total_parameters")
    columns[3].metric("parameters", f"{total:,}" if isinstance(total, int) else "—")
    columns[4].metric("epochs", f"{max(run.epochs_done, len(table))}/{run.epochs or '?'}")
    columns[5].metric("duration", overview.format_seconds(run.duration) if run.duration is not None else "—")
    calibration = summary.get("calibration")
    if isinstance(calibration, dict):
        st.caption(calibration_text(calibration))
        st.plotly_chart(charts.reliability_figure(calibration), key=f"reliability-{run.id}")
    recall = overview.recall_table(summary)
    if not recall.empty:
        st.caption("Recall per class with its 95 % Wilson interval and n (held-out test split, or validation "
                   "when there is none)")
        st.dataframe(recall, hide_index=True)


def notes_editor(run) -> None:
    with st.form(f"notes-{run.id}", enter_to_submit=False):
        notes = st.text_area("Notes", run.notes, key=f"notes-text-{run.id}")
        tags = st.text_input("Tags (comma-separated)", ", ".join(run.tags), key=f"tags-{run.id}")
        if st.form_submit_button("Save notes", icon=":material/save:"):
            with user_errors():
                store.set_notes(run.id, notes, tags.split(","))
                flash(DETAILS, f"Saved the notes and tags of {run.name}.")
                st.rerun()  # the runs table above shows the new tags


def confusion_view(run) -> None:
    matrices = overview.confusion_matrices(store, run.id)
    if not matrices:
        st.caption("No confusion matrix yet (one is written per epoch).")
        return
    index = 0
    if len(matrices) > 1:
        index = st.slider("Epoch", 1, len(matrices), len(matrices), key=f"cm-{run.id}") - 1
    item = matrices[index]
    classes = [str(c) for c in item["classes"]]
    st.plotly_chart(charts.confusion_figure(item["matrix"], classes,
                                            f"validation confusion matrix · epoch {item['epoch'] + 1}"))


def tile_grid(run, predictions: pd.DataFrame) -> None:
    only_mistakes = st.toggle("Only misclassified tiles", key=f"mistakes-{run.id}")
    frame = predictions[predictions.label != predictions.predicted] if only_mistakes else predictions
    columns = st.columns(8)
    for number, row in enumerate(frame.head(24).itertuples()):
        path = Path(row.path)
        image = thumbnail(row.path, 150, path.stat().st_mtime_ns) if path.is_file() else None
        caption = overview.prediction_caption(row.label, row.predicted, row.confidence)
        if image is None:
            columns[number % 8].caption(f"{md(path.name)} cannot be read · {md(caption)}")
        else:
            columns[number % 8].image(image, caption=caption)


def learned_filters(run, predictions: pd.DataFrame) -> None:
    model_path = store.artifact_path(run.id, "final_model") or store.artifact_path(run.id, "best_model")
    if model_path is None:
        st.caption("Available once the run has saved a model.")
        return
    tile = st.selectbox("Tile", predictions.path.tolist(), format_func=lambda p: p.rsplit("/", 1)[-1],
                        key=f"tile-{run.id}")
    if st.button("Show filters and feature maps", icon=":material/grid_view:", key=f"filters-{run.id}"):
        with asking_the_model_service(), user_errors():
            view = first_layer_view(str(model_path), tile)
            show_image(decode_image(tile).pixels, caption="the tile", width=150)
            st.caption(f"Learned kernels of `{md(view.conv_name)}` (first 12)")
            st.image(list(view.kernels), width=48)
            st.caption(f"Feature maps of the tile after `{md(view.conv_name)}` (before pooling)")
            st.image(list(view.before_pooling), width=96)
            if view.after_pooling is not None:
                st.caption(f"… and after `{md(view.pool_name)}`")
                st.image(list(view.after_pooling), width=96)


st.subheader("Run details")
show_flashes(DETAILS)
chosen = st.selectbox("Run", selected, format_func=lambda i: run_label(by_id[i]))


@st.fragment(run_every=overview.REFRESH_SECONDS if by_id[chosen].status in ACTIVE else None)
def run_header(run_id: str) -> None:
    run = store.find_run(run_id)
    if run is None:
        st.caption("This run was deleted.")
        return
    if run.damaged:
        st.warning(f"Part of this run's record is damaged ({', '.join(run.damaged)}); it is shown with what "
                   "could be read.", icon=":material/broken_image:")
    if run.synthetic:
        synthetic_badge("trained on synthetic demo data")
    if overview.weights_of(run) == provenance.RANDOM_INIT:
        random_weights_badge("the weights started random (no pretrained weights).")
    if run.status in (FAILED, DIVERGED, INTERRUPTED) and run.error:
        st.error(md(run.error), icon=":material/error:")
    left, right = st.columns([1, 2])
    with left:
        st.caption("Hyper-parameters")
        st.json(run.hyperparameters, expanded=True)
        st.caption(f"Device: {md(run.device or '—')} · source: {md(run.source)} · id `{run.id}` · "
                   f"disk {store.disk_bytes(run.id) / 1e6:,.1f} MB")
    with right:
        summary_metrics(run)


run = store.find_run(chosen)
if run is None:
    st.stop()
run_actions(run)
share_link(run.id)
run_header(chosen)
notes_editor(run)
if run.status in ENDED or run.status == RUNNING:
    tabs = st.tabs(["Confusion matrix", "Validation tiles", "Filters and feature maps (ch. 3)"])
    with tabs[0]:
        confusion_view(run)
    predictions = overview.val_predictions(store, run.id)
    for tab, view in ((tabs[1], tile_grid), (tabs[2], learned_filters)):
        with tab:
            if predictions is None or predictions.empty:
                st.caption("Available when the run has finished.")
            else:
                view(run, predictions)
