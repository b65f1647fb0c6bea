"""Fixtures shared by the whole suite.

- ``data_root``: an empty data root (``DASHBOARD_DATA_DIR``) in a temporary folder.
- ``shared_fixtures``: ``../shared/fixtures``; tests using it skip when ``../shared`` is absent.
- ``streamlit_server`` / ``browser_page``: a real ``streamlit run dashboard/app.py`` on
  127.0.0.1 and a headless Debian Chromium driven by Playwright, for end-to-end tests.
- ``artifacts_dir``: where end-to-end tests save screenshots (``build/test-artifacts``).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"
CHROMIUM = "/usr/bin/chromium"

sys.path.insert(0, str(REPO))
# Pages start the job runner and its warm TensorFlow worker only when a job is submitted, not as
# soon as they open: dozens of page tests would otherwise each start a TensorFlow process.
os.environ.setdefault("DASHBOARD_PREWARM", "0")


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Iterator[Path]:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("DASHBOARD_DATA_DIR", str(root))
    monkeypatch.setenv("DASHBOARD_OFFLINE", "")
    yield root
    stop_background_processes(root)


def stop_background_processes(root: Path) -> None:
    """End the job runner, its workers and the model service of a data root: they outlive the
    pages and scripts that started them, so tests stop them explicitly (as Ctrl-C on the app does)."""
    from services import lifetime

    lifetime.stop_app(root)


def pytest_sessionstart(session):
    session.config.stash[_SESSION_UPTIME] = _uptime()


def pytest_sessionfinish(session, exitstatus):
    """The suite leaves no process behind: any dashboard process it started that is still alive
    is listed, killed, and fails the run."""
    from services import processes

    leaked = _leaked_processes(session)
    deadline = time.monotonic() + 2.0  # one that is exiting right now is given a moment
    while leaked and time.monotonic() < deadline:
        time.sleep(0.1)
        leaked = [process for process in leaked if processes.alive(process)]
    if not leaked:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{process.role} pid {process.pid} (data root {process.data_root})" for process in leaked]
    message = "the test run left these processes running (now killed): " + "; ".join(lines)
    if reporter is not None:
        reporter.write("\n")
        reporter.write_sep("=", "processes left behind", red=True)
        reporter.write_line("ERROR: " + message, red=True)
    else:
        print("ERROR: " + message, file=sys.stderr)
    processes.end(leaked, 2.0)
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_SESSION_UPTIME = pytest.StashKey[float]()


def _uptime() -> float:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def _leaked_processes(session) -> list:
    """Dashboard processes this session started: its descendants, those serving a data root
    under its temporary folder, and those working in this repository started since it began."""
    from services import processes

    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = factory.getbasetemp().resolve() if factory is not None else None
    started = session.config.stash.get(_SESSION_UPTIME, 0.0) - 1.0
    return [process for process in processes.find()
            if process.pid != os.getpid() and (
                _descends_from(process.pid, os.getpid())
                or (basetemp is not None and process.data_root is not None
                    and (process.data_root == basetemp or basetemp in process.data_root.parents))
                or (process.cwd == REPO and process.started >= started))]


def _descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(64):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return False
        pid = int(fields[1])
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
    return False


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is absent (fresh clone outside CI)")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = REPO / "build" / "test-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _FolderHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the files of one folder, honouring ``Range: bytes=a-b`` and ``bytes=a-`` (resumable
    downloads, remote zip members) unless ranges are off (then every answer is the whole file)."""

    range_headers: list[str | None]
    stats: dict

    def do_GET(self):  # noqa: N802 (http.server API)
        path = Path(self.directory) / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        header = self.headers.get("Range") if self.stats["ranges"] else None
        self.range_headers.append(self.headers.get("Range"))
        self.stats["requests"].append((path.name, header))
        start, end = 0, len(data) - 1
        if header:
            first, _, last = header.split("=", 1)[1].partition("-")
            start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            if start >= len(data):
                self.send_error(416)
                return
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(end - start + 1))
        if header:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        if self.stats["ranges"]:
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        rate, began = self.stats.get("bytes_per_s"), time.monotonic()
        try:
            for offset in range(start, end + 1, 1 << 16):
                block = data[offset:min(end + 1, offset + (1 << 16))]
                self.wfile.write(block)
                self.stats["bytes"] += len(block)
                if rate:  # a connection of this bandwidth: never ahead of ``rate`` bytes per second
                    time.sleep(max(0.0, began + (offset - start + len(block)) / rate - time.monotonic()))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client read what it wanted and closed

    def log_message(self, *args):
        pass


