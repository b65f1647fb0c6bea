"""Transfer learning: which approach should we use for our tiles? Compare strategies A-D on one
dataset split, next to the book's numbers; then open a tile and see what each model predicts and
where it looked (Grad-CAM, feature maps). Training runs in a job worker, models are run by the
model service: this page never imports TensorFlow."""

import pandas as pd
import streamlit as st

from dashboard import choices, feedback
from dashboard import transfer_adapters as views
from dashboard.adapters import job_manager
from dashboard.training_adapters import run_store
from dashboard.widgets import (live_job, mark_live, model_preview_wanted, random_weights_badge, synthetic_badge,
                               user_errors, why_disabled)
from services import provenance
from services.datasets import index, sources, splits
from services.metrics import formatting
from services.models import weights as registry
from services.transfer import crossdataset, experiments, report
from services.transfer.models import POOLINGS, STRATEGIES
from services.transfer.results import BOOK_REFERENCE, BOOK_REFERENCE_COLUMN, results_frame

st.title(":material/model_training: Transfer learning")
st.caption("Book ch. 4 and 8: train from scratch (A), freeze a pretrained backbone and train a new head "
           "(B, the book's vgg16_v4), train a head on cached backbone features (C), or fine-tune the top "
           "block (D). Runs go through the job queue and show up in the Training monitor.")
manager = job_manager()
WEIGHTS_PLACE = "tl-weights"

# --- backbones ------------------------------------------------------------------------------------
with st.expander("Backbones and their ImageNet weights", icon=":material/download:", key="tl_weights_expander"):
    st.dataframe(pd.DataFrame([{"backbone": s.name, "weights": s.state, "details": s.reason, "fix": s.fix}
                               for s in registry.all_statuses()]), hide_index=True, column_config={
        "backbone": st.column_config.TextColumn(width="small"), "weights": st.column_config.TextColumn(width="small"),
        "details": st.column_config.TextColumn(width="large"), "fix": st.column_config.TextColumn(width="large")})
    chosen = st.selectbox("Backbone", list(registry.BACKBONES), key="tl_weights_backbone", persist_state="session",
                          format_func=lambda name: registry.spec(name).title)
    backbone_spec = registry.spec(chosen)
    status = registry.weights_status(chosen)
    weight_jobs = views.weights_jobs(manager, chosen)
    busy = bool(weight_jobs) and weight_jobs[0].active
    if status.state == registry.DOWNLOADABLE and st.button(
            f"Download {backbone_spec.title} weights (about {backbone_spec.approx_mb:g} MB)",
            icon=":material/download:", disabled=busy):
        with user_errors():
            mark_live(registry.submit_download(manager, chosen))
            feedback.flash(WEIGHTS_PLACE, f"Downloading the {backbone_spec.title} weights: progress below.", "info")
            st.rerun()
    full = f" or a full model with its ImageNet top ({backbone_spec.full_file_name}, .h5 or .keras)" \
        if backbone_spec.full_file_name else ""
    upload = st.file_uploader(f"…or upload {backbone_spec.file_name}{full}", type=views.WEIGHTS_UPLOAD_TYPES,
                              key="tl_weights_upload")
    if upload is not None and st.button("Check and install the file", icon=":material/upload:", disabled=busy):
        with user_errors():
            mark_live(registry.submit_install(manager, chosen, upload.name, upload.getvalue()))
            feedback.flash(WEIGHTS_PLACE, f"Checking {upload.name} for {backbone_spec.title}: progress below.", "info")
            st.rerun()

    feedback.show_flashes(WEIGHTS_PLACE)
    if weight_jobs:  # when it ends, the whole page reruns: the status table and the plan change
        live_job(manager, weight_jobs[0].id, "tl-weights")

