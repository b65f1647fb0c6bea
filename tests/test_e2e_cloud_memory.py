"""The cloud profile's page tour in a real browser: every page opened once, no job, fits Streamlit
Community Cloud's smallest box (690 MiB) with a margin for a busy CI machine, and no page
starts TensorFlow. The exact figures are bench/bench_memory.py's."""

from __future__ import annotations

import pytest

from services import processes
from tests.conftest import StreamlitServer
from tests.e2e_helpers import open_every_page

pytestmark = pytest.mark.e2e

COMMUNITY_CLOUD_MIN_MIB = 690
BUDGET_MIB = COMMUNITY_CLOUD_MIN_MIB * 1.3


def test_cloud_profile_opens_every_page_within_the_small_box(data_root, _browser, artifacts_dir, monkeypatch):
    monkeypatch.setenv("DASHBOARD_PROFILE", "cloud")
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    server = StreamlitServer(data_root, artifacts_dir / "cloud-profile.log",
                             extra_args=("--secrets.files", str(data_root / "no-secrets.toml")))
    seen: dict[str, tuple[float, list[str]]] = {}

    def measure(title: str) -> None:
        usages = processes.app_usage(data_root, server.process.pid)
        seen[title] = (processes.total_bytes(usages) / 2**20, [f"{u.role} {u.pid}" for u in usages])
        tensorflow = [f"{u.role} {u.pid}" for u in usages if processes.loaded_tensorflow(u.pid)]
        assert not tensorflow, f"opening {title} started TensorFlow in {tensorflow}"
        started = [u.role for u in usages if u.role in (processes.WARM_WORKER, processes.MODEL_SERVICE)]
        assert not started, f"opening {title} started {started}"

    context = _browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        open_every_page(page, server.url, measure)
    finally:
        context.close()
        server.stop()
    peak_title, (peak_mib, peak_processes) = max(seen.items(), key=lambda item: item[1][0])
    assert len(seen) == 8
    assert peak_mib <= BUDGET_MIB, (f"{peak_mib:.0f} MiB after {peak_title} ({peak_processes}); the budget is "
                                    f"{BUDGET_MIB:.0f} MiB")
