"""The real-tissue demo block of Home: what it downloads (sizes, licences) before the button, one
progress view with Stop / Resume, the offline "place these files" guidance, and the finished
result (map over the image, areas, tumour-stroma ratio, held-out score, report), which every
later visit opens at once from the job's folder. Logic lives in :mod:`services.demo`."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.adapters import job_manager
from dashboard.widgets import live_job, md, random_weights_badge, user_errors
from services.config import get_settings
from services.demo import results, sources
from services.tissuemap import job as map_job

INTRO = ("From an empty machine to a classifier of real colorectal tissue and one mapped 5000 x 5000 px image: "
         "downloads Kather 2016 and MobileNetV2's ImageNet weights, splits the tiles grouped by source image, "
         "trains strategy C (cached features, global-average-pooling head), calibrates it on validation, scores "
         "it on the held-out test split and maps one larger image. About 5-10 minutes on a quiet 2-core CPU with a "
         "normal connection (longer when the machine is busy); it runs in "
         "the background and resumes where it stopped. For research and teaching, not diagnosis.")


def _files_table() -> None:
    found = sources.demo_sources()
    rows = [f"| {md(s.title)} | {md(s.size_text)} | {md(s.licence)} |" for s in found.values()]
    note = ("The larger-images zip is 742 MB; only one image (about 75 MB) is read from it with HTTP range "
            "requests, or the whole zip when the server does not allow them.")
    st.markdown("\n".join(["| file | size | licence |", "| --- | --- | --- |", *rows]))
    st.caption(note)


def _offline_guidance() -> None:
    if not get_settings().offline:
        return
    items = sources.placements()
    missing = [item for item in items if not item.present]
    if not missing:
        st.info("Offline: every file the demo needs is here.", icon=":material/cloud_off:")
        return
    lines = [f"- {md(item.what)}: place it at `{item.where}` ({md(item.alternative)})" for item in missing]
    st.warning("**Offline (downloads are off): place these files, then press the button.** The demo continues "
               "from what is there.\n\n" + "\n".join(lines), icon=":material/cloud_off:")


def _result(shown: results.DemoResult) -> None:
    if shown.generated:
        st.warning("GENERATED test data, not tissue: these numbers say nothing about real tissue.",
                   icon=":material/science:")
    if shown.random_weights:
        random_weights_badge("the backbone's weights are random, not ImageNet.")
    image, numbers = st.columns([3, 2])
    image.image(str(shown.file(map_job.OVERLAY)), caption=f"Tissue map over {shown.image}")
    with numbers:
        for line in shown.lines():
            st.markdown(md(line))
        areas = shown.file(map_job.AREAS_CSV)
        if areas is not None:
            frame = pd.read_csv(areas)
            columns = [c for c in ("class", "area_mm2", "percent") if c in frame.columns]
            st.dataframe(frame[columns], hide_index=True)
        report = shown.file(map_job.REPORT_HTML)
        if report is not None:
            st.download_button("Clinician report (HTML)", report.read_bytes, file_name="real_tissue_demo_report.html",
                               mime="text/html", icon=":material/download:", key="demo_report")


def real_tissue_demo() -> None:
    """The whole block; one call from Home."""
    manager = job_manager()
    with st.container(border=True):
        st.subheader(":material/science: Real-tissue demo")
        st.markdown(INTRO)
        with user_errors():
            finished = results.latest_finished(manager)
            shown = results.demo_result(finished, manager.job_dir(finished.id)) if finished else None
            if shown is not None:
                _result(shown)
            _files_table()
            _offline_guidance()
            newest = results.latest(manager)
            if newest is not None and newest.status != "finished":
                live_job(manager, newest.id, "demo-stop")
            busy = newest is not None and newest.active
            label = "Run the real-tissue demo again" if shown is not None else "Run the real-tissue demo"
            if st.button(label, icon=":material/play_arrow:", disabled=busy, key="demo_start",
                         type="secondary" if shown is not None else "primary"):
                results.start_or_resume(manager)
                st.rerun()
