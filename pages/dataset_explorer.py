"""Dataset explorer: pick a tile dataset, look at it, check it, colour-analyse it, split it."""

import streamlit as st

from dashboard import dataset_views as views
from dashboard.delete_control import forget_deleted_notice

st.title(":material/grid_view: Dataset explorer")
dataset = views.source_picker()
views.delete_section(dataset)
frame = views.load_or_index(dataset)
if frame is not None:
    views.overview(dataset, frame)
    section = st.segmented_control("Section", views.SECTIONS, default="Gallery", key="explorer_section",
                                 persist_state="session")
    views.RENDERERS[section or "Gallery"](dataset, frame)
forget_deleted_notice()
