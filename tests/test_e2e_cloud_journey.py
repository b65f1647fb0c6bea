"""The demo journey under the cloud profile in a real browser (tests/memory_journey.py): index the
demo set, train cnn_v1 for 3 epochs, a demo tissue map with a Grad-CAM, a fast style transfer, a
detection on the TensorFlow backend. Never more than one TensorFlow process at a time; the peak
PSS of all the app's processes stays within Community Cloud's 1.5 GiB journey budget (generous
margin for a busy CI machine: bench/bench_memory.py holds the exact figure); once the visitor has
left and the idle exits have passed (shortened here to 5 s instead of 60 s), only the web server
is left, within 300 MiB (plus margin). The web server itself stays within the 400 MiB asked of it
in every profile (its code does not depend on the profile), detector included."""

from __future__ import annotations

import pytest

from services import processes
from tests.conftest import StreamlitServer, wait_for
from tests.memory_journey import MemorySampler, demo_journey

pytestmark = pytest.mark.e2e

MARGIN = 1.3
JOURNEY_BUDGET_MIB = 1536 * MARGIN
IDLE_BUDGET_MIB = 300 * MARGIN
SERVER_BUDGET_MIB = 400 * MARGIN
IDLE_EXIT_S = 5


def test_cloud_demo_journey_within_budget_one_tensorflow_process(data_root, _browser, artifacts_dir,
                                                                 shared_fixtures, monkeypatch):
    for name, value in (("DASHBOARD_PROFILE", "cloud"), ("DASHBOARD_OFFLINE", "1"),
                        ("DASHBOARD_RUNNER_IDLE_S", str(IDLE_EXIT_S)),
                        ("DASHBOARD_SERVICE_IDLE_S", str(IDLE_EXIT_S))):
        monkeypatch.setenv(name, value)
    server = StreamlitServer(data_root, artifacts_dir / "cloud-journey.log",
                             extra_args=("--secrets.files", str(data_root / "no-secrets.toml")))
    context = _browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        with MemorySampler(data_root, server.process.pid) as sampler:
            page = context.new_page()
            page.set_default_timeout(60_000)
            try:
                demo_journey(page, server, shared_fixtures, sampler)
            finally:
                page.screenshot(path=str(artifacts_dir / "cloud-journey.png"), full_page=True)
                context.close()
            sampler.step("visitor left")
            wait_for(lambda: not processes.find(data_root, processes.BACKGROUND), timeout=IDLE_EXIT_S + 60)
            idle = sampler.sample()
    finally:
        server.stop()
    report = "; ".join(f"{step}: {peak.total_mib:.0f} MiB" for step, peak in sampler.peaks.items())
    step, tensorflow = sampler.most_tensorflow
    assert len(tensorflow) <= 1, f"{tensorflow} had TensorFlow loaded at once during {step}"
    peak_step, peak = sampler.peak
    assert peak.total_mib <= JOURNEY_BUDGET_MIB, f"peak {peak.total_mib:.0f} MiB in {peak_step} {peak.processes} ({report})"
    assert sampler.server_peak_mib <= SERVER_BUDGET_MIB, f"the web server reached {sampler.server_peak_mib:.0f} MiB"
    assert list(idle.processes) == [f"{processes.WEB_SERVER} {server.process.pid}"]
    assert idle.total_mib <= IDLE_BUDGET_MIB, f"{idle.total_mib:.0f} MiB after the visitor left ({report})"
