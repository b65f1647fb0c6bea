"""Training speed, measured side by side in one run (prints ratios; no assertions).

1. Input pipeline: ``fit`` throughput with ``services.datasets.pipeline.make_tf_dataset`` on the
   demo set's 150x150 tiles vs the same model on an in-memory tensor, augmentation off and on
   (in memory, the book's augmentation layers run inside the model instead).
2. The book's approach: whole arrays in memory + per-image numpy/scipy augmentation in a Python
   generator (what ImageDataGenerator did) vs the tf.data pipeline with augmentation layers.
3. DashboardCallback overhead: step time with and without the callback (default throttle),
   logging to the local run store and streaming to the ingest endpoint over 127.0.0.1.
4. Metric latency: from a batch end to the row being readable by the monitor's process.
5. Multi-worker: the same run (cnn_v1, demo set, 2 epochs) as two MultiWorkerMirroredStrategy
   processes on this machine against one process (CPU: the two workers share the cores).

Usage: ``.venv/bin/python bench/bench_training.py [--model cnn_v1] [--epochs 3]
[--parts pipeline,callback,latency,multiworker]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def _model(name, size, augment_layer=None):
    import keras

    from services.models.catalog import build_model

    keras.utils.set_random_seed(0)
    core = build_model(name, input_shape=(size, size, 3))
    if augment_layer is not None:  # in memory: augmentation inside the model (training only)
        inputs = keras.Input((size, size, 3))
        core = keras.Model(inputs, core(augment_layer(inputs * 255.0) / 255.0))
    core.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return core


def _throughput(model, data, images, epochs, **fit_args) -> float:
    """Images per second over ``epochs`` epochs after one warm-up epoch (fills caches, traces)."""
    model.fit(data, epochs=1, verbose=0, **fit_args)
    start = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0, **fit_args)
    return images * epochs / (time.perf_counter() - start)


def book_style_batches(x, y, batch_size, seed=0):
    """ImageDataGenerator-like: per image, a random affine (rotation 40, shift/shear/zoom 0.2),
    flips, nearest fill, in numpy/scipy on the Python side; endless batches."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    size = x.shape[1]
    centre = np.array([size / 2, size / 2])
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(x) - batch_size + 1, batch_size):
            batch = np.empty((batch_size, *x.shape[1:]), np.float32)
            for slot, index in enumerate(order[start:start + batch_size]):
                angle = np.deg2rad(rng.uniform(-40, 40))
                shear = rng.uniform(-0.2, 0.2)
                zoom = rng.uniform(0.8, 1.2, size=2)
                rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
                matrix = rotation @ np.array([[1, shear], [0, 1]]) @ np.diag(zoom)
                shift = rng.uniform(-0.2, 0.2, size=2) * size
                offset = centre - matrix @ centre + shift
                image = x[index]
                if rng.random() < 0.5:
                    image = image[:, ::-1]
                if rng.random() < 0.5:
                    image = image[::-1]
                batch[slot] = np.stack([ndimage.affine_transform(image[..., c], matrix, offset, order=1,
                                                                 mode="nearest") for c in range(3)], axis=-1)
            yield batch, y[order[start:start + batch_size]]


def _keras_layer_stack(seed):
    """The book's augmentation as five of Keras's own layers (one resampling each): the
    alternative that services.datasets.augmentation.book_augmentation's fused layer replaces."""
    import keras

    return keras.Sequential([
        keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
        keras.layers.RandomRotation(40 / 360, fill_mode="nearest", seed=seed),
        keras.layers.RandomTranslation(0.2, 0.2, fill_mode="nearest", seed=seed),
        keras.layers.RandomShear(x_factor=0.2, y_factor=0.2, fill_mode="nearest", seed=seed),
        keras.layers.RandomZoom(0.2, 0.2, fill_mode="nearest", seed=seed),
    ])


