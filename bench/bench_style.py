"""Style-transfer speed, measured side by side in one run (figures go into docs/style_transfer.md).

1. Step time at 256 and 512 px: the dashboard's step (tf.function, with and without XLA) vs a
   plain eager GradientTape loop of the same loss (the tutorial's code before @tf.function).
2. Coarse-to-fine vs single scale: wall time until the full-resolution total loss reaches the
   loss the single-scale run ends with.
3. Seconds to the first preview at 256 px in a fresh process, including the VGG19 load from the
   model cache (a generated weights file installed through the registry: same file size and
   load path as the real ImageNet file).

Weights are random (ImageNet files cannot be downloaded here): timings do not depend on them.
Usage: ``python bench/bench_style.py [--steps 10] [--quick]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from services import runtime  # noqa: E402
from services.style import builtin_images, transfer  # noqa: E402


def pictures():
    return builtin_images.CONTENT_IMAGES["Chelsea the cat"].load(), builtin_images.stained_glass((512, 512))


CONFIGURATIONS = {"eager": (False, False), "tf.function": (True, False), "tf.function+XLA": (True, True)}


def step_times(extractor, sides, steps: int, rounds: int) -> None:
    """Per side, the three step variants are warmed up, then timed in interleaved rounds; the
    fastest round's mean counts (robust against other processes sharing the CPU)."""
    content, style = pictures()
    print(f"\n## Step time (best of {rounds} interleaved rounds of {steps} steps, after warm-up)")
    print(f"{'side':>5} " + " ".join(f"{name + ' s':>18}" for name in CONFIGURATIONS)
          + f" {'eager/tf.function':>18} {'eager/XLA':>10}")
    for side in sides:
        stages = {}
        for name, (compiled, xla) in CONFIGURATIONS.items():
            settings = transfer.StyleSettings(max_side=side, jit_compile=xla, weights="random")
            scaled = transfer.fit_longest_side(content, side)
            objective = transfer.StyleObjective(extractor, scaled, transfer.fit_longest_side(style, side), settings.loss)
            stages[name] = transfer.Stage(objective, scaled, settings, compiled=compiled)
            stages[name].step()[0].numpy()  # trace / compile
        best = {name: float("inf") for name in stages}
        for _ in range(rounds):
            for name, stage in stages.items():
                start = time.perf_counter()
                for _ in range(steps):
                    stage.step()[0].numpy()
                best[name] = min(best[name], (time.perf_counter() - start) / steps)
        eager = best["eager"]
        print(f"{side:>5} " + " ".join(f"{value:>18.3f}" for value in best.values())
              + f" {eager / best['tf.function']:>17.2f}x {eager / best['tf.function+XLA']:>9.2f}x")


def coarse_to_fine(extractor, side: int, steps: int) -> None:
    """Single scale for ``steps``; then coarse-to-fine until its full-res loss reaches the same value."""
    content, style = pictures()
    base = transfer.StyleSettings(max_side=side, steps=steps, jit_compile=False, weights="random")
    transfer.stylise(content, style, dataclasses.replace(base, steps=2), extractor=extractor)  # warm-up
    start = time.perf_counter()
    _, history = transfer.stylise(content, style, base, extractor=extractor)
    single_seconds, target = time.perf_counter() - start, history[-1]["total"]

    reached: list[float] = []
    start = time.perf_counter()

    def on_step(step, image, losses):
        if losses["side"] == side and losses["total"] <= target and not reached:
            reached.append(time.perf_counter() - start)

    settings = dataclasses.replace(base, coarse_to_fine=True, steps=2 * steps, coarse_fraction=0.25)
    transfer.stylise(content, style, settings, extractor=extractor, on_step=on_step,
                     should_stop=lambda: bool(reached))
    print(f"\n## Coarse-to-fine at {side} px (total loss target {target:.4g} = single scale after {steps} steps)")
    print(f"single scale: {single_seconds:.1f} s")
    if reached:
        print(f"coarse-to-fine ({round(steps * 0.5)} steps at {side // 2} px first): {reached[0]:.1f} s "
              f"-> {single_seconds / reached[0]:.2f}x faster")
    else:
        print(f"coarse-to-fine did not reach the target within {2 * steps} steps")


