"""Job bodies with known behaviour, for the job tests (declared in services/jobs/kinds.py)."""

from __future__ import annotations

import os
import signal
import time

from services.errors import UserFacingError


def sleep_job(params: dict, context) -> dict:
    """Counts ``steps`` steps of ``seconds`` each; ``fail_at`` raises, ``crash_at`` kills itself
    with ``signal`` (default SIGSEGV), ``ignore_stop`` never looks at the stop flag."""
    steps, seconds = int(params.get("steps", 10)), float(params.get("seconds", 0.05))
    done_file = context.dir / "done_steps"
    start = int(done_file.read_text()) if context.resumed and done_file.exists() else 0
    for step in range(start, steps):
        if step == params.get("fail_at"):
            raise UserFacingError("the test job failed on purpose")
        if step == params.get("crash_at"):
            os.kill(os.getpid(), getattr(signal, params.get("signal", "SIGSEGV")))
        if not params.get("ignore_stop"):
            context.check_stop()
        time.sleep(seconds)
        staging = done_file.with_name(".done_steps.tmp")  # replaced in one step: a kill never leaves it empty
        staging.write_text(str(step + 1))
        os.replace(staging, done_file)
        context.progress((step + 1) / steps, f"step {step + 1}/{steps}")
    return {"steps": steps, "started_at_step": start, "pid": os.getpid()}


def tensorflow_job(params: dict, context) -> dict:
    """A tiny TensorFlow computation (checks the warm worker path); then stays alive ``seconds``."""
    from services.runtime import tensorflow

    tf = tensorflow()

    @tf.function  # traced by autograph, which writes a temporary file
    def total(values):
        result = tf.constant(0.0)
        for value in values:
            if value > 0:
                result += value
        return result

    value = float(total(tf.ones((int(params.get("n", 4)),))).numpy())
    context.progress(0.5, "computed")
    deadline = time.monotonic() + float(params.get("seconds", 0))  # stays alive this long (or until Stop)
    while time.monotonic() < deadline and not context.should_stop():
        time.sleep(0.05)
    if params.get("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    return {"sum": value, "pid": os.getpid()}
