"""Training monitor: start runs, watch them live, compare curves, inspect what a model learned.

Runs execute in their own OS process (closing the browser does not stop them); the live view
refreshes with st.fragment only while a selected run is queued or running.
"""

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.datasets_adapters import thumbnail
from dashboard.training_adapters import run_store
from dashboard.widgets import STATUS_ICONS, synthetic_badge, user_errors
from services.datasets import sources, splits
from services.images import decode_image
from services.models.catalog import DESCRIPTIONS, model_names
from services.training import charts, launcher, overview
from services.training.config import OPTIMIZERS, RunConfig
from services.training.store import ACTIVE, DIVERGED, ENDED, FAILED, INTERRUPTED, RUNNING

st.title(":material/monitoring: Training monitor")
st.caption("Train the book's histology models (ch. 8) and watch them learn. Runs keep going when the "
           "browser closes; a script on another machine shows up here by adding `DashboardCallback`.")

store = None
with user_errors():
    store = run_store()
    launcher.schedule(store)  # marks vanished workers interrupted, starts queued runs
if store is None:
    st.stop()


def run_label(run) -> str:
    return f"{run.name} · {run.id[-6:]}"


# --- start a run -------------------------------------------------------------------------------
with st.expander("Start a training run", icon=":material/play_arrow:", expanded=not store.list_runs()):
    top_left, top_right = st.columns(2)
    dataset = top_left.selectbox("Dataset", [info.name for info in sources.list_datasets()])
    split = top_right.selectbox("Split", [None, *(splits.list_splits(dataset) if dataset else [])],
                                format_func=lambda s: s or "new split grouped by source image (60/20/20)")
    with st.form("start_run"):
        left, middle, right = st.columns(3)
        model = left.selectbox("Model", model_names(standalone=True), format_func=lambda n: f"{n} — {DESCRIPTIONS.get(n, '')}")
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
                                   image_size=int(image_size), name=name or None)
                run_id = launcher.start_run(config, store)
                st.session_state["selected_runs"] = [run_id]
                st.toast("Run queued; it starts as soon as a training slot is free.")

# --- runs table --------------------------------------------------------------------------------
runs = store.list_runs()
if not runs:
    st.info("No runs yet: start one above, or add `DashboardCallback` to your own `model.fit`.")
    st.stop()

st.subheader("Runs")
left, middle, right = st.columns(3)
status_filter = left.multiselect("Status", sorted({r.status for r in runs}))
model_filter = middle.multiselect("Model", sorted({r.model or "" for r in runs}))
dataset_filter = right.multiselect("Dataset", sorted({r.dataset or "" for r in runs}))
shown = [r for r in runs if (not status_filter or r.status in status_filter)
         and (not model_filter or (r.model or "") in model_filter)
         and (not dataset_filter or (r.dataset or "") in dataset_filter)]
