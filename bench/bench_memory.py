"""Memory of the whole app per deployment profile, measured in a real browser.

For each profile (``lab``, ``cloud``) a fresh Streamlit server on an empty data root of its own is
driven by headless Chromium through the page tour (Home, then every page once, no job); after each
page the PSS of the server and of every process it started is read from ``/proc``
(``services/processes.py``). Then the browser closes and, after ``--idle-s`` seconds, the
processes still alive are measured once more (the issue's figure is ``--idle-s 120``).

    .venv/bin/python bench/bench_memory.py [--idle-s 120] [--profiles lab cloud]

PSS splits shared pages among the processes mapping them, so the per-step total counts each
page once. Figures depend on the machine (and the libraries' versions): compare profiles within
one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services import processes  # noqa: E402

MIB = 2**20


def snapshot(data_root: Path, server_pid: int | None) -> dict[str, float]:
    """``{"role pid": MiB}`` of the app's processes now (the server first)."""
    return {f"{usage.role} {usage.pid}": (usage.bytes or 0) / MIB
            for usage in processes.app_usage(data_root, server_pid)}


def print_step(profile: str, step: str, usage: dict[str, float]) -> None:
    parts = ", ".join(f"{name} {mib:.0f}" for name, mib in usage.items()) or "none"
    print(f"{profile:6} {step:20} {sum(usage.values()):7.0f} MiB  ({parts})", flush=True)


def measure_profile(profile: str, idle_s: float, browser, log_dir: Path) -> dict[str, float]:
    from tests.conftest import StreamlitServer
    from tests.e2e_helpers import open_every_page

    os.environ["DASHBOARD_PROFILE"] = profile
    os.environ["DASHBOARD_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory(prefix=f"bench-memory-{profile}-") as folder:
        data_root = Path(folder)
        server = StreamlitServer(data_root, log_dir / f"bench-memory-{profile}.log",
                                 extra_args=("--secrets.files", str(data_root / "no-secrets.toml")))
        totals: dict[str, float] = {}

        def step(title: str) -> None:
            usage = snapshot(data_root, server.process.pid)
            totals[title] = sum(usage.values())
            print_step(profile, title, usage)

        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(120_000)
            open_every_page(page, server.url, step)
            context.close()
            time.sleep(idle_s)
            step(f"{idle_s:.0f} s after closing")
        finally:
            server.stop()
        return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-s", type=float, default=15.0,
                        help="seconds to wait after the browser closed before the last measurement (issue: 120)")
    parser.add_argument("--profiles", nargs="+", default=["lab", "cloud"], choices=["lab", "cloud"])
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM, REPO

    log_dir = REPO / "build" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            for profile in args.profiles:
                results[profile] = measure_profile(profile, args.idle_s, browser, log_dir)
        finally:
            browser.close()
    print("\nprofile  peak over the tour (MiB PSS)  after the idle wait (MiB PSS)")
    for profile, totals in results.items():
        *tour, idle = totals.values()
        print(f"{profile:8} {max(tour):28.0f}  {idle:29.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
