"""The read-only page of one run, opened from a shared link (``?run=<id>`` on the training
monitor): its curves, headline number with n, recall per class, notes and provenance, and no
Start, Stop, Resume, Delete or notes editor. Sign-in, when configured, still applies."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.widgets import md, synthetic_badge
from services.metrics.honesty import headline, leakage_badge, leakage_of
from services.training import curves, overview, sharing


def share_link(run_id: str) -> None:
    """A link to the run's read-only page, to copy and send."""
    st.caption(f":material/share: [Read-only page of this run]({sharing.share_query(run_id)}) (copy the link "
               "to share it: curves, numbers and provenance, no controls)")


def shared_run_page(store, run_id: str) -> None:
    run = store.find_run(run_id) if run_id.replace("-", "").isalnum() else None
    if run is None:
        st.error("No run with this id here: it was deleted, or the link is incomplete.", icon=":material/link_off:")
        st.markdown("[Open the training monitor](training_monitor)")
        return
    st.subheader(f"{md(run.name)} · {md(run.status)}")
    st.caption("A shared run, read-only. [Open the training monitor](training_monitor) to start, stop or "
               "compare runs.")
    if run.synthetic:
        synthetic_badge("trained on synthetic demo data")
    badge = leakage_badge(leakage_of(run.summary))
    if badge:
        st.warning(f"**{badge}** of this run's split: its held-out numbers are optimistic.", icon=":material/warning:")
    line = headline(run.summary)
    st.markdown(f"**{line.text()}** · {line.note}.")
    table = curves.epoch_table(store, run.id)
    st.plotly_chart(curves.curves_figure({run.name: curves.curve_table(store, run, "epoch", table)}),
                    key="shared-curves")
    recall = overview.recall_table(run.summary)
    if not recall.empty:
        st.caption("Recall per class with its 95 % Wilson interval and n (held-out test split, or validation "
                   "when there is none)")
        st.dataframe(recall, hide_index=True)
    if run.notes:
        st.caption("Notes")
        st.markdown(md(run.notes))
    st.caption("Provenance")
    st.dataframe(pd.DataFrame(sharing.provenance(run)), hide_index=True, width="stretch")
