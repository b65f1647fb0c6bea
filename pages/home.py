"""Home: where to start, what works with the files present, who can use the dashboard, and the
compute device. Renders in well under a second: nothing here imports TensorFlow."""

import time

import streamlit as st

from dashboard import auth
from dashboard.adapters import root_start
from dashboard.demo_widget import real_tissue_demo
from dashboard.pages_registry import PAGES, page
from dashboard.widgets import md
from services import readiness, runtime
from services.config import CLOUD, get_settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")
START_HERE = (
    ("dataset_explorer.py", "Look at the tiles: gallery, class balance, colour and stain, then save a "
                            "train / validation / test split."),
    ("training_monitor.py", "Train the book's CNN on that split and watch loss and accuracy live; "
                            "stop, resume and compare runs."),
    ("transfer_learning.py", "Compare training from scratch with pretrained backbones, and see what "
                             "a model looks at with Grad-CAM."),
    ("tissue_map.py", "Classify a whole image tile by tile with your model: class map, areas in mm², "
                      "tumour-stroma ratio, QuPath GeoJSON."),
    ("style_transfer.py", "Or make pictures: fast (Magenta) or Gatys (VGG19) style transfer and stained-glass "
                          "silhouettes."),
    ("detector.py", "Or find objects in photos with YOLO."),
)

st.title(":material/biotech: Applied deep learning for the pathology lab")
st.markdown(
    "Tools built on the systems of *Advanced Applied Deep Learning* (U. Michelucci): explore "
    "histology tile datasets, train and monitor models, compare transfer-learning strategies, "
    "create style-transfer pictures and run YOLO detectors, all from the browser."
)


def _banner(state: readiness.Readiness) -> None:
    """Offline / demo-data banner: which pages work fully, and what to get for the others."""
    if not state.limited:
        return
    what = [part for part, shown in (("offline", state.offline), ("on demo data", not state.real_data)) if shown]
    headline = f"Running {' and '.join(what)}." if what else "Some pages run on demo models."
    ready = [page(item.page).title for item in state.pages if item.state == readiness.READY]
    partial = [item for item in state.pages if item.state != readiness.READY]
    lines = [f"**{headline}** Every page opens and works; results on synthetic data or random weights are "
             "labelled as such and say nothing about real tissue.",
             f"**Work fully now:** {', '.join(ready) or 'none'}."]
    if partial:
        lines.append(f"**On demo data or demo models:** {', '.join(page(item.page).title for item in partial)}: "
                     "open the list below for what to download.")
    if state.offline:
        lines.append("Downloads are off (`DASHBOARD_OFFLINE=1`): fetch the files on a machine with internet "
                     "and copy them to the places named below.")
    st.warning("\n\n".join(lines), icon=":material/info:")
    if partial:
        with st.expander("What each page can do now, and what to download for the rest"):
            table = ["| page | works now | to make it work fully |", "| --- | --- | --- |"]
            table += [f"| {page(item.page).title} | {md(item.now)} | {md(item.get)} |"
                      for item in partial]
            st.markdown("\n".join(table))


def _start_here() -> None:
    with st.container(border=True):
        st.subheader("Start here")
        for number, (file, text) in enumerate(START_HERE, start=1):
            spec = page(file)
            link, description = st.columns([1, 3], vertical_alignment="center")
            link.page_link(spec.link, label=f"{number}. {spec.title}", icon=spec.icon)
            description.markdown(text)


def _access() -> None:
    """Who can reach and change this dashboard."""
    name = auth.display_name()
    if name is not None:
        admin = " You are an administrator: you can delete anything." if auth.current_actor().is_admin else ""
        st.caption(f":material/lock: Signed in as **{md(name)}** (OpenID Connect). You "
                   f"can delete what you created; administrators can delete anything.{admin}")
        return
    address = st.get_option("server.address") or "every network interface"
    if address in LOOPBACK:
        st.caption(f":material/lock_open: Sign-in is off: the dashboard listens on this machine only "
                   f"({address}), and whoever uses it can see and delete everything. For a shared lab "
                   "server, configure sign-in (`.streamlit/secrets.toml.example`), then serve the "
                   "network with `make run ADDRESS=0.0.0.0`.")
    else:
        st.warning(f"Sign-in is off and the dashboard listens on the network ({address}): anyone who "
                   "can reach it can see and delete everything. Configure sign-in "
                   "(`.streamlit/secrets.toml.example`) or listen on 127.0.0.1.", icon=":material/lock_open:")


def _temporary_disk() -> None:
    """Under the cloud profile the data root is on a disk that a restart empties: say when it
    started empty, and what that means."""
    if get_settings().profile != CLOUD:
        return
    start = root_start()
    since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(start.since))
    if start.fresh:
        st.info(f"**This app's disk was empty when it started ({since}).** It runs on a temporary disk "
                "(Streamlit Community Cloud resets it when the app restarts, sleeps or is redeployed), so "
                "training runs, tissue maps, jobs, uploads, imported datasets and downloaded weights from "
                "before then are gone. The synthetic demo set is generated again when a page needs it; "
                "weights and datasets download again on first use (internet needed). Download what you "
                "want to keep (reports, CSVs, GeoJSON, models) from the pages.", icon=":material/restart_alt:")
    else:
        st.caption(f":material/save: Data kept since {since} on a temporary disk: a restart of the app "
                   "empties it (download what you want to keep).")


_temporary_disk()
_banner(readiness.readiness())
_start_here()
real_tissue_demo()
_access()

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
