"""The process architecture (docs/architecture.md), measured side by side in one run.

1. Job start: time from submit to the first progress report and to the end of a tiny
   TensorFlow job, with a cold worker (imports TensorFlow per job) and with the warm worker;
   then the same for the style page's default Gatys job (first progress, first preview).
2. Model service round trip against the same call in this process: a no-op ping (pure
   overhead) and every TensorFlow operation the pages use that can run here on generated
   weights (``darknet.detect`` on yolov3-tiny with random weights, ``keras.inspect_tile`` on a
   small CNN), ratio in-process / through the service (goal >= 0.9 for real operations).
3. Memory of a real ``streamlit run`` server (VmRSS and peak VmHWM) after a real browser has
   opened every page once, with ``--before REV`` also for an older commit (in a git worktree):
   the server must stay well under 500 MB, the model memory living in the service.

Usage: ``python bench/bench_services.py [--skip-browser] [--before b6360ff]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _median_seconds(function, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench_job_start(root: Path) -> None:
    from services.jobs import JobManager

    print("\n# 1. job start: submit -> first progress / end, tiny TensorFlow job")
    for warm in ("0", "1"):
        os.environ["DASHBOARD_WARM_WORKER"] = warm
        manager = JobManager(root / f"jobs-warm{warm}")
        if warm == "1":
            manager.wait(manager.submit("test-tensorflow", "warm-up", {"n": 1}), 180)  # the runner's first warm worker
            time.sleep(8)  # let the next warm worker finish importing TensorFlow
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            job_id = manager.submit("test-tensorflow", "bench", {"n": 2})
            first_progress = None
            while True:
                state = manager.get(job_id)
                if first_progress is None and state.status != "queued":
                    first_progress = time.perf_counter() - start
                if not state.active:
                    break
                time.sleep(0.01)
            timings.append((first_progress, time.perf_counter() - start))
            if warm == "1":
                time.sleep(8)
        manager.shutdown_runner()
        label = "warm worker" if warm == "1" else "cold worker"
        print(f"{label}: started after {statistics.median(t[0] for t in timings):.2f} s, "
              f"done after {statistics.median(t[1] for t in timings):.2f} s (median of 3)")


def bench_style_first_preview(root: Path) -> None:
    """Start pressed -> first progress and first preview of the page's default Gatys job (256 px,
    random VGG19 weights), with a cold worker and with the warm one a page starts when it opens."""
    from services.jobs import JobManager
    from services.style import builtin_images, submit
    from services.style.settings import StyleSettings

    print("\n# 1b. style transfer, Start -> first progress / first preview (256 px, random VGG19)")
    content = builtin_images.CONTENT_IMAGES["Chelsea the cat"].load()
    style = builtin_images.stained_glass()
    for warm in ("0", "1"):
        os.environ["DASHBOARD_WARM_WORKER"] = warm
        manager = JobManager(root / f"style-jobs-warm{warm}")
        if warm == "1":
            manager.ensure_runner()  # what a page does when it opens (DASHBOARD_PREWARM)
            time.sleep(12)
        rows = []
        for _ in range(2):
            pressed = time.perf_counter()
            job_id = submit.submit_gatys(manager, content, style, StyleSettings(max_side=256, steps=40, weights="random"),
                                         title="bench")
            progress = preview = None
            while preview is None:
                state = manager.get(job_id)
                if progress is None and state.status == "running" and state.message:
                    progress = time.perf_counter() - pressed
                if state.result.get("preview_step"):
                    preview = time.perf_counter() - pressed
                if not state.active:
                    raise SystemExit(f"style job ended early: {state.status} {state.error}")
                time.sleep(0.02)
            manager.stop(job_id)
            manager.wait(job_id, 120)
            rows.append((progress or preview, preview))
            if warm == "1":
                time.sleep(12)  # the next warm worker imports TensorFlow
        manager.shutdown_runner()
        label = "warm worker (page open)" if warm == "1" else "cold worker"
        print(f"{label}: first progress " + ", ".join(f"{p:.1f} s" for p, _ in rows)
              + "; first preview " + ", ".join(f"{v:.1f} s" for _, v in rows) + " (goal <= 10 s)")


def bench_round_trip(root: Path) -> None:
    from services.model_service import client
    from services.model_service.cache import ModelCache
    from services.model_service.server import _op_function
    from services.model_service.system_ops import ping

    print("\n# 2. model service round trip vs the same call in this process")
    os.environ["DASHBOARD_DATA_DIR"] = str(root / "service-data")
    client.ensure_service()
    cache = ModelCache()
    inside = _median_seconds(lambda: ping(cache, {}, {}), 200)
    through = _median_seconds(lambda: client.call("system.ping"), 200)
    print(f"ping: in-process {inside * 1e3:.3f} ms, through the service {through * 1e3:.3f} ms "
          f"(overhead {1e3 * (through - inside):.2f} ms)")
    for name, case in _operation_cases():
        try:
            op, args, arrays = case()
            function = _op_function(op)
        except Exception as error:  # noqa: BLE001 - a missing piece skips that line only
            print(f"{name}: skipped ({type(error).__name__}: {error})")
            continue
        function(cache, args, arrays)  # load and warm up in-process
        client.call(op, args, arrays)  # ... and in the service
        inside = _median_seconds(lambda: function(cache, args, arrays), 10)
        through = _median_seconds(lambda: client.call(op, args, arrays), 10)
        print(f"{name}: in-process {inside * 1e3:.1f} ms, through the service {through * 1e3:.1f} ms, "
              f"ratio {inside / through:.2f} (goal >= 0.9)")
    client.stop_service()


def _operation_cases():
    import numpy as np

    def yolov3_tiny():
        from services.detection import registry

        registry.load_demo()  # writes the random-weights demo model into the model cache
        image = np.random.default_rng(0).integers(0, 255, (416, 416, 3), dtype=np.uint8)
        return "darknet.detect", {"model": registry.DEMO_KEY, "input_size": 416, "letterbox": True}, {"image": image}

    def book_cnn():
        from services.models.catalog import build_model

        model = build_model("cnn_v1", input_shape=(150, 150, 3), num_classes=8)
        path = Path(os.environ["DASHBOARD_DATA_DIR"]) / "bench_cnn_v1.keras"
        model.save(path)
        tile = np.random.default_rng(1).integers(0, 255, (150, 150, 3), dtype=np.uint8)
        return "keras.inspect_tile", {"model_path": str(path)}, {"tile": tile}

    return [("darknet.detect yolov3-tiny 416 (random weights)", yolov3_tiny),
            ("keras.inspect_tile (probabilities + Grad-CAM), cnn_v1 at 150 px (random weights)", book_cnn)]


def server_memory(app_root: Path, data_dir: Path) -> dict[str, float]:
    """Open every page of ``app_root``'s dashboard in Chromium; the server's VmRSS / VmHWM."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import CHROMIUM, StreamlitServer, wait_for_app  # noqa: E402 - test helpers

    import conftest

    conftest.REPO = app_root
    data_dir.mkdir(parents=True, exist_ok=True)
    server = StreamlitServer(data_dir, data_dir / "server.log")
    pages = sorted(p.stem for p in (app_root / "pages").glob("*.py") if p.stem not in ("__init__", "home"))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page()
            page.set_default_timeout(180_000)
            for name in ["", *pages]:
                page.goto(f"{server.url}/{name}")
                wait_for_app(page, settle_ms=1500)
            browser.close()
        status = Path(f"/proc/{server.process.pid}/status").read_text()
        values = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status.splitlines()
                  if line.startswith(("VmRSS", "VmHWM"))}
    finally:
        _stop_quietly(server)
        conftest.REPO = REPO
    return values


