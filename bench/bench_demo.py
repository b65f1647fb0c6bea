"""The real-tissue demo's compute, step by step, at the real scale where it can be run here.

No network: the downloads are not timed (258 MB + about 9 MB + one 75 MB image; at 50 Mbit/s
about 55 s, at 10 Mbit/s about 4.6 min). Measured on generated Kather-like tiles with a
random-initialised MobileNetV2 (timings do not depend on the weight values):

1. feature extraction at 150 px (``services.transfer.features.extract``) over ``--tiles`` tiles,
   tiles/s, extrapolated to Kather 2016's 5000;
2. the global-average-pooling head, 15 epochs (the demo's setting) on 3000 feature maps of MobileNetV2 at 150 px
   (5 x 5 x 1280), as strategy C fits it;
3. temperature scaling on 1000 validation rows;
4. peak resident memory of this process.

The tissue map of one 5000 x 5000 image (1,089 tiles) is measured by bench/bench_tissuemap.py.
Usage: ``python bench/bench_demo.py [--tiles 400]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiles", type=int, default=400)
    args = parser.parse_args()
    import os

    with tempfile.TemporaryDirectory() as root:
        os.environ["DASHBOARD_DATA_DIR"] = root
        import numpy as np

        from services.datasets import index
        from services.datasets.demo import write_demo_tiles
        from services.demo.chain import EPOCHS
        from services.metrics.calibration import fit_temperature
        from services.models import weights as registry
        from services.transfer import features, models
        from services.transfer.spec import ExperimentSpec

        folder = Path(root) / "tiles"
        write_demo_tiles(folder, tiles_per_class=max(1, args.tiles // 8), sources_per_class=5)
        frame = index.load_index(folder)
        frame = frame[frame["problem"].isna()].reset_index(drop=True)
        base = registry.load_backbone("mobilenet_v2", input_shape=(150, 150, 3), weights="random")
        preprocess = registry.preprocess_function("mobilenet_v2")
        features.extract(base, preprocess, frame.head(32), image_size=(150, 150))  # warm up (tracing)
        start = time.perf_counter()
        maps = features.extract(base, preprocess, frame, image_size=(150, 150))
        seconds = time.perf_counter() - start
        rate = len(frame) / seconds
        print(f"feature extraction, MobileNetV2 at 150 px: {len(frame)} tiles in {seconds:.1f} s = {rate:.1f} tiles/s "
              f"-> 5000 tiles about {5000 / rate:.0f} s; feature map {maps.shape[1:]}")
        spec = ExperimentSpec(dataset="x", split="x", strategies=["C"], head_pooling="avg", epochs=EPOCHS)
        rng = np.random.default_rng(0)
        train = rng.random((3000, *maps.shape[1:]), dtype=np.float32)
        labels = rng.integers(0, 8, 3000)
        head = models.feature_head(train.shape[1:], 8, pooling="avg")
        models.compile_model(head, spec.head_learning_rate)
        start = time.perf_counter()
        head.fit(train, labels, epochs=spec.epochs, batch_size=spec.batch_size, verbose=0)
        print(f"GAP head, {EPOCHS} epochs on 3000 feature maps: {time.perf_counter() - start:.1f} s")
        logits = rng.normal(size=(1000, 8)) * 3
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        start = time.perf_counter()
        temperature = fit_temperature(probabilities, rng.integers(0, 8, 1000))
        print(f"temperature scaling, 1000 rows: {time.perf_counter() - start:.3f} s (T = {temperature:.2f})")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:,.0f} MiB; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
