"""Detection benchmark: TensorFlow (Keras rebuild) vs OpenCV DNN latency, and NMS speed.

    .venv/bin/python bench/bench_detection.py [--size 416] [--repeats 10] [--models yolov3-tiny yolov3]

Random weights in the exact Darknet layout (same FLOPs as the real ones). Prints the median
latency of each backend measured side by side in one run and the ratio TF / OpenCV (goal
<= 1.5 on CPU; Yolo-Fastest with its real weights: <= 1.0), then NMS on 10,000 candidate
boxes: the product's OpenCV NMS vs the vectorised numpy version it replaced.
With --rerun-only: only the detector page's threshold-change rerun (AppTest as is, the whole
script compiled once, the results fragment alone; side by side).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services import runtime  # noqa: E402
from services.detection.backends import KerasBackend, OpenCVDarknetBackend  # noqa: E402
from services.detection.decode import preprocess  # noqa: E402
from services.detection.models import load_darknet  # noqa: E402
from services.detection.nms import class_wise_nms, nms  # noqa: E402
from services.detection.models import coco_names  # noqa: E402
from services.detection.registry import REGISTRY  # noqa: E402
from services.detection.cfg import parse_cfg  # noqa: E402
from services.detection.weights import random_weights_bytes  # noqa: E402
from tests.apptest_server import apptest_like_server, fragment_id  # noqa: E402


def median_ms(function, repeats: int, clock=time.perf_counter) -> float:
    """Median milliseconds of ``function`` after a warm-up call (tracing, allocation); with
    ``clock=time.thread_time``, this thread's CPU time (single-threaded code: robust to load)."""
    function()
    times = []
    for _ in range(repeats):
        start = clock()
        function()
        times.append((clock() - start) * 1e3)
    return statistics.median(times)


def interleaved_ms(runs: dict, repeats: int, per_round: int = 3) -> dict[str, float]:
    """Median wall time of each function, measured in alternating rounds of ``per_round`` calls,
    so that a change in the machine's load hits every contender alike."""
    for function in runs.values():
        function()
        function()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, function in runs.items():
            for _ in range(per_round):
                start = time.perf_counter()
                function()
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_backends(key: str, size: int, repeats: int, folder: Path) -> None:
    spec = REGISTRY[key]
    config = parse_cfg(spec.cfg_path.read_text(), spec.cfg_file)
    weights = folder / f"{key}.weights"
    weights.write_bytes(random_weights_bytes(config, seed=0))
    model = load_darknet(spec.cfg_path, weights, coco_names(), key=key)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    batch, _ = preprocess(image, size)
    tf_backend, cv_backend = KerasBackend(model), OpenCVDarknetBackend(model)
    difference = max(float(np.abs(a - b).max()) for a, b in zip(tf_backend.raw(batch), cv_backend.raw(batch)))
    device = "GPU" if runtime.has_gpu() else "CPU"
    tf_ms = median_ms(lambda: tf_backend.raw(batch), repeats)
    cv_ms = median_ms(lambda: cv_backend.raw(batch), repeats)
    book_ms = median_ms(lambda: cv_backend.yolo_layer_rows(batch), repeats)
    print(f"{key:12s} {size}: TensorFlow ({device}) {tf_ms:7.1f} ms | OpenCV (CPU) raw heads {cv_ms:7.1f} ms, "
          f"yolo outputs (book) {book_ms:7.1f} ms | TF/OpenCV {tf_ms / cv_ms:4.2f} (vs book {tf_ms / book_ms:4.2f}) "
          f"| max |diff| {difference:.1e}")