# --- set up a comparison --------------------------------------------------------------------------
st.subheader("Compare strategies")
datasets = [info.name for info in sources.list_datasets()]
left, right = st.columns(2)
dataset = left.selectbox("Dataset", datasets, key="tl_dataset", persist_state="session")
saved = splits.list_splits(dataset) if dataset else []
if not saved:
    right.info("This dataset has no saved split yet (the Dataset explorer makes them).")
    if right.button("Save a 60/20/20 split grouped by source image as 'grouped'", icon=":material/call_split:"):
        with user_errors(), st.spinner("Indexing and splitting…"):
            frame = index.load_index(sources.dataset_folder(dataset))
            splits.save_split(dataset, "grouped", splits.make_split(frame, method="grouped"))
            st.session_state["tl_split"] = "grouped"
            st.rerun()
choices.keep_valid("tl_split", saved)  # a split of the dataset chosen before is no choice here
split = right.selectbox("Saved split", saved, key="tl_split", persist_state="session")
strategies = st.pills("Strategies", list(STRATEGIES), selection_mode="multi", default=["B", "C"],
                      format_func=lambda key: STRATEGIES[key].title, key="tl_strategies", persist_state="session")
with st.popover("What the strategies do", icon=":material/help:"):
    for strategy in STRATEGIES.values():
        st.markdown(f"**{strategy.title}** — {strategy.description}")
left, middle, right = st.columns(3)
backbones = left.multiselect("Backbones", list(registry.BACKBONES), default=["mobilenet_v2"], key="tl_backbones",
                             persist_state="session")
weights = left.radio("Backbone weights", [provenance.IMAGENET, provenance.RANDOM], horizontal=True, key="tl_weights",
                     persist_state="session",
                     format_func=lambda w: "ImageNet" if w == provenance.IMAGENET else f"{provenance.RANDOM_INIT} (untrained baseline)")
scratch = left.multiselect("Models for A (from scratch)", list(experiments.SCRATCH_MODELS), default=["cnn_v1"],
                           key="tl_scratch", persist_state="session") if "A" in (strategies or []) else []
image_size = middle.number_input("Image size (px)", 8, 1024, 150, key="tl_size", persist_state="session")
epochs = middle.number_input("Epochs", 1, 1000, 5, key="tl_epochs", persist_state="session")
batch_size = right.number_input("Batch size", 1, 1024, 32, key="tl_batch", persist_state="session")
fine_tune_epochs = right.number_input("Fine-tuning epochs (D)", 1, 1000, 3, key="tl_ft_epochs", persist_state="session")
head_pooling, folds = "flatten", 0
if "C" in (strategies or []):
    head_pooling = middle.radio("Head of C", list(POOLINGS), horizontal=True, key="tl_pooling", persist_state="session",
                                format_func=POOLINGS.get,
                                help="Global average pooling keeps only the channels: far fewer head weights "
                                     "on large feature maps (MobileNetV2: 1,280 instead of 32,000 at 150 px).")
    folds = right.number_input("Cross-validation folds for C (0: none)", 0, experiments.MAX_FOLDS, 0,
                               key="tl_folds", persist_state="session",
                               help="k-fold cross-validation grouped by source image over "
                                    "every tile of the split: mean and spread. For small datasets.")

spec = experiments.ExperimentSpec(
    dataset=dataset, split=split or "", strategies=list(strategies or []), backbones=backbones, weights=weights,
    scratch_models=scratch, image_size=int(image_size), epochs=int(epochs), batch_size=int(batch_size),
    fine_tune_epochs=int(fine_tune_epochs), head_pooling=head_pooling, folds=int(folds))
planned = []
with user_errors():
    planned = experiments.plan(spec)
if planned:
    st.dataframe(pd.DataFrame([{"run": p.label, "will run": p.enabled, "why not": p.reason} for p in planned]),
                 hide_index=True, column_config={"run": st.column_config.TextColumn(width="medium"),
                                                 "why not": st.column_config.TextColumn(width="large")})
if weights == provenance.RANDOM:
    random_weights_badge("Backbones start from random weights: an untrained baseline, not transfer learning.")
why_not = experiments.why_not_runnable(spec, planned)
button, reason = st.columns([1, 3], vertical_alignment="center")
why_disabled(why_not, reason)
if button.button("Run comparison", icon=":material/play_arrow:", type="primary", disabled=bool(why_not)):
    with user_errors():
        new_job = experiments.start_experiment(manager, spec)
        choices.select_next("tl_job", new_job)  # the comparison below shows the new one
        st.toast("Comparison queued; its runs also appear in the Training monitor.")

