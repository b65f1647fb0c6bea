"""Dataset explorer: pick a tile dataset, look at it, check it, colour-analyse it, split it."""

import streamlit as st

from dashboard import dataset_views as views

st.title(":material/grid_view: Dataset explorer")
dataset = views.source_picker()
frame = views.load_or_index(dataset)
if frame is not None:
    views.overview(dataset, frame)
    section = st.segmented_control("Section", views.SECTIONS, default="Gallery", key="explorer_section")
    views.RENDERERS[section or "Gallery"](dataset, frame)
