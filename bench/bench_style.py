"""Style-transfer speed, measured side by side in one run (figures go into docs/style_transfer.md).

1. Step time at 256 and 512 px: the dashboard's step (tf.function, with and without XLA) vs a
   plain eager GradientTape loop of the same loss (the tutorial's code before @tf.function).
2. Coarse-to-fine vs single scale: wall time until the full-resolution total loss reaches the
   loss the single-scale run ends with.
3. Seconds to the first preview of a 256 px style job (the job body run in-process, the same
   function a worker runs): cold (a fresh process: TensorFlow import + VGG19 load from the model
   cache + first step) and warm (TensorFlow already imported, as in the warm worker), and through
   the JobManager (submit -> worker process -> first preview in the job store).
   VGG19 is a generated weights file installed through the registry: same file size and load
   path as the real ImageNet file.
4. Fast arbitrary style transfer (Magenta TF Lite, from ../shared/fixtures when present) vs one
   Gatys step at the same size (384 px), and the fast job end to end.

Gatys weights are random (ImageNet files cannot be downloaded here): timings do not depend on them.
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
from services.style.settings import StyleSettings  # noqa: E402


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
            settings = StyleSettings(max_side=side, jit_compile=xla, weights="random")
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
    base = StyleSettings(max_side=side, steps=steps, jit_compile=False, weights="random")
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


SHARED_MAGENTA = REPO.parent / "shared" / "fixtures" / "style" / "magenta"

FIRST_PREVIEW = textwrap.dedent("""
    import sys, tempfile, time
    marks = [time.perf_counter()]
    sys.path.insert(0, {repo!r})
    from services import runtime
    if {warm!r}:
        runtime.tensorflow(); marks.append(time.perf_counter())
    from services.jobs import run_inline
    from services.style import builtin_images, job_files
    from services.style.settings import StyleSettings
    files = job_files.input_files(builtin_images.CONTENT_IMAGES["Chelsea the cat"].load(), builtin_images.stained_glass())
    params = {{"settings": StyleSettings(max_side=256, steps=2, preview_every=20).to_dict()}}
    begun = time.perf_counter()
    outcome = run_inline("style-transfer", params, tempfile.mkdtemp(), files)
    assert outcome.status == "finished", outcome.error
    print(begun - marks[0], outcome.result["seconds_to_first_preview"])
""")

THROUGH_MANAGER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from services.jobs import JobManager
    from services.style import builtin_images, submit
    from services.style.settings import StyleSettings
    manager = JobManager()
    for attempt in range({repeats}):
        pressed = time.perf_counter()
        job = submit.submit_gatys(manager, builtin_images.CONTENT_IMAGES["Chelsea the cat"].load(),
                                  builtin_images.stained_glass(), StyleSettings(max_side=256, steps=40),
                                  title="bench")
        first = None
        while first is None:
            state = manager.get(job)
            if state.result.get("preview_step"):
                first = time.perf_counter() - pressed
            assert state.status not in ("failed", "stopped"), state.error
            time.sleep(0.02)
        manager.stop(job)
        manager.wait(job, timeout=120)
        print(first)
    manager.shutdown_runner()
""")


def _fresh(script: str, env: dict, **values) -> list[float]:
    code = script.format(repo=str(REPO), **values)
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if output.returncode:
        raise SystemExit(output.stderr[-2000:])
    return [float(value) for value in output.stdout.split()]


def _install_generated_vgg19(folder: str) -> dict:
    from services.models import weights as registry

    env = {**os.environ, "DASHBOARD_DATA_DIR": folder, "KERAS_HOME": str(Path(folder) / "keras")}
    os.environ.update(env)
    model = registry.BACKBONES["vgg19"].build((64, 64, 3))
    generated = registry.write_weights_file(model, Path(folder) / "upload" / "vgg19.h5")
    registry.install_weights_file("vgg19", generated.read_bytes(), original_name="generated (bench)")
    return env


def first_preview(repeats: int = 3) -> None:
    """Fresh processes, with a generated VGG19 file installed in a new model cache."""
    with tempfile.TemporaryDirectory() as folder:
        env = _install_generated_vgg19(folder)
        print(f"\n## First preview of a 256 px Gatys job ({repeats} fresh processes each)")
        for warm in (False, True):
            rows = [_fresh(FIRST_PREVIEW, env, warm=warm) for _ in range(repeats)]
            label = "warm (TensorFlow imported before)" if warm else "cold (fresh process)"
            print(f"{label:34} job body start -> first preview: "
                  + ", ".join(f"{preview:.1f} s" for _, preview in rows)
                  + f"   (Python{' + TensorFlow' if warm else ''} imports before: "
                  + ", ".join(f"{before:.1f} s" for before, _ in rows) + ")")
        through = _fresh(THROUGH_MANAGER, env, repeats=repeats)
        print(f"{'through the JobManager':34} Start pressed -> first preview in the store: "
              + ", ".join(f"{value:.1f} s" for value in through))


def fast_vs_gatys(extractor, rounds: int) -> None:
    """Fast style transfer (after loading) vs one Gatys step, both at 384 px."""
    from services.style import fast, fast_models
    from services.style.settings import FastSettings

    if not SHARED_MAGENTA.is_dir():
        print("\n## Fast vs Gatys: ../shared/fixtures/style/magenta is absent; skipped")
        return
    content, style = pictures()
    side = 384
    with tempfile.TemporaryDirectory() as folder:
        os.environ["DASHBOARD_MODEL_CACHE"] = folder
        target = Path(folder) / fast_models.FOLDER
        target.mkdir()
        for item in [fast_models.PREDICT, *fast_models.TRANSFER_VARIANTS.values()]:
            (target / item.file_name).write_bytes((SHARED_MAGENTA / item.file_name).read_bytes())
        print(f"\n## Fast (Magenta TF Lite) vs one Gatys step at {side} px (best of {rounds})")
        settings = StyleSettings(max_side=side, jit_compile=False, weights="random")
        scaled = transfer.fit_longest_side(content, side)
        objective = transfer.StyleObjective(extractor, scaled, transfer.fit_longest_side(style, side), settings.loss)
        stage = transfer.Stage(objective, scaled, settings)
        stage.step()[0].numpy()  # trace
        gatys = min(_timed(lambda: stage.step()[0].numpy()) for _ in range(rounds))
        for variant in fast_models.TRANSFER_VARIANTS:
            start = time.perf_counter()
            stylist = fast.stylist_for(variant)
            loading = time.perf_counter() - start
            fast_settings = FastSettings(max_side=side, variant=variant)
            fast.stylise_fast(content, style, fast_settings, stylist)  # warm-up
            seconds = min(_timed(lambda: fast.stylise_fast(content, style, fast_settings, stylist))
                          for _ in range(rounds))
            print(f"fast {variant:5} ({stylist.runtime}): {seconds:.3f} s per picture (+{loading:.3f} s loading "
                  f"once) · one Gatys step {gatys:.3f} s -> fast = {seconds / gatys:.2f} Gatys steps; "
                  f"200 Gatys steps / fast = {200 * gatys / seconds:.0f}x")
        del os.environ["DASHBOARD_MODEL_CACHE"]


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


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
    fast_vs_gatys(extractor, args.rounds)
    first_preview()


if __name__ == "__main__":
    main()
