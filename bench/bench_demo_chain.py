"""The real-tissue demo chain end to end, as ``python -m services.demo`` runs it, against a local
HTTP server with a bandwidth limit (a "normal connection", default 50 Mbit/s), at the real scale
where it can be made here, under the cloud profile; its time per step and its memory.

No network here: the served files are generated in the real layouts (``tests/demo_helpers.py``'s
kinds), at the real sizes where that is possible: ``--tiles-per-class 625`` Kather-named
150 x 150 TIFF tiles (5000, the real count; procedural textures, so the zip is not the real
258 MB), a MobileNetV2 no-top weights file made from a random-initialised model (the real file's
size), and a larger-images zip holding one 5000 x 5000 TIFF made of tiles (read by range requests
as the real 742 MB zip would be: directory + that one member). The results are labelled GENERATED
and RANDOM INIT by the chain itself; accuracy figures mean nothing, times and memory do.

The PSS of the command, the job runner and the job worker (``services/processes.py``) is sampled
twice a second; the step of each moment is read from the progress lines the command prints.

    .venv/bin/python bench/bench_demo_chain.py [--tiles-per-class 625] [--mbit 50]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from services import processes  # noqa: E402

MIB = 2**20
STEP_OF_MESSAGE = (("Kather 2016 tiles", "tiles"), ("MobileNetV2 weights", "weights"), ("one larger image", "image"),
                   ("split", "split"), ("strategy C", "train"), ("calibration", "calibrate"), ("tissue map", "map"))


def build_files(served: Path, work: Path, tiles_per_class: int) -> dict[str, int]:
    import keras
    import numpy as np
    from PIL import Image

    from services.datasets.demo import MARKER, write_demo_tiles
    from services.models import weights
    from services.tissuemap.demo import write_tiled_tiff
    from tests import demo_helpers as layout

    served.mkdir(parents=True, exist_ok=True)
    tiles = work / "tiles"
    write_demo_tiles(tiles, tiles_per_class=tiles_per_class, sources_per_class=25)
    (tiles / MARKER).unlink()
    paths = sorted(tiles.rglob("*.tif"))
    with zipfile.ZipFile(served / layout.TILES_ZIP, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            archive.write(path, layout.TILES_PREFIX + path.relative_to(tiles).as_posix())
    keras.utils.set_random_seed(3)
    spec = weights.spec("mobilenet_v2")
    weights.write_weights_file(spec.build((224, 224, 3)), served / spec.file_name)
    side, cells = 150, 34  # 34 x 150 = 5100 px, cropped to 5000 x 5000
    rng = np.random.default_rng(0)
    picks = rng.choice(len(paths), cells * cells)
    rows = [np.concatenate([np.asarray(Image.open(paths[i]).convert("RGB")) for i in picks[r * cells:(r + 1) * cells]],
                           axis=1) for r in range(cells)]
    image = np.ascontiguousarray(np.concatenate(rows, axis=0)[:5000, :5000])
    first = work / "first.tif"
    write_tiled_tiff(first, image, mpp=0.495, description="generated test image")
    with zipfile.ZipFile(served / layout.LARGER_ZIP, "w") as archive:
        archive.write(first, layout.LARGER_PREFIX + layout.FIRST_IMAGE, compress_type=zipfile.ZIP_STORED)
    return {name: (served / name).stat().st_size for name in (layout.TILES_ZIP, spec.file_name, layout.LARGER_ZIP)}


def sources(served: Path, url: str) -> dict:
    from services.models import weights
    from tests import demo_helpers as layout

    def digest(name: str, kind: str) -> str:
        return hashlib.new(kind, (served / name).read_bytes()).hexdigest()

    name = weights.spec("mobilenet_v2").file_name
    return {"tiles": {"url": url + layout.TILES_ZIP, "size": (served / layout.TILES_ZIP).stat().st_size,
                      "md5": digest(layout.TILES_ZIP, "md5"), "generated": True},
            "weights": {"url": url + name, "md5": digest(name, "md5"), "random_weights": True},
            "larger": {"url": url + layout.LARGER_ZIP, "size": (served / layout.LARGER_ZIP).stat().st_size,
                       "sha256": digest(layout.LARGER_ZIP, "sha256"), "generated": True}}


class Sampler(threading.Thread):
    def __init__(self, data_root: Path, command_pid: int):
        super().__init__(daemon=True)
        self.data_root, self.command_pid = data_root, command_pid
        self.step = "start"
        self.peaks: dict[str, tuple[float, dict[str, float]]] = {}
        self.most_tensorflow = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            usages = [processes.Usage("command", self.command_pid, *processes.memory(self.command_pid)),
                      *processes.app_usage(self.data_root)]
            now = {f"{u.role} {u.pid}": (u.bytes or 0) / MIB for u in usages}
            total = sum(now.values())
            if total > self.peaks.get(self.step, (0.0, {}))[0]:
                self.peaks[self.step] = (total, now)
            self.most_tensorflow = max(self.most_tensorflow,
                                       sum(processes.loaded_tensorflow(u.pid) for u in usages))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiles-per-class", type=int, default=625)
    parser.add_argument("--mbit", type=float, default=50.0, help="the connection's bandwidth, Mbit/s")
    args = parser.parse_args(argv)
    from tests.conftest import serve_folder

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-demo-chain-") as folder:
        root = Path(folder)
        start = time.monotonic()
        sizes = build_files(root / "served", root / "work", args.tiles_per_class)
        print(f"generated in {time.monotonic() - start:.0f} s: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()),
              flush=True)
        data_root = root / "data"
        with serve_folder(root / "served", bytes_per_s=args.mbit * 1e6 / 8) as server:
            (root / "sources.json").write_text(json.dumps(sources(root / "served", server.url)))
            env = {**os.environ, "DASHBOARD_PROFILE": "cloud", "DASHBOARD_DATA_DIR": str(data_root),
                   "DASHBOARD_DEMO_SOURCES": str(root / "sources.json"), "DASHBOARD_OFFLINE": "",
                   "PYTHONUNBUFFERED": "1", "KERAS_HOME": str(root / "keras-home")}
            began = time.monotonic()
            command = subprocess.Popen([sys.executable, "-m", "services.demo"], cwd=REPO, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            sampler = Sampler(data_root, command.pid)
            sampler.start()
            step_started: dict[str, float] = {}
            for line in command.stdout:
                for prefix, step in STEP_OF_MESSAGE:
                    if re.search(rf"\] running: {re.escape(prefix)}", line) and step not in step_started:
                        step_started[step] = time.monotonic() - began
                        sampler.step = step
                if not line.startswith("["):
                    print("  " + line.rstrip(), flush=True)
            code = command.wait()
            total_s = time.monotonic() - began
            sampler.done.set()
            sampler.join()
            transferred = server.bytes_sent
        processes.end(processes.find(data_root))  # the runner would idle 60 s more
    print(f"\nexit status {code}; {total_s:.0f} s in all at {args.mbit:.0f} Mbit/s; {transferred / 1e6:.1f} MB "
          f"transferred; load average {os.getloadavg()[0]:.2f} at the end")
    order = [step for _, step in STEP_OF_MESSAGE if step in step_started]
    for index, step in enumerate(order):
        end = step_started[order[index + 1]] if index + 1 < len(order) else total_s
        peak, at = sampler.peaks.get(step, (0.0, {}))
        parts = ", ".join(f"{name} {mib:.0f}" for name, mib in at.items())
        print(f"{step:10} {end - step_started[step]:7.0f} s   peak {peak:6.0f} MiB PSS ({parts})")
    overall = max(sampler.peaks.values(), key=lambda item: item[0], default=(0.0, {}))
    print(f"peak over the chain {overall[0]:.0f} MiB PSS; most processes with TensorFlow at once: "
          f"{sampler.most_tensorflow}")
    return code


if __name__ == "__main__":
    sys.exit(main())
