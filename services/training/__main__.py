"""Headless training: ``python -m services.training --model cnn_v1 --dataset demo --epochs 5``.

Trains in the foreground of this process and logs to the same run store as the dashboard, so
the run appears in the training monitor. With ``TF_CONFIG`` set (one process per machine) it
trains with MultiWorkerMirroredStrategy; only the chief logs and writes checkpoints. Give every
machine the same ``--run-id`` (any ``YYYYmmdd-HHMMSS-xxxxxx``-style id): starting them all again
with it resumes the run from its last backup. ``--background`` queues the run as a training job
instead and returns at once.
"""

from __future__ import annotations

import argparse
import sys

from services import untrusted_json
from services.errors import UserFacingError
from services.models.catalog import model_names
from services.training.config import DISTRIBUTIONS, OPTIMIZERS, RunConfig


def parse_config(argv: list[str] | None = None) -> tuple[RunConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m services.training", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn_v1", choices=model_names())
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--split", default=None, help="a saved split (default: grouped by source image)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--mixed-precision", action="store_true", help="float16 compute on GPU")
    parser.add_argument("--distribution", default="auto", choices=DISTRIBUTIONS)
    parser.add_argument("--name", default=None)
    parser.add_argument("--run-id", default=None, help="the run's id (the same on every machine of a cluster); "
                                                       "an existing stopped/failed/interrupted run resumes")
    parser.add_argument("--keep", default="best", choices=("best", "all"),
                        help="checkpoints kept when the run ends well")
    parser.add_argument("--options", default="{}", help='model options as JSON, e.g. \'{"weights": null}\'')
    parser.add_argument("--background", action="store_true", help="queue for a worker process and return")
    args = parser.parse_args(argv)
    try:
        options = untrusted_json.loads(args.options, what="--options")
    except untrusted_json.BadJSON as error:
        parser.error(str(error))
    config = RunConfig(model=args.model, dataset=args.dataset, split=args.split, epochs=args.epochs,
                       batch_size=args.batch_size, optimizer=args.optimizer, learning_rate=args.learning_rate,
                       augment=args.augment, seed=args.seed, image_size=args.image_size,
                       mixed_precision=args.mixed_precision, distribution=args.distribution, name=args.name,
                       keep=args.keep, options=options)
    return config, args


def main(argv: list[str] | None = None) -> int:
    from services.training import launcher, store as run_store
    from services.training.distribution import is_chief

    config, args = parse_config(argv)
    try:
        config.validate()
        if args.run_id:
            run_store.check_run_id(args.run_id)
        if args.background:
            run_id = launcher.start_run(config)
            print(f"queued run {run_id}; watch it in the training monitor")
            return 0
        if not is_chief():  # other machines of a multi-worker job train but do not log
            from services.training.worker import train_unlogged

            status = train_unlogged(config, run_key=args.run_id)
            print(f"worker finished its share: {status}")
            return 0 if status == run_store.FINISHED else 1
        store = run_store.RunStore()
        existing = store.find_run(args.run_id) if args.run_id else None
        if existing is not None and existing.status not in launcher.RESUMABLE:
            raise UserFacingError(f"Run {args.run_id} is {existing.status}; only stopped, failed or interrupted "
                                  "runs can be resumed.")
        run_id = existing.id if existing else launcher.create_run_for(config, store, source="cli",
                                                                      status=run_store.RUNNING, run_id=args.run_id)
    except UserFacingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from services.training.worker import execute

    print(f"run {run_id}: training {config.model} on {config.dataset} ({store.path})")
    status = execute(run_id, store.path)
    run = store.get_run(run_id)
    print(f"run {run_id}: {status}" + (f" — {run.error}" if run.error else ""))
    for key in ("val_accuracy", "test_accuracy", "test_macro_f1"):
        if key in run.summary:
            print(f"  {key}: {run.summary[key]:.3f}")
    return 0 if status in (run_store.FINISHED, run_store.STOPPED) else 1


if __name__ == "__main__":
    sys.exit(main())
