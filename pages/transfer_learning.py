"""Transfer learning: which approach should we use for our tiles? Compare strategies A-D on one
dataset split, next to the book's numbers; then open a tile and see what each model predicts and
where it looked (Grad-CAM, feature maps)."""

import pandas as pd
import streamlit as st

from dashboard import transfer_adapters as views
from dashboard.adapters import job_manager
from dashboard.training_adapters import run_store
from dashboard.widgets import job_status_line, job_stop_button, synthetic_badge, user_errors
from services.datasets import index, sources, splits
from services.models import weights as registry
from services.transfer import experiments, inspection, report
from services.transfer.gradcam import spatial_layer_names
from services.transfer.models import STRATEGIES
from services.transfer.results import BOOK_REFERENCE, BOOK_REFERENCE_COLUMN, results_frame

st.title(":material/model_training: Transfer learning")
st.caption("Book ch. 4 and 8: train from scratch (A), freeze a pretrained backbone and train a new head "
           "(B, the book's vgg16_v4), train a head on cached backbone features (C), or fine-tune the top "
           "block (D). Runs go through the training service and show up in the Training monitor.")
manager = job_manager()

# --- backbones ------------------------------------------------------------------------------------
with st.expander("Backbones and their ImageNet weights", icon=":material/download:"):
    st.dataframe(pd.DataFrame([{"backbone": s.name, "weights": s.state, "details": s.reason, "fix": s.fix}
                               for s in registry.all_statuses()]), hide_index=True)
    chosen = st.selectbox("Backbone", list(registry.BACKBONES), key="tl_weights_backbone")
    status = registry.weights_status(chosen)
    if status.state == registry.DOWNLOADABLE and st.button(f"Download {chosen} weights", icon=":material/download:"):
        manager.submit("weights-download", f"Download {chosen} weights", registry.download_job(chosen))
    for job in manager.list(kind="weights-download")[:1]:
        job_status_line(job)
    upload = st.file_uploader(f"…or upload {registry.spec(chosen).file_name}", type=["h5"], key="tl_weights_upload")
    if upload is not None and st.button("Check and install the file", icon=":material/upload:"):
        with user_errors():
            registry.install_weights_file(chosen, upload, original_name=upload.name)
            st.success(f"{upload.name} fits {chosen} and is installed in the model cache.")

# --- set up a comparison --------------------------------------------------------------------------
st.subheader("Compare strategies")
datasets = [info.name for info in sources.list_datasets()]
left, right = st.columns(2)
dataset = left.selectbox("Dataset", datasets, key="tl_dataset")
saved = splits.list_splits(dataset) if dataset else []
if not saved:
    right.info("This dataset has no saved split yet (the Dataset explorer makes them).")
    if right.button("Save a 60/20/20 split grouped by source image as 'grouped'", icon=":material/call_split:"):
        with user_errors(), st.spinner("Indexing and splitting…"):
            frame = index.load_index(sources.dataset_folder(dataset))
            splits.save_split(dataset, "grouped", splits.make_split(frame, method="grouped"))
            st.session_state["tl_split"] = "grouped"
            st.rerun()
split = right.selectbox("Saved split", saved, key="tl_split")
strategies = st.pills("Strategies", list(STRATEGIES), selection_mode="multi", default=["B", "C"],
                      format_func=lambda key: STRATEGIES[key].title, key="tl_strategies")
with st.popover("What the strategies do", icon=":material/help:"):
    for strategy in STRATEGIES.values():
        st.markdown(f"**{strategy.title}** — {strategy.description}")
left, middle, right = st.columns(3)
backbones = left.multiselect("Backbones", list(registry.BACKBONES), default=["mobilenet_v2"], key="tl_backbones")
weights = left.radio("Backbone weights", ["imagenet", "random"], horizontal=True, key="tl_weights",
                     format_func=lambda w: "ImageNet" if w == "imagenet" else "random init (untrained baseline)")
scratch = left.multiselect("Models for A (from scratch)", list(experiments.SCRATCH_MODELS), default=["cnn_v1"],
                           key="tl_scratch") if "A" in (strategies or []) else []
image_size = middle.number_input("Image size (px)", 8, 1024, 150, key="tl_size")
epochs = middle.number_input("Epochs", 1, 1000, 5, key="tl_epochs")
batch_size = right.number_input("Batch size", 1, 1024, 32, key="tl_batch")
fine_tune_epochs = right.number_input("Fine-tuning epochs (D)", 1, 1000, 3, key="tl_ft_epochs")

spec = experiments.ExperimentSpec(
    dataset=dataset, split=split or "", strategies=list(strategies or []), backbones=backbones, weights=weights,
    scratch_models=scratch, image_size=int(image_size), epochs=int(epochs), batch_size=int(batch_size),
    fine_tune_epochs=int(fine_tune_epochs))
planned = []
with user_errors():
    planned = experiments.plan(spec)
if planned:
    st.dataframe(pd.DataFrame([{"run": p.label, "will run": p.enabled, "why not": p.reason} for p in planned]),
                 hide_index=True)
if weights == "random":
    st.caption(":orange-badge[random init] Backbones start from random weights: an untrained baseline, "
               "not transfer learning.")
if st.button("Run comparison", icon=":material/play_arrow:", type="primary",
             disabled=not split or not any(p.enabled for p in planned)):
    with user_errors():
        st.session_state["tl_job"] = experiments.start_experiment(manager, spec, run_store())
        st.toast("Comparison queued; its runs also appear in the Training monitor.")

# --- one comparison -------------------------------------------------------------------------------
jobs = views.experiment_jobs(manager)
if not jobs:
    st.info("No comparison yet: choose strategies and backbones above and press Run comparison.")
    st.stop()
