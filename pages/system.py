"""System: TensorFlow's view of the devices, the book's CPU vs GPU matmul probe, and the
background processes (job runner, model service) that hold TensorFlow for the dashboard."""

import pandas as pd
import streamlit as st

from dashboard.system_views import background_processes, tensorflow_devices, show_service_error
from services import runtime
from services.model_service import client

st.title(":material/memory: System")
st.caption(f"TensorFlow {runtime.tensorflow_version()} · TensorFlow runs in the model service and in job "
           "worker processes, never in this web server.")

devices = tensorflow_devices()
if devices is not None:
    st.dataframe(pd.DataFrame([{"kind": d["kind"], "name": d["name"], "memory (MiB)": d["memory_mb"]}
                               for d in devices]), hide_index=True)
    if not any(d["kind"] == "GPU" for d in devices):
        st.info("No GPU visible to TensorFlow: everything runs on the CPU. Long jobs still run in "
                "the background, only slower.")

st.subheader("Matrix multiplication probe (book ch. 2)")
st.markdown("A 100x100 product is no faster on a GPU, a large one is dramatically faster.")
if st.button("Run probe", icon=":material/speed:"):
    with st.spinner("Multiplying in the model service…"), show_service_error():
        results = client.call("system.matmul_probe").result["results"]
        st.dataframe(
            pd.DataFrame([{"device": r["device"], "n": r["size"], "ms": r["seconds"] * 1000, "GFLOP/s": r["gflops"]}
                          for r in results]).style.format({"ms": "{:.2f}", "GFLOP/s": "{:.1f}"}),
            hide_index=True)

st.subheader("Background processes")
st.dataframe(pd.DataFrame(background_processes()), hide_index=True)
