"""Memory of the whole app per deployment profile, measured in a real browser.

For each profile (``lab``, ``cloud``) and each journey, a fresh Streamlit server on an empty data
root of its own is driven by headless Chromium:

- ``tour``: Home, then every page once, no job; the PSS of every process after each page;
- ``demo``: the demo journey of ``tests/memory_journey.py`` (index the demo set, train cnn_v1 for
  3 epochs, map the demo mosaic, a Grad-CAM, a fast style transfer, a detection on TensorFlow;
  needs ``../shared/fixtures`` for the Magenta files and the photo); the memory is sampled twice
  a second, and each step's peak is printed with the processes at that peak and the most
  processes that had TensorFlow loaded at one time;
- ``sessions``: four visitors in a row, each in a browser context of its own, open every page
  and run one detection on OpenCV (in the web server); the web server's PSS after each visitor
  (what the server keeps per session or per model shows as growth).

Then the browser closes and, after ``--idle-s`` seconds (the profile's own idle exits apply: 60 s
under ``cloud``), the processes still alive are measured once more (the issue's figure is
``--idle-s 120``). The summary puts the profiles side by side.

    .venv/bin/python bench/bench_memory.py [--idle-s 120] [--profiles lab cloud] [--journeys tour demo]

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
JOURNEYS = ("tour", "demo", "sessions")
SESSIONS = 4


def print_step(label: str, step: str, total: float, usage: dict[str, float], tensorflow: list[str] = ()) -> None:
    parts = ", ".join(f"{name} {mib:.0f}" for name, mib in usage.items()) or "none"
    with_tf = f"  [TensorFlow in {len(tensorflow)}]" if tensorflow else ""
    print(f"{label:12} {step:32} {total:7.0f} MiB  ({parts}){with_tf}", flush=True)


def measure(profile: str, journey: str, idle_s: float, browser, log_dir: Path, fixtures: Path) -> dict:
    """{"steps": {step: MiB}, "peak", "idle", "server_max", "tensorflow_max"} of one journey."""
    from tests.conftest import StreamlitServer
    from tests.e2e_helpers import open_every_page
    from tests.memory_journey import MemorySampler, demo_journey

    os.environ["DASHBOARD_PROFILE"] = profile
    os.environ["DASHBOARD_OFFLINE"] = "1"
    label = f"{profile}/{journey}"
    with tempfile.TemporaryDirectory(prefix=f"bench-memory-{profile}-") as folder:
        data_root = Path(folder)
        server = StreamlitServer(data_root, log_dir / f"bench-memory-{profile}-{journey}.log",
                                 extra_args=("--secrets.files", str(data_root / "no-secrets.toml")))
        server_key = f"{processes.WEB_SERVER} {server.process.pid}"
        steps: dict[str, float] = {}
        server_max = 0.0
        try:
            with MemorySampler(data_root, server.process.pid) as sampler:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                page.set_default_timeout(120_000)
                failed = None
                if journey == "tour":
                    def after_page(title: str) -> None:
                        nonlocal server_max
                        now = sampler.sample()
                        steps[title] = now.total_mib
                        server_max = max(server_max, now.processes.get(server_key, 0.0))
                        print_step(label, title, now.total_mib, now.processes, now.tensorflow)

                    open_every_page(page, server.url, after_page)
                elif journey == "sessions":
                    from tests.memory_journey import detect_on_opencv

                    for number in range(1, SESSIONS + 1):
                        if number > 1:
                            context.close()
                            context = browser.new_context(viewport={"width": 1400, "height": 1000})
                            page = context.new_page()
                            page.set_default_timeout(120_000)
                        open_every_page(page, server.url)
                        detect_on_opencv(page, server.url, fixtures / "darknet" / "dog.jpg")
                        now = sampler.sample()
                        steps[f"visitor {number}"] = now.total_mib
                        server_max = max(server_max, now.processes.get(server_key, 0.0))
                        print_step(label, f"visitor {number} (web server {now.processes.get(server_key, 0):.0f})",
                                   now.total_mib, now.processes, now.tensorflow)
                else:
                    try:
                        demo_journey(page, server, fixtures, sampler)
                    except Exception as error:  # the figures so far still count; say where it stopped
                        failed = f"{sampler.current}: {type(error).__name__}: {str(error).splitlines()[0]}"
                        print(f"{label:12} FAILED at {failed}", flush=True)
                        page.screenshot(path=str(log_dir / f"bench-memory-{profile}-{journey}-failed.png"))
                context.close()
                sampler.step("idle")
                time.sleep(idle_s)
                idle = sampler.sample()
            if journey == "demo":
                for step, peak in sampler.peaks.items():
                    if step not in ("start", "idle"):
                        steps[step] = peak.total_mib
                        server_max = max(server_max, peak.processes.get(server_key, 0.0))
                        print_step(label, f"{step} (peak)", peak.total_mib, peak.processes, peak.tensorflow)
            print_step(label, f"{idle_s:.0f} s after closing", idle.total_mib, idle.processes, idle.tensorflow)
        finally:
            server.stop()
        most = max((len(peak.tensorflow) for step, peak in sampler.peaks.items() if step != "idle"), default=0)
        return {"peak": max(steps.values()), "idle": idle.total_mib, "server_max": server_max, "tensorflow_max": most,
                "failed": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-s", type=float, default=15.0,
                        help="seconds to wait after the browser closed before the last measurement (issue: 120)")
    parser.add_argument("--profiles", nargs="+", default=["lab", "cloud"], choices=["lab", "cloud"])
    parser.add_argument("--journeys", nargs="+", default=list(JOURNEYS), choices=JOURNEYS)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM, REPO, SHARED_FIXTURES

    if {"demo", "sessions"} & set(args.journeys) and not SHARED_FIXTURES.is_dir():
        parser.error(f"the demo and sessions journeys need {SHARED_FIXTURES} (Magenta files, a photo)")
    log_dir = REPO / "build" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            for journey in args.journeys:
                for profile in args.profiles:
                    results[profile, journey] = measure(profile, journey, args.idle_s, browser, log_dir,
                                                        SHARED_FIXTURES)
        finally:
            browser.close()
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end; MiB PSS summed over the app's processes")
    rows = (("peak", "peak"), ("idle", f"{args.idle_s:.0f} s after closing"),
            ("server_max", "web server, largest"), ("tensorflow_max", "TensorFlow processes at once, most"))
    print(f"{'journey':8} {'figure':36}" + "".join(f"{profile:>10}" for profile in args.profiles))
    for journey in args.journeys:
        for key, title in rows:
            print(f"{journey:8} {title:36}" + "".join(f"{results[p, journey][key]:10.0f}" for p in args.profiles))
    for (profile, journey), figures in results.items():
        if figures["failed"]:
            print(f"{profile}/{journey} did not complete (figures up to there): {figures['failed']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
