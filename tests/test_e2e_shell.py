"""Real browser: the home page renders and the navigation reaches the System page; a real
server listens where `make run` and the Docker image say."""

import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, _free_port, wait_for_app

pytestmark = pytest.mark.e2e


def test_home_then_system_page(browser_page, streamlit_server, artifacts_dir):
    page = browser_page
    page.goto(streamlit_server.url)
    wait_for_app(page)
    page.get_by_text("Applied deep learning for the pathology lab").wait_for()
    page.get_by_text("TensorFlow", exact=True).first.wait_for()
    page.get_by_text("Start here").wait_for()
    page.get_by_role("link", name="1. Dataset explorer").wait_for()
    # The e2e server is offline; whether it still has only demo data depends on the other e2e
    # tests that share it (an imported dataset is real data to the banner).
    page.get_by_text("Running offline").first.wait_for()
    page.screenshot(path=str(artifacts_dir / "home.png"), full_page=True)
    page.get_by_role("link", name="Device details and speed probe").click()
    page.get_by_text("Matrix multiplication probe").wait_for()
    wait_for_app(page)
    page.get_by_role("button", name="Run probe").wait_for()
    page.get_by_text("Processes of the app").wait_for()
    page.wait_for_timeout(1500)  # the tables draw on a canvas after the script has run
    page.screenshot(path=str(artifacts_dir / "system.png"), full_page=True)


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a listening TCP socket on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(socket.inet_ntoa(struct.pack("<I", int(address, 16))))
    return found


def _serve_without_address_flag(port: int, env: dict[str, str]) -> subprocess.Popen:
    """`streamlit run` from the repository as `make run` starts it: the address comes from
    .streamlit/config.toml or STREAMLIT_SERVER_ADDRESS, not from the command line."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"), "--server.port", str(port),
         "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("address, expected", [(None, {"127.0.0.1"}), ("0.0.0.0", {"0.0.0.0"})])
def test_server_listens_on_localhost_unless_told_otherwise(tmp_path, address, expected):
    """The default (config.toml) is this machine only; the Docker image's setting is every interface."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "STREAMLIT_SERVER_ADDRESS"}
    env["DASHBOARD_DATA_DIR"] = str(tmp_path)
    if address:
        env["STREAMLIT_SERVER_ADDRESS"] = address
    process = _serve_without_address_flag(port, env)
    try:
        deadline = time.monotonic() + 60
        while not _listening_addresses(port) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert _listening_addresses(port) == expected
    finally:
        process.terminate()
        process.wait(timeout=15)