def numpy_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """The vectorised numpy NMS the product used before OpenCV's (one IoU row per kept box,
    survivors compacted each round); class-wise by shifting classes apart."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[order, k]) for k in range(4))
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    remaining, keep = order, []
    while remaining.size:
        keep.append(remaining[0])
        width = np.minimum(x2[0], x2[1:]) - np.maximum(x1[0], x1[1:])
        height = np.minimum(y2[0], y2[1:]) - np.maximum(y1[0], y1[1:])
        overlap = np.clip(width, 0, None) * np.clip(height, 0, None)
        survive = overlap <= threshold * (areas[0] + areas[1:] - overlap)
        x1, y1, x2, y2, areas, remaining = (column[1:][survive] for column in (x1, y1, x2, y2, areas, remaining))
    return np.asarray(keep, dtype=np.int64)


def numpy_class_wise_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, threshold: float) -> np.ndarray:
    offset = (boxes.max() - boxes.min() + 1.0) * classes.astype(np.float64)
    return numpy_nms(boxes + offset[:, None], scores, threshold)


def candidate_boxes(kind: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """``clustered``: jittered boxes around 100 objects, like a detector's raw candidates;
    ``uniform``: boxes scattered everywhere (about half survive: the worst case)."""
    if kind == "uniform":
        xy, wh = rng.uniform(0, 1000, (count, 2)), rng.uniform(10, 120, (count, 2))
    else:
        centres, sizes = rng.uniform(0, 1000, (100, 2)), rng.uniform(20, 150, (100, 2))
        pick = rng.integers(0, 100, count)
        wh = sizes[pick] * rng.uniform(0.8, 1.2, (count, 2))
        xy = centres[pick] + rng.normal(0, 5, (count, 2))
    return np.hstack([xy, xy + wh])


def bench_nms(count: int = 10_000, threshold: float = 0.45, repeats: int = 5) -> None:
    """OpenCV (the product: services.detection.nms, conversions included) vs the numpy version
    it replaced, plain and class-wise (5 classes); thread CPU time, interleaved."""
    rng = np.random.default_rng(0)
    for kind in ("clustered", "uniform"):
        boxes = candidate_boxes(kind, count, rng)
        scores = rng.uniform(size=count).astype(np.float32)
        classes = rng.integers(0, 5, count)
        kept = nms(boxes, scores, threshold)
        assert kept.tolist() == numpy_nms(boxes, scores, threshold).tolist(), "OpenCV NMS disagrees with numpy"
        assert (class_wise_nms(boxes, scores, classes, threshold).tolist()
                == numpy_class_wise_nms(boxes, scores, classes, threshold).tolist())
        runs = {"opencv": lambda: nms(boxes, scores, threshold),
                "numpy": lambda: numpy_nms(boxes, scores, threshold),
                "opencv_cw": lambda: class_wise_nms(boxes, scores, classes, threshold),
                "numpy_cw": lambda: numpy_class_wise_nms(boxes, scores, classes, threshold)}
        times = {name: [] for name in runs}
        for _ in range(repeats):
            for name, function in runs.items():
                times[name].append(median_ms(function, 1, clock=time.thread_time))
        t = {name: statistics.median(values) for name, values in times.items()}
        print(f"NMS {kind:9s} {count:,} boxes ({len(kept):,} kept), CPU ms: OpenCV {t['opencv']:6.1f} vs numpy "
              f"{t['numpy']:6.1f} (numpy/OpenCV {t['numpy'] / t['opencv']:4.2f}) | class-wise OpenCV "
              f"{t['opencv_cw']:6.1f} vs numpy {t['numpy_cw']:6.1f} ({t['numpy_cw'] / t['opencv_cw']:4.2f}) "
              f"| load {os.getloadavg()[0]:.1f}")


def conv_yolo_graph(size: int = 320, classes: int = 80) -> bytes:
    """A float YOLOv8-shaped ONNX graph both runtimes read: a strided conv backbone, heads at
    strides 8, 16 and 32, output (1, 4 + classes, cells). Random weights (timing only)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, weights, heads, previous, channels = [], [], [], "images", 3
    for index, width in enumerate((16, 32, 64, 128, 256)):  # strides 2, 4, 8, 16, 32
        name = f"conv{index}"
        weights.append(numpy_helper.from_array(rng.normal(0, 0.1, (width, channels, 3, 3)).astype(np.float32),
                                               f"{name}.w"))
        nodes += [helper.make_node("Conv", [previous, f"{name}.w"], [f"{name}.c"], pads=[1, 1, 1, 1],
                                   strides=[2, 2]), helper.make_node("Relu", [f"{name}.c"], [name])]
        previous, channels = name, width
        if index >= 2:
            weights.append(numpy_helper.from_array(
                rng.normal(0, 0.1, (4 + classes, width, 1, 1)).astype(np.float32), f"head{index}.w"))
            nodes += [helper.make_node("Conv", [name, f"head{index}.w"], [f"head{index}.c"]),
                      helper.make_node("Reshape", [f"head{index}.c", "flat"], [f"head{index}"])]
            heads.append(f"head{index}")
    weights.append(numpy_helper.from_array(np.array([1, 4 + classes, -1], np.int64), "flat"))
    nodes.append(helper.make_node("Concat", heads, ["output0"], axis=2))
    cells = sum((size // s) ** 2 for s in (8, 16, 32))
    graph = helper.make_graph(nodes, "bench", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                             [1, 3, size, size])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + classes, cells])],
                              weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def bench_onnx(repeats: int, int8_path: Path | None) -> None:
    """onnxruntime vs OpenCV DNN on the same float ONNX file; the real int8 YOLOv8n on
    onnxruntime when the shared fixture is there (OpenCV cannot read ConvInteger)."""
    from services.detection.onnx_model import OnnxDetector

    data = conv_yolo_graph()
    runtimes = {name: OnnxDetector(data, "bench.onnx", runtime=name) for name in ("onnxruntime", "OpenCV")}
    batch, _ = preprocess(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8), 320)
    rows = {name: detector.rows(batch) for name, detector in runtimes.items()}
    difference = float(np.abs(rows["onnxruntime"] - rows["OpenCV"]).max())
    times = {name: median_ms(lambda d=detector: d.rows(batch), repeats) for name, detector in runtimes.items()}
    print(f"ONNX float conv graph 320 (yolov8 layout): onnxruntime {times['onnxruntime']:6.1f} ms | OpenCV DNN "
          f"{times['OpenCV']:6.1f} ms | onnxruntime/OpenCV {times['onnxruntime'] / times['OpenCV']:4.2f} "
          f"| max |diff| {difference:.1e}")
    if int8_path is not None and int8_path.is_file():
        detector = OnnxDetector(int8_path.read_bytes(), int8_path.name)
        batch, _ = preprocess(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8), 640)
        print(f"YOLOv8n int8 (real, 640) on onnxruntime: {median_ms(lambda: detector.rows(batch), repeats):6.1f} ms")


