"""System: TensorFlow's view of the devices and the book's CPU vs GPU matmul probe."""

import pandas as pd
import streamlit as st

from services import runtime

st.title(":material/memory: System")
st.caption(f"TensorFlow {runtime.tensorflow_version()}")

with st.spinner("Loading TensorFlow…"):
    devices = runtime.devices()
st.dataframe(
    pd.DataFrame([{"kind": d.kind, "name": d.name, "memory (MiB)": d.memory_mb} for d in devices]),
    hide_index=True,
)
if not any(d.kind == "GPU" for d in devices):
    st.info("No GPU visible to TensorFlow: everything runs on the CPU. Long jobs still run in "
            "the background, only slower.")

st.subheader("Matrix multiplication probe (book ch. 2)")
st.markdown("A 100x100 product is no faster on a GPU, a large one is dramatically faster.")
if st.button("Run probe", icon=":material/speed:"):
    with st.spinner("Multiplying…"):
        results = runtime.matmul_probe()
    st.dataframe(
        pd.DataFrame([{"device": r.device, "n": r.size, "ms": r.seconds * 1000, "GFLOP/s": r.gflops}
                      for r in results]).style.format({"ms": "{:.2f}", "GFLOP/s": "{:.1f}"}),
        hide_index=True,
    )
