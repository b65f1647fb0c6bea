"""The run store for the training monitor (one per server process and store path)."""

from __future__ import annotations

import streamlit as st

from services.training.store import RunStore, default_store_path


@st.cache_resource(show_spinner=False)
def _run_store(path: str) -> RunStore:
    return RunStore(path)


def run_store() -> RunStore:
    """The run store under the configured data root (raises StoreError for a bad file)."""
    return _run_store(str(default_store_path()))
