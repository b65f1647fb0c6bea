"""Tissue-map speed, measured side by side in one run (figures go into docs/tissue_map.md).

For each model (cnn_v1 at 150 px, MobileNet v2 as a frozen transfer model at 150 px; random
weights, which do not change the timings), on a 5000 x 5000 px tiled TIFF mosaic of demo tiles
(1,089 tiles of 150 px at 0.495 um/px):

1. the map job's inference loop (``services.tissuemap.job.predict_tiles``: tiles read from the
   file by region in a reader thread, resized, the predictor's traced uint8 graph
   (``services.tissuemap.models.uint8_forward``), each batch saved for resume, progress and stop
   checks) in tiles/s, over the same model's plain batched ``model.predict`` on the same tiles
   already in memory (warm); medians of alternating rounds. Goal >= 0.9x. The same loop with the
   earlier ``predict_on_batch(tiles.astype(float32) / 255)`` runs in the same rounds ("old loop");
2. the whole job's wall time (model loading, thumbnail and tissue detection, inference, every
   output) and the peak memory (VmHWM) of the process that ran it;
3. the page's detail view: one region read at 1:1, 1:2 and 1:4 (cold file, then panned);
4. (``--job-system``) maps as a user runs them: submitted to the job system (runner, warm worker
   already up), timed from submit to the end recorded by the worker (``created`` -> ``ended``):
   the first map, then ``--rounds`` more maps of the same model file (the warm worker that ran a
   map keeps the model: ``services/jobs/worker.py``, ``load_predictor``), each alternating with
   plain warm ``predict`` on the same tiles in the bench's own process; ratio = tiles/s of the
   map / tiles/s of plain predict (goal >= 0.8 for MobileNet v2): for the later maps the median
   of each map's ratio to the predict run right after it (the load of a shared machine drifts);
   the same ratio in CPU seconds (the worker process's, the bench process's) is robust to load.

Each model runs in its own process so the peak memory is that job's. Usage:
``python bench/bench_tissuemap.py [--models cnn_v1,mobilenet_v2] [--batch 32] [--side 5000] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build_model(name: str):
    from services.models.catalog import build_model as catalog_build

    if name == "cnn_v1":
        return catalog_build("cnn_v1", input_shape=(150, 150, 3), num_classes=8)
    return catalog_build("transfer_frozen", input_shape=(150, 150, 3), num_classes=8, backbone=name,
                         weights="random", pooling="avg")


def write_mosaic(root: Path, side: int) -> Path:
    import numpy as np

    from services.datasets.demo import ensure_demo_dataset
    from services.tissuemap.demo import DEMO_CLASSES, _class_tiles, blob_layout, build_mosaic, write_tiled_tiff

    cells = side // 150
    layout = blob_layout(cells, cells, DEMO_CLASSES, regions=30)
    mosaic = build_mosaic(_class_tiles(ensure_demo_dataset(root), DEMO_CLASSES), layout)
    canvas = np.full((side, side, 3), 255, np.uint8)
    canvas[:mosaic.shape[0], :mosaic.shape[1]] = mosaic
    path = root / "bench_mosaic.tif"
    write_tiled_tiff(path, canvas, mpp=0.495, description="SYNTHETIC bench mosaic")
    return path


def high_water_mb() -> float:
    """Peak RSS of this process (VmHWM; ru_maxrss would include the parent's peak, kept across exec)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def worker(name: str, root: Path, image: Path, batch: int, rounds: int) -> dict:
    """In a fresh process: the whole map job once (wall time, peak memory), then ``rounds`` times
    alternately the job's inference loop (reading tiles from the file) and plain ``predict`` on the
    same tiles in memory; the medians are compared (the machine is shared: alternating evens out load)."""
    os.environ["DASHBOARD_DATA_DIR"] = str(root)
    import numpy as np

    from services.jobs.context import JobContext, MemoryReporter, run_inline
    from services.models.saved import load_saved_model
    from services.tissuemap.job import TileReader, predict_tiles
    from services.tissuemap.maps import load_map
    from services.tissuemap.models import ModelChoice, load_predictor
    from services.tissuemap.reader import open_image

    model = build_model(name)
    model_path = root / f"{name}.keras"
    model.save(model_path)
    choice = ModelChoice("run", str(model_path), f"{name} (random weights)", [f"c{i}" for i in range(8)])
    params = {"image": {"source": "path", "path": str(image)}, "model": choice.to_params(), "batch_size": batch}
    started = time.perf_counter()
    outcome = run_inline("tissue-map", params, root / f"job-{name}")
    wall = time.perf_counter() - started
    assert outcome.status == "finished", outcome.error
    peak_job = high_water_mb()
    grid, tiles = (lambda m: (m.grid, m.tiles))(load_map(root / f"job-{name}" / "map"))
    predictor, plain = load_predictor(choice), load_saved_model(model_path)
    old = load_predictor(choice)
    old.forward = lambda tiles: old.model.predict_on_batch(tiles.astype("float32") / 255.0)
    loop, predict, old_loop = [], [], []
    with open_image(image) as source:
        reader = TileReader(source, grid, predictor.input_size)
        x = reader.read(tiles).astype("float32") / 255.0
        plain.predict(x[:batch], batch_size=batch, verbose=0)  # warm both
        predictor.predict(reader.read(tiles[:batch]))
        old.predict(reader.read(tiles[:batch]))
        for round_index in range(rounds):
            for kind, timed, speeds in (("new", predictor, loop), ("old", old, old_loop)):
                folder = root / f"loop-{name}-{kind}-{round_index}"
                (folder / "predictions").mkdir(parents=True)
                context = JobContext(MemoryReporter(), folder, {}, report_interval=0.25)
                with open_image(image) as fresh:  # a cold reading cache, as in a job
                    started = time.perf_counter()
                    predict_tiles(context, timed, TileReader(fresh, grid, timed.input_size), tiles, batch, {})
                    speeds.append(len(tiles) / (time.perf_counter() - started))
            started = time.perf_counter()
            plain.predict(x, batch_size=batch, verbose=0)
            predict.append(len(tiles) / (time.perf_counter() - started))
    return {"model": name, "tiles": len(tiles), "job_wall_s": wall, "loop_tiles_per_s": float(np.median(loop)),
            "predict_tiles_per_s": float(np.median(predict)), "job_end_to_end_tiles_per_s": len(tiles) / wall,
            "old_loop_tiles_per_s": float(np.median(old_loop)),
            "peak_rss_mb": peak_job}


def job_system(name: str, root: Path, image: Path, batch: int, rounds: int) -> dict:
    """In a fresh process: maps submitted to the job system beside plain predict (see the module doc)."""
    os.environ |= {"DASHBOARD_DATA_DIR": str(root), "DASHBOARD_WARM_WORKER": "1"}
    import numpy as np

    from services.jobs import JobManager
    from services.models.saved import load_saved_model
    from services.tissuemap.job import TileReader
    from services.tissuemap.maps import load_map
    from services.tissuemap.models import ModelChoice
    from services.tissuemap.reader import open_image

    model_path = root / f"jobs-{name}.keras"
    build_model(name).save(model_path)
    choice = ModelChoice("run", str(model_path), f"{name} (random weights)", [f"c{i}" for i in range(8)])
    params = {"image": {"source": "path", "path": str(image)}, "model": choice.to_params(), "batch_size": batch}
    manager = JobManager(root / "jobs")
    manager.wait(manager.submit("test-tensorflow", "start the runner", {"n": 1}), 300)
    time.sleep(20)  # the next warm worker imports TensorFlow, as it has by the time a user presses Start

    def one_map() -> tuple[float, object]:
        state = manager.wait(manager.submit("tissue-map", "bench map", params), 600)
        assert state.status == "finished", state.error
        return state.ended - state.created, state

    first, state = one_map()
    tiles_map = load_map(manager.job_dir(state.id) / "map")
    plain = load_saved_model(model_path)
    with open_image(image) as source:
        x = TileReader(source, tiles_map.grid, (150, 150)).read(tiles_map.tiles).astype("float32") / 255.0
    plain.predict(x[:batch], batch_size=batch, verbose=0)
    later, predict, kept, map_cpu, predict_cpu = [], [], [], [], []
    worker_pid = state.pid
    for _ in range(rounds):
        cpu = process_cpu_seconds(worker_pid)
        seconds, state = one_map()
        map_cpu.append(process_cpu_seconds(worker_pid) - cpu if state.pid == worker_pid else float("nan"))
        later.append(seconds)
        kept.append(bool(state.result.get("model_kept")))
        started, cpu = time.perf_counter(), time.process_time()
        plain.predict(x, batch_size=batch, verbose=0)
        predict.append(time.perf_counter() - started)
        predict_cpu.append(time.process_time() - cpu)
    from services import lifetime

    lifetime.stop_app(root)  # the runner and its workers
    return {"model": name, "tiles": len(tiles_map.tiles), "first_s": first, "later_s": float(np.median(later)),
            "predict_s": float(np.median(predict)), "kept": f"{sum(kept)}/{len(kept)}",
            "first_ratio": float(np.median(predict)) / first,
            "later_ratio": float(np.median([p / m for p, m in zip(predict, later)])),
            "later_all": [round(v, 2) for v in later], "predict_all": [round(v, 2) for v in predict],
            "cpu_ratio": float(np.median([p / m for p, m in zip(predict_cpu, map_cpu)])),
            "map_cpu_all": [round(v, 2) for v in map_cpu], "predict_cpu_all": [round(v, 2) for v in predict_cpu]}


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="cnn_v1,mobilenet_v2")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--side", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--job-system", action="store_true", help="only the maps through the job system (4.)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--jobs-worker", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.root), Path(args.image), args.batch, args.rounds)))
        return
    if args.jobs_worker:
        print(json.dumps(job_system(args.jobs_worker, Path(args.root), Path(args.image), args.batch, args.rounds)))
        return
    root = Path(tempfile.mkdtemp(prefix="bench-tissuemap-"))
    os.environ["DASHBOARD_DATA_DIR"] = str(root)
    image = write_mosaic(root, args.side)
    print(f"image {args.side}x{args.side} px tiled TIFF ({image.stat().st_size / 1e6:.0f} MB), batch {args.batch}, "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.job_system:
        job_system_times(args, root, image)
        return
    print(f"medians of {args.rounds} alternating rounds; ratio = map loop / plain predict (goal >= 0.9)")
    print("model          tiles  job wall s  loop tiles/s  predict tiles/s  ratio  old loop ratio  end-to-end/predict"
          "  peak RSS MB")
    for r in in_fresh_processes("--worker", args, root, image):
        print(f"{r['model']:<14} {r['tiles']:>5}  {r['job_wall_s']:>10.1f}  {r['loop_tiles_per_s']:>12.1f}  "
              f"{r['predict_tiles_per_s']:>15.1f}  {r['loop_tiles_per_s'] / r['predict_tiles_per_s']:>5.2f}  "
              f"{r['old_loop_tiles_per_s'] / r['predict_tiles_per_s']:>14.2f}  "
              f"{r['job_end_to_end_tiles_per_s'] / r['predict_tiles_per_s']:>18.2f}  {r['peak_rss_mb']:>11.0f}")
    detail_view_times(image)


def in_fresh_processes(mode: str, args, root: Path, image: Path):
    """This script's ``mode`` (``--worker`` or ``--jobs-worker``) for each model, each in a new
    process: their JSON results (a failure is printed and skipped)."""
    for name in args.models.split(","):
        done = subprocess.run([sys.executable, __file__, mode, name, "--root", str(root), "--image", str(image),
                               "--batch", str(args.batch), "--rounds", str(args.rounds)], capture_output=True,
                              text=True, cwd=REPO)
        if done.returncode:
            print(f"{name}: failed\n{done.stderr[-2000:]}")
            continue
        yield json.loads(done.stdout.strip().splitlines()[-1])


def job_system_times(args, root: Path, image: Path) -> None:
    print(f"maps through the job system (warm worker), then {args.rounds} more of the same model, each beside plain "
          "predict; ratio = map tiles/s / predict tiles/s (goal >= 0.8)")
    print("model          tiles  first map s  later maps s (median)  predict s  first ratio  later ratio  model kept")
    for r in in_fresh_processes("--jobs-worker", args, root, image):
        print(f"{r['model']:<14} {r['tiles']:>5}  {r['first_s']:>11.2f}  {r['later_s']:>21.2f}  {r['predict_s']:>9.2f}  "
              f"{r['first_ratio']:>11.2f}  {r['later_ratio']:>11.2f}  {r['kept']:>10}   "
              f"(maps {r['later_all']}, predict {r['predict_all']}; load {os.getloadavg()[0]:.1f})")
        print(f"{'':14} CPU seconds, the later maps' worker / plain predict's process: ratio {r['cpu_ratio']:.2f} "
              f"(maps {r['map_cpu_all']}, predict {r['predict_cpu_all']})")


def detail_view_times(image: Path) -> None:
    """Seconds per detail view of the page (services.tissuemap.detail) at each zoom: a freshly opened
    file (cold chunk cache), then the view panned right by half (the page keeps the file open)."""
    from services.tissuemap import detail
    from services.tissuemap.reader import open_image

    for zoom in detail.ZOOMS:
        with open_image(image) as source:
            box = detail.detail_box(source.width, source.height, source.width / 2, source.height / 2, zoom)
            started = time.perf_counter()
            detail.read_detail(source, box)
            cold = time.perf_counter() - started
            started = time.perf_counter()
            detail.read_detail(source, detail.panned(box, source.width, source.height, 1, 0))
            panned = time.perf_counter() - started
        print(f"detail view 1:{zoom} ({box.width} px box): {cold:.3f} s cold, {panned:.3f} s panned")


if __name__ == "__main__":
    main()