# --- one comparison -------------------------------------------------------------------------------
jobs = views.experiment_jobs(manager)
if not jobs:
    st.info("No comparison yet: choose strategies and backbones above and press Run comparison.")
    st.stop()
job_id = choices.job_picker("Comparison", jobs, "tl_job", views.experiment_label)
state = manager.get(job_id)


live_job(manager, job_id, "tl-stop", every=2.0)  # when it ends, the page shows the final results
store = run_store()
results = experiments.collect_results(state.result, store)
for skipped in (state.result or {}).get("skipped", []):
    st.warning(f"**{skipped['label']}** was not run: {skipped['reason']}", icon=":material/block:")
if not results:
    st.stop()

st.subheader("Results")
if any(r.synthetic for r in results):
    synthetic_badge()
if any(r.weights == provenance.RANDOM_INIT for r in results):
    random_weights_badge("rows use untrained backbones: a baseline, not ImageNet transfer.")
table = results_frame(results)
percent = st.column_config.NumberColumn(format="percent", width="small")
st.dataframe(table, hide_index=True, column_config={
    "name": st.column_config.TextColumn(width="medium"),
    "val_accuracy": st.column_config.NumberColumn("validation acc. (chose the checkpoint)", format="percent"),
    "test_accuracy": percent, "macro_f1": percent,
    "cv_accuracy_mean": st.column_config.NumberColumn("cross-val. accuracy", format="percent",
                                                      help="Mean over folds grouped by source image (strategy C)."),
    "cv_accuracy_std": st.column_config.NumberColumn("cross-val. spread (sd)", format="percent"),
    BOOK_REFERENCE_COLUMN: st.column_config.NumberColumn(
        "book reference (val. acc.)", format="percent", width="medium",
        help="Published in the book on the real Kather 2016 tiles; not measured here."),
    "total_parameters": st.column_config.NumberColumn("parameters", format="localized"),
    "trainable_parameters": st.column_config.NumberColumn("trainable", format="localized"),
    "seconds_per_epoch": st.column_config.NumberColumn("s / epoch", format="%.2f s"),
    "wall_seconds": st.column_config.NumberColumn("wall time", format="%.1f s"),
    "extraction_seconds": st.column_config.NumberColumn("feature extraction", format="%.1f s"),
    "device": st.column_config.TextColumn(width="medium"),
})
st.caption(f"**{BOOK_REFERENCE_COLUMN}**: " + "; ".join(f"{what}: {value:.1%}" for value, what in BOOK_REFERENCE.values())
           + ". These are the book's numbers, not results of this dashboard.")

spec_of_job = experiments.ExperimentSpec.from_dict(state.result["spec"])
left, middle, right = st.columns(3)
left.download_button("Table as CSV", report.to_csv(results), "transfer_results.csv", "text/csv",
                     icon=":material/table:", on_click="ignore")
middle.download_button("Everything as JSON", report.to_json(results), "transfer_results.json", "application/json",
                       icon=":material/data_object:", on_click="ignore")
report_key = f"tl_report_{job_id}_{len(results)}"
if right.button("Prepare the HTML report", icon=":material/description:", key="tl_report_build"):
    with user_errors(), st.spinner("Explaining a few test tiles for the report…"):
        tiles = report.example_tiles(splits.load_split(spec_of_job.dataset, spec_of_job.split))
        st.session_state[report_key] = report.html_report(
            results, dataset_note=f"Dataset {spec_of_job.dataset}, split {spec_of_job.split}.",
            gradcam_examples=views.gradcam_examples(results, tiles)).encode()
if report_key in st.session_state:
    right.download_button("Download the HTML report", st.session_state[report_key], "transfer_report.html",
                          "text/html", icon=":material/download:", on_click="ignore", key="tl_report_download")

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
        test_labels = views.test_tiles(spec_of_job.dataset, spec_of_job.split)
        tile_source = st.selectbox("Test tile", list(test_labels), key="tl_tile",
                                   format_func=lambda p: f"{test_labels[p]} · {p.rsplit('/', 1)[-1]}")
