"""The training monitor's process-wide objects and its calls into other processes.

- :func:`run_store`: the run store (one per server process and store path).
- :func:`first_layer_view`: the ch. 3 kernels / feature-maps view, computed by the model service
  (the server never imports TensorFlow).
- :func:`ingest_address`: how a remote script reaches this dashboard's ingest endpoint.
- :func:`ingest_running`: whether that endpoint runs (it needs `make run`).
"""

from __future__ import annotations

import functools

import streamlit as st

from services.config import get_settings
from services.training.inspection import FirstLayerView
from services.training.store import RunStore, default_store_path


@st.cache_resource(show_spinner=False)
def _run_store(path: str) -> RunStore:
    return RunStore(path)


def run_store() -> RunStore:
    """The run store under the configured data root (raises StoreError for a bad file)."""
    return _run_store(str(default_store_path()))


def first_layer_view(model_path: str, tile_path: str) -> FirstLayerView:
    from services.model_service import client

    reply = client.call("training.first_layer", {"model_path": str(model_path), "tile_path": str(tile_path)})
    return FirstLayerView(reply.arrays["kernels"], reply.arrays["before_pooling"], reply.arrays.get("after_pooling"),
                          str(reply.result.get("conv_name")), reply.result.get("pool_name"))


def ingest_address() -> tuple[str, str]:
    """(URL, token) of the remote-logging endpoint ``make run`` starts next to the app."""
    from services.training.ingest import ingest_token

    settings = get_settings()
    host = settings.ingest_host
    if host in ("0.0.0.0", "::", ""):
        host = _this_machine()  # listening on every interface: name this machine
    return f"http://{host}:{settings.ingest_port}", ingest_token()


def ingest_running() -> bool:
    """Whether the remote-logging endpoint of this data root runs (``make run`` starts it;
    ``streamlit run`` alone, as on Streamlit Community Cloud, does not)."""
    from services import processes

    return bool(processes.find(get_settings().data_root, roles=(processes.INGEST,)))


@functools.cache
def _this_machine() -> str:
    """This machine's name, looked up once per process (a DNS lookup, not on every rerun)."""
    import socket

    return socket.getfqdn()