ids = [job.id for job in jobs]
selected = st.session_state.get("tl_job")
job_id = st.selectbox("Comparison", ids, index=ids.index(selected) if selected in ids else 0,
                      format_func=lambda i: views.experiment_label(manager.get(i)), key="tl_pick")
state = manager.get(job_id)


@st.fragment(run_every=2 if state.active else None)
def live_status(job_id: str, was_active: bool) -> None:
    current = manager.get(job_id)
    job_status_line(current)
    job_stop_button(manager, current, key_prefix="tl-stop")
    if was_active and not current.active:
        st.rerun()  # the whole page, to show the final results


live_status(job_id, state.active)
store = run_store()
results = experiments.collect_results(state.result, store)
for skipped in (state.result or {}).get("skipped", []):
    st.warning(f"**{skipped['label']}** was not run: {skipped['reason']}", icon=":material/block:")
if not results:
    st.stop()

st.subheader("Results")
if any(r.synthetic for r in results):
    synthetic_badge()
if any(r.weights == "random init" for r in results):
    st.caption(":orange-badge[random init] rows use untrained backbones: a baseline, not ImageNet transfer.")
table = results_frame(results)
percent = st.column_config.NumberColumn(format="percent")
st.dataframe(table, hide_index=True, column_config={
    "val_accuracy": percent, "test_accuracy": percent, "macro_f1": percent,
    BOOK_REFERENCE_COLUMN: st.column_config.NumberColumn(
        format="percent", help="Published in the book on the real Kather 2016 tiles; not measured here."),
    "seconds_per_epoch": st.column_config.NumberColumn(format="%.2f s"),
    "wall_seconds": st.column_config.NumberColumn(format="%.1f s"),
    "extraction_seconds": st.column_config.NumberColumn("feature extraction (s)", format="%.1f s"),
})
st.caption(f"**{BOOK_REFERENCE_COLUMN}**: " + "; ".join(f"{what}: {value:.1%}" for value, what in BOOK_REFERENCE.values())
           + ". These are the book's numbers, not results of this dashboard.")

spec_of_job = experiments.ExperimentSpec.from_dict(state.result["spec"])


def html_report() -> str:
    frame = splits.load_split(spec_of_job.dataset, spec_of_job.split)
    tiles = frame[frame.split == "test"].groupby("label").head(1).path.tolist()[:3]
    named = [(r.name, views.loaded_model(r.model_path)) for r in results if r.model_path]
    note = f"Dataset {spec_of_job.dataset}, split {spec_of_job.split}."
    return report.html_report(results, dataset_note=note, gradcam_examples=inspection.gradcam_examples(named, tiles))


left, middle, right = st.columns(3)
left.download_button("Table as CSV", report.to_csv(results), "transfer_results.csv", "text/csv",
                     icon=":material/table:", on_click="ignore")
middle.download_button("Everything as JSON", report.to_json(results), "transfer_results.json", "application/json",
                       icon=":material/data_object:", on_click="ignore")
right.download_button("HTML report", html_report, "transfer_report.html", "text/html",
                      icon=":material/description:", on_click="ignore")

curves, recall = st.tabs(["Learning curves", "Per-class recall"])
with curves:
    metric = st.segmented_control("Metric", ["val_accuracy", "accuracy", "val_loss", "loss"],
                                  default="val_accuracy", key="tl_metric")
    st.plotly_chart(views.curves_chart(results, metric or "val_accuracy"))
with recall:
    st.plotly_chart(views.recall_chart(results))
st.markdown("**Confusion matrices (test split)**")
for start in range(0, len(results), 3):
    for column, result in zip(st.columns(3), results[start:start + 3]):
        if result.confusion:
            column.plotly_chart(views.confusion_chart(result), key=f"cm-{result.run_id}")

# --- per-tile inspection --------------------------------------------------------------------------
st.subheader("Inspect a tile")
explained = [r for r in results if r.model_path]
source = st.radio("Tile", ["From the test split", "Upload a tile"], horizontal=True, key="tl_tile_source")
tile_source = None
if source == "Upload a tile":
    upload = st.file_uploader("A tile image", type=views.UPLOAD_TYPES, key="tl_tile_upload")
    tile_source = upload.getvalue() if upload is not None else None
else:
    with user_errors():
        labels = views.test_tiles(spec_of_job.dataset, spec_of_job.split)
        tile_source = st.selectbox("Test tile", list(labels), key="tl_tile",
                                   format_func=lambda p: f"{labels[p]} · {p.rsplit('/', 1)[-1]}")
if tile_source is not None and explained:
    with user_errors():
        notes = []
        for result, column in zip(explained, st.columns(max(3, len(explained)))):
            view = views.tile_view(result.model_path, tile_source)
            notes = view["notes"]
            column.markdown(f"**{result.name}**")
            column.image(view["overlay"], caption="Grad-CAM, predicted class", width="stretch")
            column.plotly_chart(views.probability_chart(result.class_names, view["probabilities"],
                                                        "class probabilities"), key=f"p-{result.run_id}")
        for note in notes:
            st.caption(f":material/info: {note}")
        left, right = st.columns(2)
        paths = {r.name: r.model_path for r in explained}
        which = left.selectbox("Feature maps of model", list(paths), key="tl_fm_model")
        layer = right.selectbox("Layer", spatial_layer_names(views.loaded_model(paths[which])), key="tl_fm_layer")
        st.image(views.feature_mosaic(paths[which], tile_source, layer), caption=f"first 12 feature maps of {layer}")