def _stop_quietly(server) -> None:
    """Stop the server and its background processes (without the test's TensorFlow assertion:
    the older commit did load TensorFlow into the server)."""
    from conftest import stop_background_processes

    server.process.terminate()
    server.process.wait(30)
    stop_background_processes(server.data_dir)


def bench_server_memory(root: Path, before: str | None) -> None:
    print("\n# 3. Streamlit server memory after opening every page once (headless Chromium)")
    after = server_memory(REPO, root / "after")
    print(f"this commit: RSS {after['VmRSS']:.0f} MiB, peak {after['VmHWM']:.0f} MiB")
    if before:
        worktree = root / "before-tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), before], cwd=REPO, check=True,
                       capture_output=True)
        try:
            old = server_memory(worktree, root / "before")
            print(f"{before}: RSS {old['VmRSS']:.0f} MiB, peak {old['VmHWM']:.0f} MiB; "
                  f"ratio after/before {after['VmRSS'] / old['VmRSS']:.2f}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--before", help="also measure the server memory of this older commit")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-services-") as folder:
        root = Path(folder)
        os.environ["DASHBOARD_DATA_DIR"] = str(root / "data")
        bench_job_start(root)
        bench_style_first_preview(root)
        bench_round_trip(root)
        if not arguments.skip_browser:
            bench_server_memory(root, arguments.before)


if __name__ == "__main__":
    main()
