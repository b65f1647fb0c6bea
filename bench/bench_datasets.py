"""Dataset explorer speed and memory, measured side by side in one run (figures go into
docs/datasets.md).

1. Indexing 5000 generated Kather-like 150x150 RGB TIFF tiles (625 per class, Kather names):
   cold with one thread vs the default pool, then warm (cached parquet, folder unchanged),
   and after touching one file (incremental).
2. Gallery page change (AppTest, index warm): first visit of a page (thumbnails made) vs a
   revisit (thumbnails cached).
3. Zip import: the generated tiles as one zip, extracted by ``services.archives.extract_zip``
   (every name, size and clash checked, bytes counted while writing) vs plain
   ``zipfile.ZipFile.extractall``, and the refusal time of a 4.5 MB zip declaring 4 GiB.
4. Home page first render in a fresh process (AppTest of dashboard/app.py).
5. Peak memory (VmHWM) of a real ``streamlit run`` server with the explorer open on the 5000
   tiles in headless Chromium, after visiting every section but the augmentation preview.

Usage: ``python bench/bench_datasets.py [--tiles-per-class 625] [--skip-browser]``. The tiles
are generated once into ``build/bench-datasets/`` (procedural, like the demo set).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BENCH_ROOT = REPO / "build" / "bench-datasets"
DATASET = "kather_like"


def _write_class(args: tuple[Path, int, str, int]) -> int:
    import numpy as np
    from PIL import Image

    from services.datasets.naming import kather_tile_name
    from services.datasets.textures import Stain, render

    folder, class_number, label, count = args
    class_dir = folder / f"{class_number:02d}_{label}"
    class_dir.mkdir(parents=True, exist_ok=True)
    per_source = 25
    for start in range(0, count, per_source):
        rng = np.random.default_rng([7, class_number, start])
        stain = Stain.draw(rng)
        source = f"BENCH-HE-{class_number:02d}_{start // per_source:03d}.tif"
        for k in range(start, min(count, start + per_source)):
            name = kather_tile_name(f"{class_number:X}{k:04X}", source, 150 * (k % 30) + 1, 150 * (k // 30) + 1)
            Image.fromarray(render(label, stain, rng)).save(class_dir / name, format="TIFF")
    return count


def generate(tiles_per_class: int) -> Path:
    from services.datasets.naming import KATHER_CLASSES

    folder = BENCH_ROOT / "data" / "datasets" / DATASET
    marker = folder / f".complete-{tiles_per_class}"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    jobs = [(folder, i, label, tiles_per_class) for i, label in enumerate(KATHER_CLASSES, start=1)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        total = sum(pool.map(_write_class, jobs))
    marker.touch()
    print(f"generated {total} tiles in {time.perf_counter() - start:.1f} s")
    return folder


def bench_index(folder: Path) -> None:
    from services.datasets import index

    print("\n## Indexing", sum(1 for _ in folder.rglob("*.tif")), "tiles")
    results = {}
    for label, workers in (("cold, 1 thread", 1), (f"cold, {os.cpu_count()} threads (default)", None)):
        index.cache_file(folder).unlink(missing_ok=True)
        start = time.perf_counter()
        frame = index.load_index(folder, workers=workers)
        results[label] = time.perf_counter() - start
    start = time.perf_counter()
    index.load_index(folder)
    results["warm (cache valid)"] = time.perf_counter() - start
    start = time.perf_counter()
    index.current_signature(folder)
    results["folder signature only"] = time.perf_counter() - start
    touched = next(folder.rglob("*.tif"))
    os.utime(touched)
    start = time.perf_counter()
    index.load_index(folder)
    results["one file touched (incremental)"] = time.perf_counter() - start
    cold = results[f"cold, {os.cpu_count()} threads (default)"]
    for label, seconds in results.items():
        print(f"{label:<34} {seconds:8.3f} s   {seconds / cold:6.3f}x of default cold")
    print(f"problems: {int(frame['problem'].notna().sum())}")


def bench_zip(folder: Path) -> None:
    import zipfile

    from services import archives
    from tests.datasets_helpers import zip_bomb

    data_root = Path(os.environ["DASHBOARD_DATA_DIR"])
    archive = data_root / "bench-tiles.zip"
    if not archive.exists():
        with zipfile.ZipFile(archive, "w") as writer:
            for path in sorted(folder.rglob("*.tif")):
                writer.write(path, path.relative_to(folder.parent).as_posix())
    print(f"\n## Zip import ({archive.stat().st_size / 1e6:.0f} MB, stored)")
    extractors = {"zipfile.extractall (no checks)": lambda target: zipfile.ZipFile(archive).extractall(target),
                  "archives.extract_zip (checked)": lambda target: archives.extract_zip(archive, target)}
    wall: dict[str, list[float]] = {label: [] for label in extractors}
    cpu: dict[str, list[float]] = {label: [] for label in extractors}
    for _ in range(3):  # alternating rounds: a change in the machine's load hits both alike
        for label, extract in extractors.items():
            target = data_root / "bench-extract"
            shutil.rmtree(target, ignore_errors=True)
            start, start_cpu = time.perf_counter(), time.process_time()
            extract(target)
            wall[label].append(time.perf_counter() - start)
            cpu[label].append(time.process_time() - start_cpu)
            shutil.rmtree(target, ignore_errors=True)
    results = {label: (statistics.median(wall[label]), statistics.median(cpu[label])) for label in extractors}
    bomb = zip_bomb()
    start = time.perf_counter()
    try:
        archives.extract_zip(bomb, data_root / "bench-bomb")
    except archives.UnsafeArchive:
        pass
    refused = time.perf_counter() - start
    plain_wall, plain_cpu = results["zipfile.extractall (no checks)"]
    for label, (seconds, cpu_seconds) in results.items():
        print(f"{label:<40} {seconds:8.3f} s wall ({seconds / plain_wall:5.2f}x of extractall), {cpu_seconds:6.3f} s "
              f"CPU ({cpu_seconds / plain_cpu:5.2f}x)   median of 3 alternating rounds")
    print(f"refuse a {len(bomb) / 1e6:.1f} MB zip declaring 4 GiB: {refused:.3f} s; load average "
          f"{os.getloadavg()[0]:.1f}")


def bench_gallery() -> None:
    from streamlit.testing.v1 import AppTest

    print("\n## Gallery page change (AppTest script run, index warm)")
    app = AppTest.from_file(str(REPO / "pages" / "dataset_explorer.py"), default_timeout=120)
    app.run()
    app.selectbox(key="explorer_dataset").set_value(DATASET).run()
    key = next(n.key for n in app.number_input if n.key and n.key.startswith("gallery_page"))
    first, again = [], []
    for page in range(2, 7):
        start = time.perf_counter()
        app.number_input(key=key).set_value(page).run()
        first.append(time.perf_counter() - start)
    for page in range(2, 7):
        start = time.perf_counter()
        app.number_input(key=key).set_value(page).run()
        again.append(time.perf_counter() - start)
    assert not app.exception, app.exception
    median = lambda values: sorted(values)[len(values) // 2]
    print(f"first visit of a page (32 thumbnails made)  median {median(first):.3f} s  max {max(first):.3f} s")
    print(f"revisit (thumbnails cached)                 median {median(again):.3f} s  max {max(again):.3f} s")
    print(f"ratio first/revisit {median(first) / median(again):.2f}x")


def bench_home() -> None:
    print("\n## Home page first render (fresh process)")
    code = ("import time, sys; t0 = time.perf_counter(); from streamlit.testing.v1 import AppTest; "
            "t1 = time.perf_counter(); AppTest.from_file('dashboard/app.py', default_timeout=60).run(); "
            "t2 = time.perf_counter(); print(f'{t1 - t0:.3f} {t2 - t1:.3f} {\"tensorflow\" in sys.modules}')")
    results = []
    for _ in range(3):
        output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                                env={**os.environ, "DASHBOARD_DATA_DIR": tempfile.mkdtemp()})
        results.append(output.stdout.split())
    for imports, render, tf in results:
        print(f"streamlit import {float(imports):.3f} s, first render {float(render):.3f} s, tensorflow imported: {tf}")


def _rss(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(value.split()[0]) // 1024
    return values


def bench_memory(total_tiles: int) -> None:
    from playwright.sync_api import sync_playwright

    from tests.conftest import StreamlitServer, wait_for_app

    print(f"\n## Server memory with the explorer open on {total_tiles} tiles (real browser)")
    log = BENCH_ROOT / "server.log"
    server = StreamlitServer(BENCH_ROOT / "data", log)
    try:
        print(f"server idle after start: {_rss(server.process.pid)} MiB")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                 args=["--no-sandbox", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(server.url + "/dataset_explorer")
            wait_for_app(page)
            page.locator("[data-testid='stSelectbox']").filter(has_text="Dataset").first.click()
            page.get_by_role("option", name=f"Folder: {DATASET}").click()
            page.get_by_text(f"{total_tiles:,}", exact=True).first.wait_for()
            wait_for_app(page)
            print(f"explorer open on gallery: {_rss(server.process.pid)} MiB")
            for section in ("Colour", "Quality", "Splits"):
                page.locator("[data-testid='stButtonGroup'] button").filter(has_text=section).first.click()
                wait_for_app(page)
                print(f"after {section:<8}: {_rss(server.process.pid)} MiB")
            browser.close()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiles-per-class", type=int, default=625)
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--zip-only", action="store_true")
    args = parser.parse_args()
    os.environ["DASHBOARD_DATA_DIR"] = str(BENCH_ROOT / "data")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    folder = generate(args.tiles_per_class)
    if args.zip_only:
        bench_zip(folder)
        return
    if not args.memory_only:
        bench_index(folder)
        bench_zip(folder)
        bench_gallery()
        bench_home()
    if not args.skip_browser:
        bench_memory(8 * args.tiles_per_class)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end (other engineers share this machine)")


if __name__ == "__main__":
    main()
