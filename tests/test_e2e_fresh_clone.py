"""A fresh clone of this repository's HEAD, started only with ``streamlit run dashboard/app.py``
(no make, no prepared data, nothing but the installed requirements) under the cloud profile, as
Streamlit Community Cloud runs it: Home says the temporary disk started empty, every page opens
clean without starting TensorFlow, and a short journey works (the demo set is generated and
indexed, a 1-epoch training run finishes)."""

from __future__ import annotations

import subprocess

import pytest

from services import processes
from tests.conftest import REPO, StreamlitServer, wait_for_app
from tests.e2e_helpers import open_every_page
from tests.memory_journey import index_demo_set, train_cnn_v1

pytestmark = pytest.mark.e2e


def test_a_fresh_clone_runs_with_streamlit_run_alone(tmp_path, _browser, artifacts_dir, monkeypatch):
    checkout = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(checkout)], check=True, timeout=120)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "checkout", "--quiet", head], cwd=checkout, check=True)
    data_root = checkout / "data"
    assert not data_root.exists()
    monkeypatch.setenv("DASHBOARD_PROFILE", "cloud")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no developer's ~/.streamlit secrets or config
    server = StreamlitServer(data_root, artifacts_dir / "fresh-clone.log", checkout=checkout)
    context = _browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)

        def no_tensorflow(title: str) -> None:
            loaded = [p.role for p in processes.find(data_root) if processes.loaded_tensorflow(p.pid)]
            assert not loaded, f"opening {title} started TensorFlow in {loaded}"

        open_every_page(page, server.url, no_tensorflow)
        page.goto(server.url)
        wait_for_app(page)
        page.get_by_text("disk was empty when it started").first.wait_for()
        index_demo_set(page, server.url)
        train_cnn_v1(page, server.url, epochs=1)
        page.get_by_text("synthetic demo data").first.wait_for()
        page.screenshot(path=str(artifacts_dir / "fresh-clone.png"), full_page=True)
        assert (data_root / "datasets" / "demo").is_dir()
    finally:
        context.close()
        server.stop()
