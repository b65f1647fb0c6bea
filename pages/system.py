"""System: TensorFlow's view of the devices, the book's CPU vs GPU matmul probe, and every
process of the app (web server, endpoint, job runner and workers, model service) with its memory."""

import pandas as pd
import streamlit as st

from dashboard.adapters import job_manager
from dashboard.system_views import (app_processes, data_root_usage, device_table, show_service_error,
                                    tensorflow_devices)
from dashboard.widgets import model_preview_wanted
from services import runtime, storage
from services.config import get_settings
from services.model_service import client

st.title(":material/memory: System")
st.caption(f"TensorFlow {runtime.tensorflow_version()} · TensorFlow runs in the model service and in job "
           "worker processes, never in this web server.")

devices = tensorflow_devices() if model_preview_wanted("Show TensorFlow's devices", "sys_devices") else None
if devices is not None:
    st.dataframe(device_table(devices), hide_index=True)
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

st.subheader("Processes of the app")
process_rows, process_total = app_processes()
st.caption(process_total)
st.dataframe(pd.DataFrame(process_rows), hide_index=True)

st.subheader("Storage")
usage = data_root_usage(str(get_settings().data_root))
st.caption(f"Data root: {sum(row['bytes'] for row in usage) / 1e6:,.1f} MB in all.")
st.dataframe(pd.DataFrame([{"folder": row["folder"], "MB": row["bytes"] / 1e6} for row in usage]),
             hide_index=True, column_config={"MB": st.column_config.NumberColumn(format="%.1f")})
with st.form("cleanup", enter_to_submit=False):
    days = st.number_input("Delete ended background jobs (their previews, results and staged inputs) older than "
                           "this many days", min_value=0.0, max_value=3650.0, value=7.0, step=1.0)
    if st.form_submit_button("Delete old jobs", icon=":material/delete_sweep:"):
        deleted, refused = storage.delete_old_jobs(job_manager(), days)
        st.success(f"Deleted {deleted} job(s)." + (f" {refused} belong to others and were kept." if refused else ""))
        data_root_usage.clear()
st.caption("Training runs are cleaned up on the Training monitor (each run shows its disk use).")