table = overview.runs_frame(store, shown)
st.dataframe(table, hide_index=True, column_config={
    "best val acc": st.column_config.ProgressColumn(format="%.3f", min_value=0.0, max_value=1.0),
    "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})

by_id = {r.id: r for r in runs}
if "selected_runs" not in st.session_state:
    st.session_state["selected_runs"] = [runs[0].id]
st.session_state["selected_runs"] = [i for i in st.session_state["selected_runs"] if i in by_id]
selected = st.multiselect("Runs to show", list(by_id), format_func=lambda i: run_label(by_id[i]),
                          key="selected_runs")
if not selected:
    st.stop()


# --- live curves -------------------------------------------------------------------------------
@st.fragment(run_every=overview.REFRESH_SECONDS if any(by_id[i].status in ACTIVE for i in selected) else None)
def live_view(run_ids: list[str], was_active: bool) -> None:
    launcher.schedule(store)
    current = [run for run in (store.find_run(i) for i in run_ids) if run is not None]
    tables = {run_label(run): store.epoch_table(run.id) for run in current}
    st.plotly_chart(charts.curves_figure(tables), key="curves")
    for run in current:
        progress = overview.run_progress(store, run)
        st.progress(progress.fraction, text=f"{STATUS_ICONS.get(run.status, '')} **{run_label(run)}** · "
                                            f"{progress.text}")
        if run.status == RUNNING:
            batches = store.metrics(run.id, names=["batch_loss"])
            if not batches.empty:
                st.plotly_chart(charts.batch_loss_figure(batches, run_label(run)), key=f"batches-{run.id}")
    if was_active and not any(run.active for run in current):
        st.rerun()  # everything ended: one full rerun redraws the page without the timer


live_view(selected, any(by_id[i].status in ACTIVE for i in selected))


# --- one run in detail -------------------------------------------------------------------------
def run_actions(run) -> None:
    columns = st.columns(6)
    if run.status in ACTIVE and columns[0].button("Stop", icon=":material/stop:"):
        launcher.stop_run(run.id, store)
        st.toast("Stop requested: the run ends after its current batch.")
        st.rerun()
    if run.status in launcher.RESUMABLE and run.source != "script" and columns[1].button("Resume", icon=":material/replay:"):
        with user_errors():
            launcher.resume_run(run.id, store)
            st.rerun()
    with columns[2].popover("Delete", icon=":material/delete:", disabled=run.status == RUNNING):
        st.write(f"Delete **{run.name}** with its metrics, checkpoints and models?")
        if st.button("Yes, delete it", type="primary"):
            with user_errors():
                store.delete_run(run.id)
                st.rerun()
    columns[3].download_button("Metrics CSV", lambda: overview.metrics_csv(store, run.id),
                               f"{run.id}-metrics.csv", "text/csv", icon=":material/download:", on_click="ignore")
    for column, kind, label in ((columns[4], "best_model", "Best model"), (columns[5], "last_model", "Last model")):
        path = store.artifact_path(run.id, kind) or _checkpoint(run, kind)
        if path is not None:
            column.download_button(label, path.read_bytes, f"{run.id}-{path.name}", "application/octet-stream",
                                   icon=":material/download:", on_click="ignore")


def _checkpoint(run, kind: str):
    path = store.run_dir(run.id) / ("best.keras" if kind == "best_model" else "last.keras")
    return path if path.exists() else None


def summary_metrics(run) -> None:
    summary = run.summary
    columns = st.columns(5)
    for column, key, label in zip(columns, ("val_accuracy", "test_accuracy", "test_macro_f1"),
                                  ("val accuracy", "test accuracy", "test macro F1")):
        column.metric(label, f"{summary[key]:.3f}" if key in summary else "—")
    columns[3].metric("parameters", f"{summary.get('total_parameters', summary.get('parameters', 0)):,}")
    columns[4].metric("s / epoch", f"{summary['seconds_per_epoch']:.1f}" if summary.get("seconds_per_epoch") else "—")
    recall = summary.get("test_recall") or summary.get("val_recall")
    if recall:
        st.caption("Recall per class (test set, or validation when there is no test set)")
        st.dataframe(pd.DataFrame([recall]), hide_index=True)


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
        verdict = "correct" if row.label == row.predicted else "WRONG"
        caption = f"{verdict}: true {row.label} · predicted {row.predicted} ({row.confidence:.2f})"
        if image is None:
            columns[number % 8].caption(f"{path.name} cannot be read · {caption}")
        else:
            columns[number % 8].image(image, caption=caption)


def learned_filters(run, predictions: pd.DataFrame) -> None:
    model_path = store.artifact_path(run.id, "final_model") or _checkpoint(run, "best_model")
    if model_path is None:
        st.caption("Available once the run has saved a model.")
        return
    tile = st.selectbox("Tile", predictions.path.tolist(), format_func=lambda p: p.rsplit("/", 1)[-1],
                        key=f"tile-{run.id}")
    if st.button("Show filters and feature maps", icon=":material/grid_view:", key=f"filters-{run.id}"):
        from services.training.inspection import first_layer_view

        with st.spinner("Loading the model…"), user_errors():
            view = first_layer_view(model_path, tile)
            st.image(decode_image(tile).pixels, caption="the tile", width=150)
            st.caption(f"Learned kernels of `{view.conv_name}` (first 12)")
            st.image(list(view.kernels), width=48)
            st.caption(f"Feature maps of the tile after `{view.conv_name}` (before pooling)")
            st.image(list(view.before_pooling), width=96)
            if view.after_pooling is not None:
                st.caption(f"… and after `{view.pool_name}`")
                st.image(list(view.after_pooling), width=96)


st.subheader("Run details")
chosen = st.selectbox("Run", selected, format_func=lambda i: run_label(by_id[i]))
run = store.find_run(chosen)
if run is None:
    st.stop()
if run.synthetic:
    synthetic_badge("trained on synthetic demo data")
if run.status in (FAILED, DIVERGED, INTERRUPTED) and run.error:
    st.error(run.error, icon=":material/error:")
run_actions(run)
left, right = st.columns([1, 2])
with left:
    st.caption("Hyper-parameters")
    st.json(run.hyperparameters, expanded=True)
    st.caption(f"Device: {run.device or '—'} · source: {run.source} · id `{run.id}`")
with right:
    summary_metrics(run)
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