FIRST_PREVIEW = textwrap.dedent("""
    import sys, time
    started = time.perf_counter()
    sys.path.insert(0, {repo!r})
    from services.jobs import JobManager
    from services.style import builtin_images, transfer
    manager = JobManager({jobs!r}, max_workers=1)
    settings = transfer.StyleSettings(max_side=256, steps=20, preview_every=20)
    inputs = transfer.StyleJobInputs(builtin_images.CONTENT_IMAGES["Chelsea the cat"].load(),
                                     builtin_images.stained_glass(), settings)
    submitted = time.perf_counter()
    job = transfer.start_style_job(manager, inputs, title="bench")
    state = manager.wait(job, timeout=600)
    assert state.status == "finished", state.error
    print(submitted - started, state.result["seconds_to_first_preview"], state.result["seconds"])
    manager.shutdown()
""")

BREAKDOWN = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    marks = [time.perf_counter()]
    from services import runtime
    runtime.tensorflow(); marks.append(time.perf_counter())
    from services.style import builtin_images, transfer
    extractor = transfer.feature_extractor(); marks.append(time.perf_counter())
    content = transfer.fit_longest_side(builtin_images.CONTENT_IMAGES["Chelsea the cat"].load(), 256)
    settings = transfer.StyleSettings(max_side=256)
    objective = transfer.StyleObjective(extractor, content, builtin_images.stained_glass((256, 256)), settings.loss)
    marks.append(time.perf_counter())
    stage = transfer.Stage(objective, content, settings)
    stage.step()[0].numpy(); marks.append(time.perf_counter())
    stage.step()[0].numpy(); marks.append(time.perf_counter())
    print(*[later - earlier for earlier, later in zip(marks, marks[1:])])
""")


def first_preview(repeats: int = 3) -> None:
    """A fresh process per measurement, with a generated VGG19 file installed in a new model cache."""
    from services.models import weights as registry

    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "DASHBOARD_DATA_DIR": folder, "KERAS_HOME": str(Path(folder) / "keras")}
        os.environ.update(env)
        model = registry.BACKBONES["vgg19"].build((64, 64, 3))
        generated = registry.write_weights_file(model, Path(folder) / "upload" / "vgg19.h5")
        registry.install_weights_file("vgg19", generated.read_bytes(), original_name="generated (bench)")

        def fresh(script: str) -> list[float]:
            code = script.format(repo=str(REPO), jobs=str(Path(folder) / "jobs"))
            output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            return [float(value) for value in output.stdout.split()]

        print(f"\n## First preview at 256 px ({repeats} fresh processes; the job shows a preview after step 1)")
        for _ in range(repeats):
            before, preview, twenty = fresh(FIRST_PREVIEW)
            parts = fresh(BREAKDOWN)
            print(f"Start pressed -> first preview {preview:.1f} s (Python imports before that {before:.1f} s); "
                  f"-> 20 steps done {twenty:.1f} s")
            print("  breakdown: " + ", ".join(f"{name} {value:.1f} s" for name, value in zip(
                ("TensorFlow import", "VGG19 build + load from cache", "style/content targets",
                 "first step (tracing)", "second step"), parts)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round and configuration")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved timing rounds")
    parser.add_argument("--coarse-steps", type=int, default=60, help="single-scale steps of the coarse-to-fine test")
    parser.add_argument("--quick", action="store_true", help="256 px only")
    args = parser.parse_args()
    devices = runtime.devices()
    print("devices:", ", ".join(f"{d.kind} {d.name}" for d in devices), "· TensorFlow", runtime.tensorflow().__version__)
    extractor = transfer.feature_extractor("random")
    step_times(extractor, (256,) if args.quick else (256, 512), args.steps, args.rounds)
    coarse_to_fine(extractor, 256, args.coarse_steps)
    first_preview()


if __name__ == "__main__":
    main()
