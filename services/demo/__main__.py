"""``python -m services.demo [--data-dir DIR]``: the real-tissue demo from a terminal (lab servers).

Runs the same job as the Home page's button (through the job runner of the data root, so the
dashboard opens the finished result too), prints its progress, then the result in sentences.
An unfinished earlier demo is resumed. Ctrl-C stops it (run again to resume). Exit status: 0
done, 1 failed (the reason is printed), 130 stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from services.config import Env


def _follow(manager, job_id: str) -> int:
    from services.demo.results import demo_result
    from services.tissuemap import job as map_job

    shown = None
    while True:
        state = manager.get(job_id)
        line = f"[{state.progress:6.1%}] {state.status}: {state.message or ''}"
        if line != shown:
            print(line, flush=True)
            shown = line
        if not state.active:
            break
        manager.ensure_runner()
        time.sleep(1.0)
    if state.status == "finished":
        result = demo_result(state, manager.job_dir(job_id))
        for text in result.lines() if result else ["The demo finished but its map is missing."]:
            print(text)
        if result is not None:
            print(f"Report: {result.file(map_job.REPORT_HTML)}")
        return 0 if result is not None else 1
    if state.status == "stopped":
        print("Stopped. Run the command again to resume.", file=sys.stderr)
        return 130
    print(f"The demo {state.status}: {state.error or state.message or 'no reason recorded'}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="the data root (default: DASHBOARD_DATA_DIR, else ./data)")
    args = parser.parse_args(argv)
    if args.data_dir:
        os.environ[Env.DATA_DIR] = args.data_dir
    from services.demo.chain import check_offline
    from services.demo.results import start_or_resume
    from services.errors import UserFacingError
    from services.jobs import JobManager

    try:
        check_offline()  # offline with files missing: say which and where, without starting anything
        manager = JobManager()
        job_id = start_or_resume(manager)
    except UserFacingError as error:
        print(f"The demo cannot start: {error}", file=sys.stderr)
        return 1
    try:
        return _follow(manager, job_id)
    except KeyboardInterrupt:
        manager.stop(job_id)
        print("Stop requested; the job ends at its next step. Run the command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