def pipeline_benchmarks(args, frame, class_count):
    import keras

    from services.datasets.augmentation import book_augmentation
    from services.datasets.pipeline import load_pixels, make_tf_dataset

    size, batch = args.size, args.batch_size
    x = np.stack([load_pixels(p, size, size) for p in frame.path]) / 255.0
    y = frame.label_index.to_numpy()
    images = len(y) - len(y) % batch
    x, y = x[:images].astype("float32"), y[:images]
    results = {}
    variants = (("off", False, None), ("on (one fused layer)", True, book_augmentation(seed=0)),
                ("on (stack of Keras built-in layers)", _keras_layer_stack(seed=0), _keras_layer_stack(seed=0)))
    for label, augment, in_model in variants:
        data = make_tf_dataset(frame.iloc[:images], image_size=(size, size), batch_size=batch, shuffle=True,
                               augment=augment, num_classes=class_count)
        piped = _throughput(_model(args.model, size), data, images, args.epochs)
        memory = _throughput(_model(args.model, size, in_model), x, images, args.epochs, y=y, batch_size=batch)
        results[label] = piped
        print(f"pipeline vs in-memory tensor, augmentation {label}: {piped:6.0f} vs {memory:6.0f} images/s "
              f"-> ratio {piped / memory:.2f}")
    steps = images // batch
    book = _throughput(_model(args.model, size), book_style_batches(x, y, batch), images, args.epochs,
                       steps_per_epoch=steps)
    fused, stack = results["on (one fused layer)"], results["on (stack of Keras built-in layers)"]
    print(f"book-style numpy generator augmentation: {book:6.0f} images/s; tf.data + fused augmentation "
          f"{fused:.0f} images/s -> speed-up {fused / book:.1f}x "
          f"(stack of Keras built-in layers: {stack / book:.1f}x)")
    del keras


def _timed_callback(**kwargs):
    """A DashboardCallback that adds up the time spent inside its own hooks."""
    from services.training.callback import DashboardCallback

    class Timed(DashboardCallback):
        def __init__(self, **options):
            super().__init__(**options)
            self.hook_seconds = dict.fromkeys(("on_train_begin", "on_epoch_begin", "on_train_batch_end",
                                               "on_epoch_end", "on_train_end"), 0.0)

        @property
        def spent(self):
            return sum(self.hook_seconds.values())

    for hook in ("on_train_begin", "on_epoch_begin", "on_train_batch_end", "on_epoch_end", "on_train_end"):
        def timed(self, *args, _original=getattr(DashboardCallback, hook), _hook=hook, **kw):
            start = time.perf_counter()
            try:
                return _original(self, *args, **kw)
            finally:
                self.hook_seconds[_hook] += time.perf_counter() - start

        setattr(Timed, hook, timed)
    return Timed(**kwargs)


def callback_overhead(args, frame):
    """Fit time with and without the callback, for local logging and for remote logging to an
    ingest endpoint on 127.0.0.1 (same process, its own thread: the worst case for the fit)."""
    import threading

    from services.datasets.pipeline import load_pixels
    from services.training import ingest

    size, batch = args.size, args.batch_size
    x = (np.stack([load_pixels(p, size, size) for p in frame.path]) / 255.0).astype("float32")
    y = frame.label_index.to_numpy()
    model = _model(args.model, size)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    server = ingest.make_server("127.0.0.1", 0, token="bench-token")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spool = tempfile.mkdtemp(prefix="bench-spool-")
    destinations = {"local store": {},
                    "remote (HTTP ingest)": {"url": f"http://127.0.0.1:{server.server_port}", "token": "bench-token",
                                             "spool_dir": spool}}
    steps = args.epochs * int(np.ceil(len(y) / batch))
    for label, options in destinations.items():
        plain, logged, inside, per_batch, fixed = [], [], [], [], []
        for repeat in range(2 * args.repeats):  # interleaved in ABBA order against drifting machine load
            for logging in ((False, True) if repeat % 2 == 0 else (True, False)):
                callback = _timed_callback(run_name="bench overhead", batch_size=batch, **options) if logging else None
                start = time.perf_counter()
                model.fit(x, y, batch_size=batch, epochs=args.epochs, verbose=0,
                          callbacks=[callback] if logging else [])
                elapsed = time.perf_counter() - start
                if not logging:
                    plain.append(elapsed)
                    continue
                logged.append(elapsed)
                inside.append(callback.spent / elapsed)
                per_batch.append(callback.hook_seconds["on_train_batch_end"] / elapsed)
                fixed.append(callback.hook_seconds["on_train_begin"] + callback.hook_seconds["on_train_end"])
        print(f"DashboardCallback overhead, {label}: time inside its hooks {statistics.median(inside) * 100:.1f} % "
              f"of fit time (median of {len(inside)}); fit with vs without (medians, ABBA order): "
              f"{(statistics.median(logged) / statistics.median(plain) - 1) * 100:+.1f} % "
              f"(step {statistics.median(plain) / steps * 1000:.1f} ms, {steps} steps per fit, includes creating "
              f"the run and, remote, delivering the last events)")
        print(f"  of which per-batch hook (stop check + throttled batch loss): {statistics.median(per_batch) * 100:.2f} "
              f"% of fit time; once per fit (create run, status, final delivery): "
              f"{statistics.median(fixed) * 1000:.0f} ms")
    server.shutdown()
    server.server_close()