@contextlib.contextmanager
def script_thread_times(records: list[tuple[float, float]]):
    """Inside: every script run appends (wall ms, CPU ms of its own thread) of the server's part
    of a rerun (``ScriptRunner._run_script``); the thread's CPU time does not count other
    processes on a busy machine."""
    from streamlit.runtime.scriptrunner import script_runner

    run_script = script_runner.ScriptRunner._run_script

    def timed(self, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return run_script(self, *args, **kwargs)
        finally:
            records.append(((time.perf_counter() - wall) * 1e3, (time.thread_time() - cpu) * 1e3))

    script_runner.ScriptRunner._run_script = timed
    try:
        yield
    finally:
        script_runner.ScriptRunner._run_script = run_script


def bench_threshold_rerun(repeats: int = 7) -> None:
    """Detector page, demo model on a 512 px sample: a score-threshold change with the network
    result cached, three ways side by side, alternating, on one session: the whole script as
    AppTest runs it (the page parsed and compiled again every run: the figure reported before), the
    whole script with the page compiled once (what a threshold change cost in the server before the
    fragment) and the results fragment alone (what it reruns in the server now). Per way: the
    median AppTest wall time and the script thread's wall and CPU time."""
    from streamlit.testing.v1 import AppTest

    from services import lifetime

    with tempfile.TemporaryDirectory() as root, contextlib.ExitStack() as stack:
        # no job runner and warm TensorFlow worker (the page needs none here; they would take CPU)
        os.environ.update(DASHBOARD_DATA_DIR=root, DASHBOARD_OFFLINE="1", DASHBOARD_PREWARM="0")
        stack.callback(lifetime.stop_app, Path(root))  # whatever the page started anyway
        page = Path(__file__).resolve().parent.parent / "pages" / "detector.py"
        app = AppTest.from_file(str(page), default_timeout=120).run()
        start = time.perf_counter()
        app.multiselect(key="det_samples").set_value(["astronaut"]).run()
        first_ms = (time.perf_counter() - start) * 1e3
        ways = {"AppTest as is (compiled every run)": contextlib.nullcontext,
                "whole script compiled once (server, before)": apptest_like_server,
                "results fragment only (server, now)": functools.partial(
                    apptest_like_server, fragment_id(app, "detections_view"))}
        times: dict[str, list[tuple[float, float, float]]] = {way: [] for way in ways}
        values = iter(np.arange(0.05, 0.9, 0.01))  # every rerun a new threshold
        for step in range(repeats + 3):  # the first three rounds warm up
            for way, context in ways.items():
                script: list[tuple[float, float]] = []
                with context(), script_thread_times(script):
                    start = time.perf_counter()
                    app.slider(key="det_score").set_value(round(float(next(values)), 2)).run()
                    wall = (time.perf_counter() - start) * 1e3
                if step >= 3:
                    times[way].append((wall, *script[-1]))
        assert not app.exception and app.session_state["det_network_runs"] == 1
    print(f"detector page, demo model on a 512 px sample: first run {first_ms:.0f} ms; a threshold change "
          f"(network not re-run), medians of {repeats}, load {os.getloadavg()[0]:.1f}:")
    for way, rows in times.items():
        wall, script_wall, script_cpu = (statistics.median(column) for column in zip(*rows))
        print(f"  {way:45s} AppTest {wall:5.0f} ms | script thread {script_wall:5.0f} ms wall, "
              f"{script_cpu:5.0f} ms CPU")


def bench_yolo_fastest(repeats: int, fixtures: Path) -> None:
    """Yolo-Fastest 1.1 (depthwise convolutions, 320 x 320) on TensorFlow and OpenCV, side by
    side on dog.jpg; the published weights when the shared fixtures are there, otherwise random
    weights in the exact layout (same FLOPs; labelled)."""
    import cv2

    from services.detection.registry import CFG_DIR

    cfg_path = CFG_DIR / "yolo-fastest-1.1.cfg"
    weights, image_path = fixtures / "yolo-fastest-1.1.weights", fixtures / "dog.jpg"
    label = "real weights, dog.jpg"
    with tempfile.TemporaryDirectory() as folder:
        if not weights.is_file():
            weights, label = Path(folder) / "random.weights", "RANDOM weights, random image"
            weights.write_bytes(random_weights_bytes(parse_cfg(cfg_path.read_text(), cfg_path.name)))
        model = load_darknet(cfg_path, weights, coco_names(), key="yolo-fastest-1.1")
        image = (cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB) if image_path.is_file()
                 else np.random.default_rng(0).integers(0, 256, (576, 768, 3), dtype=np.uint8))
        batch, _ = preprocess(image, model.config.width)
        tf_backend, cv_backend = KerasBackend(model), OpenCVDarknetBackend(model)
        difference = max(float(np.abs(a - b).max()) for a, b in zip(tf_backend.raw(batch), cv_backend.raw(batch)))
        times = interleaved_ms({"tf": lambda: tf_backend.raw(batch), "cv": lambda: cv_backend.raw(batch)}, repeats)
    tf_ms, cv_ms = times["tf"], times["cv"]
    device = "GPU" if runtime.has_gpu() else "CPU"
    print(f"yolo-fastest-1.1 {model.config.width} ({label}): TensorFlow ({device}) {tf_ms:6.1f} ms | "
          f"OpenCV (CPU) {cv_ms:6.1f} ms | TF/OpenCV {tf_ms / cv_ms:4.2f} | max |diff| {difference:.1e} "
          f"| load {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--models", nargs="*", default=["yolov3-tiny", "yolov3"])
    parser.add_argument("--skip-nms", action="store_true")
    parser.add_argument("--skip-onnx", action="store_true")
    parser.add_argument("--skip-fastest", action="store_true")
    parser.add_argument("--rerun-only", action="store_true", help="only the detector page's threshold rerun")
    args = parser.parse_args()
    if args.rerun_only:
        bench_threshold_rerun(args.repeats)
        return
    import cv2

    tf = runtime.tensorflow()
    print(f"TensorFlow {tf.__version__}, OpenCV {cv2.__version__}, devices: "
          f"{', '.join(d.name for d in runtime.quick_summary())}")
    with tempfile.TemporaryDirectory() as folder:
        for key in args.models:
            bench_backends(key, args.size, args.repeats, Path(folder))
    if not args.skip_fastest:
        bench_yolo_fastest(args.repeats, Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "darknet")
    if not args.skip_onnx:
        bench_onnx(args.repeats, Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "onnx"
                   / "yolov8n_int8.onnx")
        bench_threshold_rerun()
    if not args.skip_nms:
        bench_nms()


if __name__ == "__main__":
    main()
