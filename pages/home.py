"""Home: what the dashboard does, and the compute device it runs on."""

import streamlit as st

from dashboard.pages_registry import PAGES, page
from services import runtime

st.title(":material/biotech: Applied deep learning for the pathology lab")
st.markdown(
    "Tools built on the systems of *Advanced Applied Deep Learning* (U. Michelucci): explore "
    "histology tile datasets, train and monitor models, compare transfer-learning strategies, "
    "create style-transfer pictures and run YOLO detectors, all from the browser."
)

with st.container(border=True):
    st.subheader("Compute")
    columns = st.columns(3)
    for device in runtime.quick_summary():
        memory = f" · {device.memory_mb / 1024:.0f} GiB" if device.memory_mb else ""
        columns[0].metric(device.kind, device.name + memory)
    columns[1].metric("TensorFlow", runtime.tensorflow_version() or "not installed")
    columns[2].page_link(page("system.py").link, label="Device details and speed probe", icon=":material/memory:")

st.subheader("Working areas")
for spec in PAGES:
    if spec.section == "Overview":
        continue
    with st.container(border=True):
        st.page_link(spec.link, label=spec.title, icon=spec.icon)
        st.caption(spec.summary)