def multi_worker_time(args) -> None:
    """Wall time of the same 2-epoch run as 2 MultiWorkerMirroredStrategy processes and as one."""
    import json
    import subprocess

    from services.training.distribution import local_cluster

    repo = Path(__file__).resolve().parent.parent
    run = [sys.executable, "-m", "services.training", "--model", "cnn_v1", "--dataset", "demo", "--epochs", "2",
           "--image-size", "48", "--batch-size", "32"]
    env = {**os.environ, "PYTHONPATH": str(repo), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    start = time.perf_counter()
    subprocess.run([*run, "--distribution", "none"], cwd=repo, env=env, check=True, capture_output=True)
    single = time.perf_counter() - start
    start = time.perf_counter()
    workers = [subprocess.Popen([*run, "--distribution", "multi_worker"], cwd=repo, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**env, "TF_CONFIG": json.dumps(config)})
               for config in local_cluster(2)]
    codes = [worker.wait() for worker in workers]
    multi = time.perf_counter() - start
    print(f"multi-worker (2 processes on this machine, exit codes {codes}): {multi:.1f} s vs one process "
          f"{single:.1f} s -> {multi / single:.2f}x the time (process start and TensorFlow import included; "
          f"on one machine's CPU the workers share the cores, so this measures the coordination cost)")


def metric_latency():
    """A writer logs a batch loss every 0.5 s (the callback's throttle); a reader polls the store
    like the monitor's fragment; latency = read time - row time."""
    from services.training.store import RunStore

    store = RunStore()
    run_id = store.create_run("latency probe", status="running")
    seen, latencies, stop = set(), [], threading.Event()

    def reader():
        reader_store = RunStore(store.path)
        while not stop.is_set():
            frame = reader_store.metrics(run_id, names=["batch_loss"])
            now = time.time()
            for step, written in zip(frame.step, frame.time):
                if step not in seen:
                    seen.add(step)
                    latencies.append(now - written)
            time.sleep(0.02)

    thread = threading.Thread(target=reader)
    thread.start()
    write_ms = []
    for step in range(20):
        start = time.perf_counter()
        store.log_metrics(run_id, {"batch_loss": 1.0}, epoch=0, step=step)
        write_ms.append((time.perf_counter() - start) * 1000)
        time.sleep(0.1)
    time.sleep(0.3)
    stop.set()
    thread.join()
    from services.training.callback import BATCH_LOG_INTERVAL_S
    from services.training.overview import REFRESH_SECONDS

    worst = BATCH_LOG_INTERVAL_S + max(latencies) + REFRESH_SECONDS
    print(f"metric latency: write {statistics.median(write_ms):.1f} ms (median), row readable by another "
          f"connection after {statistics.median(latencies) * 1000:.0f} ms median / {max(latencies) * 1000:.0f} ms "
          f"max (reader polls every 20 ms); worst case on screen = throttle {BATCH_LOG_INTERVAL_S} s + "
          f"{max(latencies):.2f} s + refresh {REFRESH_SECONDS} s = {worst:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn_v1")
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="pipeline,callback,latency,multiworker")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    os.environ["DASHBOARD_DATA_DIR"] = os.environ.get("DASHBOARD_DATA_DIR") or tempfile.mkdtemp(prefix="bench-")
    from services import runtime
    from services.datasets.demo import ensure_demo_dataset
    from services.datasets.index import class_names, load_index, usable

    runtime.tensorflow()
    frame = usable(load_index(ensure_demo_dataset()))
    print(f"machine: {runtime.quick_summary()[0].name}; TensorFlow {runtime.tensorflow_version()}; "
          f"model {args.model} at {args.size}px, batch {args.batch_size}, {len(frame)} demo tiles")
    if "pipeline" in parts:
        pipeline_benchmarks(args, frame, len(class_names(frame)))
    if "callback" in parts:
        callback_overhead(args, frame)
    if "latency" in parts:
        metric_latency()
    if "multiworker" in parts:
        multi_worker_time(args)


if __name__ == "__main__":
    main()
