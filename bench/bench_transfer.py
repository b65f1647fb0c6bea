"""Transfer-learning speed, measured side by side in one run (figures go into docs/transfer_learning.md).

1. Per-epoch time of strategy B (frozen backbone + head, the whole backbone runs every step) over
   strategy C (the head alone on cached features, with the book's Flatten head and with the
   global-average-pooling head), same backbone, data and batch size; the median of the epochs
   after the first (which includes tracing). Goal >= 20x (book: ~45x).
2. Feature-extraction throughput (``services.transfer.features.extract``: the cache's batched
   loop with progress and stop checks) over the backbone's plain batched ``predict`` on the
   same tf.data pipeline, both warm. Goal >= 0.9x.
3. Images/s of each registry backbone (batched ``predict``, warm) at the chosen input size.

Weights are random (ImageNet files cannot be downloaded here): timings do not depend on them.
Data: the synthetic demo set (360 tiles, 216 in the train split) in a temporary data root.
Usage: ``python bench/bench_transfer.py [--size 150] [--b-over-c vgg16,mobilenet_v2] [--epochs 3]
[--extraction-backbone mobilenet_v1_0.25,mobilenet_v2] [--throughput-backbones all|none|name,name]``. VGG16 at 150 px
is the book's setting for B and C (vgg16_v4; ch. 4's feature dataset).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def epoch_seconds(model, x, y, *, epochs: int, batch_size: int) -> list[float]:
    import keras

    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[Timer()])
    return times


def steady(times: list[float]) -> float:
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


def bench_b_over_c(backbone: str, frame, size: int, epochs: int, batch_size: int) -> None:
    import numpy as np

    from services.models import weights as registry
    from services.transfer import features, models
    from services.transfer.strategy_c import head_inputs

    rows = frame[frame.split == "train"].reset_index(drop=True)
    base = registry.load_backbone(backbone, input_shape=(size, size, 3), weights="random")
    preprocess = registry.preprocess_function(backbone)
    start = time.perf_counter()
    cached = features.extract(base, preprocess, rows, image_size=(size, size), batch_size=batch_size)
    extraction = time.perf_counter() - start
    labels = rows.label_index.to_numpy(np.int32)
    c_times = {}
    for pooling in models.POOLINGS:
        head = models.feature_head(cached.shape[1:], 8, pooling=pooling)
        models.compile_model(head, models.HEAD_C_LEARNING_RATE)
        inputs = head_inputs(cached, pooling)  # as strategy C fits it: the GAP head on maps pooled once
        c_times[pooling] = epoch_seconds(head, inputs, labels, epochs=epochs, batch_size=batch_size)
        if inputs is not cached:  # side by side: the same head fitted on the whole maps (the earlier way)
            head = models.feature_head(cached.shape[1:], 8, pooling=pooling)
            models.compile_model(head, models.HEAD_C_LEARNING_RATE)
            c_times[f"{pooling} on whole maps"] = epoch_seconds(head, cached, labels, epochs=epochs,
                                                                batch_size=batch_size)

    from services.datasets.pipeline import make_tf_dataset

    images = np.concatenate([x.numpy() for x, _ in make_tf_dataset(rows, image_size=(size, size),
                                                                    batch_size=64, scale="unit")])
    frozen = models.frozen_backbone_model(registry.load_backbone(backbone, input_shape=(size, size, 3),
                                                                 weights="random"), backbone, 8)
    models.compile_model(frozen, 1e-3)
    b_times = epoch_seconds(frozen, images, labels, epochs=epochs, batch_size=batch_size)
    b = steady(b_times)
    print(f"\n1. Per-epoch time, {backbone} at {size} px, {len(rows)} training tiles, batch {batch_size}, "
          f"features {tuple(cached.shape[1:])}")
    print(f"   strategy B (frozen backbone + head): {b:8.3f} s/epoch   (epochs: {', '.join(f'{t:.2f}' for t in b_times)})")
    for pooling, times in c_times.items():
        c = steady(times)
        label = models.POOLINGS.get(pooling) or models.POOLINGS[pooling.split()[0]] + " (whole maps)"
        print(f"   strategy C, {label:25} head: {c:7.3f} s/epoch   B / C = {b / c:6.1f}x   "
              f"(epochs: {', '.join(f'{t:.2f}' for t in times)})")
    print(f"   (goal >= 20x; book ~45x)   one-off feature extraction: {extraction:.2f} s")


def bench_extraction(backbone: str, frame, size: int, batch_size: int, repeats: int = 3) -> None:
    from services.datasets.pipeline import make_tf_dataset
    from services.models import weights as registry
    from services.transfer import features

    rows = frame.reset_index(drop=True)
    base = registry.load_backbone(backbone, input_shape=(size, size, 3), weights="random")
    preprocess = registry.preprocess_function(backbone)

    def ours() -> None:
        features.extract(base, preprocess, rows, image_size=(size, size), batch_size=batch_size)

    def plain() -> None:
        dataset = make_tf_dataset(rows, image_size=(size, size), batch_size=batch_size, scale="raw", cache=False)
        base.predict(dataset.map(lambda x, y: preprocess(x)), verbose=0)

    timings = {"extract": [], "predict": []}
    for _ in range(repeats + 1):  # the first round traces both; alternate so load hits both alike
        for name, function in (("extract", ours), ("predict", plain)):
            start = time.perf_counter()
            function()
            timings[name].append(time.perf_counter() - start)
    ours_rate = len(rows) / min(timings["extract"][1:])
    plain_rate = len(rows) / min(timings["predict"][1:])
    print(f"\n2. Feature extraction, {backbone} at {size} px, {len(rows)} tiles, batch {batch_size} (best of {repeats})")
    print(f"   cache extraction loop: {ours_rate:7.1f} images/s")
    print(f"   plain model.predict:   {plain_rate:7.1f} images/s")
    print(f"   ratio = {ours_rate / plain_rate:.2f}x   (goal >= 0.9x)")


def bench_backbones(names: list[str], size: int, batch: int = 32, images: int = 64) -> None:
    import numpy as np

    from services.models import weights as registry

    print(f"\n3. Images/s per backbone (predict, batch {batch}, {images} images, warm)")
    data = np.random.default_rng(0).uniform(0, 255, (images, size, size, 3)).astype("float32")
    for name in names:
        side = max(size, registry.spec(name).min_side)
        pixels = data if side == size else np.random.default_rng(0).uniform(0, 255, (images, side, side, 3)).astype("float32")
        model = registry.load_backbone(name, input_shape=(side, side, 3), weights="random")
        prepared = registry.preprocess_function(name)(pixels.copy())
        model.predict(prepared[:batch], batch_size=batch, verbose=0)
        start = time.perf_counter()
        model.predict(prepared, batch_size=batch, verbose=0)
        rate = images / (time.perf_counter() - start)
        print(f"   {name:16} {side:4d} px  {rate:8.1f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--b-over-c", default="vgg16,mobilenet_v2")
    parser.add_argument("--extraction-backbone", default="mobilenet_v1_0.25,mobilenet_v2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--throughput-backbones", default="all")
    args = parser.parse_args()
    os.environ["DASHBOARD_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-transfer-")
    from services import runtime
    from services.datasets import index, sources, splits
    from services.models import weights as registry

    runtime.tensorflow()
    print(f"Device: {', '.join(d.name for d in runtime.quick_summary())}; TensorFlow {runtime.tensorflow_version()}")
    frame = splits.make_split(index.load_index(sources.dataset_folder("demo")), method="grouped")
    for backbone in filter(None, args.b_over_c.split(",")):
        bench_b_over_c(backbone, frame, args.size, args.epochs, args.batch_size)
    for backbone in filter(None, args.extraction_backbone.split(",")):
        bench_extraction(backbone, frame, args.size, args.batch_size)
    names = {"all": list(registry.BACKBONES), "none": []}.get(args.throughput_backbones,
                                                             args.throughput_backbones.split(","))
    if names:
        bench_backbones(names, args.size)


if __name__ == "__main__":
    main()