if tile_source is not None and explained and model_preview_wanted("Show Grad-CAM and feature maps", "tl_explain"):
    with user_errors():
        pixels, notes = views.tile_pixels(tile_source)
        for result, column in zip(explained, st.columns(max(3, len(explained)))):
            view = views.tile_view(result.model_path, pixels, result.class_names)
            column.markdown(f"**{result.name}**")
            column.image(view["overlay"], caption=f"Grad-CAM ({view['layer']}), predicted class "
                                                  f"{view['class_names'][view['predicted']]}", width="stretch")
            column.plotly_chart(views.probability_chart(view["class_names"], view["probabilities"],
                                                        "class probabilities"), key=f"p-{result.run_id}")
            notes = [*notes, *(n for n in view["notes"] if n not in notes)]
        for note in notes:
            st.caption(f":material/info: {note}")
        left, right = st.columns(2)
        paths = {r.name: r.model_path for r in explained}
        which = left.selectbox("Feature maps of model", list(paths), key="tl_fm_model")
        info = views.describe(paths[which])
        layers = info["spatial_layers"]
        layer = right.selectbox("Layer", layers, index=layers.index(info["feature_layer"]), key=f"tl_fm_layer_{which}")
        mosaic = views.feature_mosaic(paths[which], pixels, layer)
        st.image(mosaic["mosaic"], caption=f"first {mosaic['shown']} of {mosaic['channels']} feature maps of {layer} "
                                           f"({mosaic['map_size'][0]}x{mosaic['map_size'][1]})")

# --- cross-dataset evaluation ---------------------------------------------------------------------
with st.expander("Evaluate a model on another dataset (explicit class mapping)", icon=":material/compare_arrows:"):
    st.caption("A model trained on Kather 2016 scored on NCT-CRC-HE tiles, or the reverse. Classes are matched "
               "through an explicit mapping; classes without a counterpart are reported, never merged silently.")
    left, middle, right = st.columns(3)
    model_name = left.selectbox("Model", [r.name for r in explained], key="tl_cross_model")
    target = middle.selectbox("Tiles of dataset", datasets, key="tl_cross_dataset")
    mapping_key = right.selectbox("Class mapping", list(crossdataset.MAPPING_NAMES), key="tl_cross_mapping",
                                  format_func=crossdataset.MAPPING_NAMES.get)
    model_classes = next((r.class_names for r in explained if r.name == model_name), [])
    mapping = crossdataset.mapping_for(mapping_key, model_classes)
    st.dataframe(pd.DataFrame(crossdataset.mapping_rows(mapping)),
                 hide_index=True, column_config={"why": st.column_config.TextColumn(width="large")})
    if model_name and st.button("Evaluate", icon=":material/play_arrow:", key="tl_cross_run"):
        with user_errors(), st.spinner("Classifying the tiles in the model service…"):
            chosen_result = next(r for r in explained if r.name == model_name)
            info = views.describe(chosen_result.model_path)
            evaluation = crossdataset.evaluate_dataset(target, views.classifier(chosen_result.model_path),
                                                       info["class_names"], tuple(info["input_shape"][:2]), mapping)
            st.metric("Accuracy on mapped tiles", formatting.percent(evaluation.accuracy),
                      help=f"{evaluation.scored} of {evaluation.tiles} tiles scored; {evaluation.fit}")
            st.caption(formatting.estimate_text(evaluation.estimate()))
            st.dataframe(pd.DataFrame(crossdataset.class_rows(evaluation)),
                         hide_index=True, column_config={"accuracy": st.column_config.NumberColumn(format="percent"),
                                                         "predicted as": st.column_config.TextColumn(width="large")})
            for cls, count in evaluation.unmappable_tiles.items():
                st.warning(f"{count} {cls} tiles have no counterpart among the model's classes: left out of the "
                           "accuracy (their predictions are in the table).")
            for cls, count in evaluation.unmatched_predictions.items():
                st.warning(f"{count} tiles were called {cls}, a class with no counterpart in this dataset: errors.")
