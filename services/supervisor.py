"""``make run``'s launcher: the app's foreground processes as children, its background ones
stopped with it.

``python -m services.supervisor [--address 127.0.0.1] [--port 8501] [streamlit options...]``
starts the remote-logging endpoint (``services.training.ingest``) and the web server
(``streamlit run dashboard/app.py``) and waits:

- Ctrl-C or SIGTERM (to this process or to the web server): both children end and
  :func:`services.lifetime.stop_app` ends the job runner, its workers (running jobs are marked
  interrupted; resumable ones continue at the next start) and the model service of the data
  root, all within about 10 s. Then it exits.
- the web server dies on its own (a crash, SIGKILL, the OOM killer): the endpoint ends, the
  background processes are left alone (running jobs keep running; the next ``make run`` shows
  them) and it exits with status 1.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from services import lifetime
from services.config import Env, child_environment, get_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
APP = REPO_ROOT / "dashboard" / "app.py"
STOP_S = 9.0
"""Everything of the data root is gone this long after Ctrl-C."""


def _start(arguments: list[str], data_root: Path) -> subprocess.Popen:
    """A child in the repository, on this data root (spelled out: a relative one would move with the folder)."""
    return subprocess.Popen([sys.executable, *arguments], cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                            env=child_environment(**{Env.DATA_DIR: str(data_root)}))


def _terminate(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()


def _wait(children: list[subprocess.Popen], deadline: float) -> None:
    """Wait for the children until ``deadline``; SIGKILL those still alive then."""
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _start_children(arguments: argparse.Namespace, streamlit_options: list[str],
                    data_root: Path) -> tuple[subprocess.Popen, subprocess.Popen]:
    """(remote-logging endpoint, web server)."""
    address = ["--server.address", arguments.address] if arguments.address else []
    host = arguments.address or get_settings().ingest_host
    ingest = _start(["-m", "services.training.ingest", "--host", host], data_root)
    web = _start(["-m", "streamlit", "run", str(APP), "--server.port", str(arguments.port), *address,
                  *streamlit_options], data_root)
    return ingest, web


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="where both listen (default: the web server's own setting, "
                        "STREAMLIT_SERVER_ADDRESS or .streamlit/config.toml; the endpoint's DASHBOARD_INGEST_HOST)")
    parser.add_argument("--port", type=int, default=8501)
    arguments, streamlit_options = parser.parse_known_args(argv)
    stopping = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stopping.set())
    data_root = get_settings().data_root
    resumed = lifetime.app_started(data_root)
    if resumed:
        print(f"{resumed} job(s) interrupted when the dashboard last stopped continue now.", flush=True)
    ingest, web = _start_children(arguments, streamlit_options, data_root)
    while not stopping.is_set() and web.poll() is None:
        stopping.wait(0.2)
    deadline = time.monotonic() + STOP_S
    if not stopping.is_set() and web.returncode != 0:
        print(f"The web server ended unexpectedly (exit status {web.returncode}); background jobs keep "
              "running and the next start shows them.", file=sys.stderr, flush=True)
        _terminate([ingest])
        _wait([ingest], deadline)
        return 1
    print("Stopping the dashboard and its background processes…", flush=True)
    _terminate([web, ingest])  # they stop while the background does
    lifetime.stop_app(data_root, timeout=STOP_S - 2.0)
    _wait([web, ingest], deadline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