class FolderServer:
    def __init__(self, url: str, range_headers: list[str | None], stats: dict):
        self.url = url
        """Base URL ending in '/': append a file name."""
        self.range_headers = range_headers
        """The Range header of each request, None when there was none."""
        self.stats = stats
        """``bytes`` sent, ``requests`` (file name, Range header honoured or None), ``ranges`` on/off."""

    @property
    def bytes_sent(self) -> int:
        return self.stats["bytes"]


@contextlib.contextmanager
def serve_folder(folder: Path, *, ranges: bool = True, bytes_per_s: float | None = None) -> Iterator[FolderServer]:
    """A local HTTP server on 127.0.0.1 serving ``folder`` (for download tests); ``ranges=False``
    answers every request with the whole file, like a server without range support;
    ``bytes_per_s`` limits each answer to that bandwidth (benchmarks of a normal connection)."""
    headers: list[str | None] = []
    stats = {"bytes": 0, "requests": [], "ranges": ranges, "bytes_per_s": bytes_per_s}
    handler = type("Handler", (_FolderHandler,), {"range_headers": headers, "stats": stats})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield FolderServer(f"http://127.0.0.1:{server.server_address[1]}/", headers, stats)
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StreamlitServer:
    def __init__(self, data_dir: Path, log_path: Path, extra_args: Sequence[str] = (),
                 env: dict[str, str] | None = None, *, checkout: Path | None = None):
        """``extra_args``: more ``streamlit run`` options (e.g. ``--secrets.files``); ``env``:
        settings that replace the defaults (offline, ...). With ``checkout`` (a fresh clone):
        exactly ``streamlit run dashboard/app.py`` in it, as Streamlit Community Cloud starts it
        (server options as ``STREAMLIT_*`` variables), on its default data root
        ``<checkout>/data`` (``data_dir`` must be that)."""
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DASHBOARD_DATA_DIR": str(data_dir), "DASHBOARD_OFFLINE": "1",
               "PYTHONUNBUFFERED": "1", **(env or {})}
        options = ["--server.port", str(self.port), "--server.address", "127.0.0.1",
                   "--server.headless", "true", "--browser.gatherUsageStats", "false",
                   "--server.fileWatcherType", "none", *extra_args]
        command = [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"), *options]
        if checkout is not None:
            del env["DASHBOARD_DATA_DIR"]
            env.update({f"STREAMLIT_{name[2:].replace('.', '_').upper()}": value
                        for name, value in zip(options[::2], options[1::2])})
            command = [str(Path(sys.executable).parent / "streamlit"), "run", "dashboard/app.py"]
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(command, cwd=checkout or REPO, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}; see {self._log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"streamlit not healthy after {timeout} s; see {self._log.name}")

    def loaded_tensorflow(self) -> bool:
        """Whether the server process has TensorFlow's library mapped (it never should)."""
        from services import processes

        return processes.loaded_tensorflow(self.process.pid)

    def stop(self) -> None:
        tensorflow_loaded = self.process.poll() is None and self.loaded_tensorflow()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()
        stop_background_processes(self.data_dir)
        assert not tensorflow_loaded, "the Streamlit server process loaded TensorFlow"


@pytest.fixture(scope="session")
def streamlit_server(tmp_path_factory, artifacts_dir):
    """One server for all end-to-end tests, on an empty data root of its own."""
    data_dir = tmp_path_factory.mktemp("e2e-data")
    # A developer's own .streamlit/secrets.toml (sign-in) must not gate the shared test server.
    server = StreamlitServer(data_dir, artifacts_dir / "streamlit-server.log",
                             extra_args=("--secrets.files", str(data_dir / "no-secrets.toml")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@contextlib.contextmanager
def new_browser_page(browser) -> Iterator:
    """A page in a fresh browser context (its own cookies: a new Streamlit session)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def browser_page(_browser, streamlit_server):
    with new_browser_page(_browser) as page:
        yield page


def wait_for(condition, timeout: float = 30.0):
    """Poll ``condition`` until it returns something truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def wait_for_app(page, settle_ms: int = 300) -> None:
    """Wait until Streamlit has finished running the page script.

    The short settle time lets a rerun triggered by the last interaction start (and show its
    running indicator) before we wait for the indicator to go away.
    """
    page.wait_for_selector("[data-testid='stApp']")
    page.wait_for_timeout(settle_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000
    )
