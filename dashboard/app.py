"""Entrypoint: `streamlit run dashboard/app.py`. Builds the navigation from the page registry."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st  # noqa: E402

from dashboard import auth  # noqa: E402
from dashboard.adapters import app_lifetime, root_start  # noqa: E402
from dashboard.pages_registry import PAGES  # noqa: E402

st.set_page_config(page_title="Pathology DL dashboard", page_icon=":microscope:", layout="wide")
root_start()  # noted before anything writes into the data root (the ephemeral-disk notice on Home)
app_lifetime()  # background processes stop with this server (Ctrl-C), not when it crashes
auth.require_login()  # with sign-in configured, anonymous visitors see only the sign-in screen
auth.show_account()

sections: dict[str, list] = {}
for spec in PAGES:
    sections.setdefault(spec.section, []).append(
        st.Page(str(spec.path), title=spec.title, icon=spec.icon, default=spec.default)
    )
st.navigation(sections).run()
