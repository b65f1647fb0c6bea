"""Feedback latency of every action the journey suite presses: seconds from a click on an idle,
drawn page to the first visible answer (toast, status line, spinner or result), as the browser
tests record them with ``tests.e2e_helpers.timed_click`` in
``build/test-artifacts/feedback-latency.jsonl``.

Writes ``build/test-artifacts/feedback-latency.txt``: every action's median, max and number of
clicks, slowest (by median) first, and the slowest five on top. ``--run`` first empties the
record and runs the browser test files that time an action (about ten minutes on 2 cores); without it the record of
the last test runs is summarised.

Usage: ``python bench/bench_feedback_latency.py [--run]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECORD = REPO / "build" / "test-artifacts" / "feedback-latency.jsonl"
REPORT = RECORD.with_suffix(".txt")
JOURNEY_FILES = sorted(str(path.relative_to(REPO)) for path in (REPO / "tests").glob("test_e2e_*.py")
                       if "timed_click(" in path.read_text())
"""The browser test files that time an action."""
BUDGET_S = 1.0


def summarise(lines: list[str]) -> list[tuple[str, float, float, int]]:
    """(action, median s, max s, clicks) per action, slowest median first."""
    seconds = defaultdict(list)
    for line in lines:
        if line.strip():
            row = json.loads(line)
            seconds[str(row["action"])].append(float(row["seconds"]))
    rows = [(action, statistics.median(values), max(values), len(values)) for action, values in seconds.items()]
    return sorted(rows, key=lambda row: -row[1])


def report(rows: list[tuple[str, float, float, int]]) -> str:
    over = [row for row in rows if row[1] > BUDGET_S]
    lines = [f"Feedback latency (click to the first visible answer), {len(rows)} actions, "
             f"{sum(row[3] for row in rows)} clicks; budget {BUDGET_S:g} s, {len(over)} over it (median).",
             "", "Slowest five (median / max / clicks):"]
    lines += [f"  {median:6.2f} s / {worst:6.2f} s / {clicks:3d}  {action}" for action, median, worst, clicks in rows[:5]]
    lines += ["", "All actions:"]
    lines += [f"  {median:6.2f} s / {worst:6.2f} s / {clicks:3d}  {action}" for action, median, worst, clicks in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the browser journeys first (fresh record)")
    args = parser.parse_args()
    if args.run:
        RECORD.unlink(missing_ok=True)
        subprocess.run([sys.executable, "-m", "pytest", "-q", *JOURNEY_FILES], cwd=REPO, check=False)
    if not RECORD.is_file():
        sys.exit(f"no record at {RECORD.relative_to(REPO)}: run the browser tests (or --run) first")
    text = report(summarise(RECORD.read_text().splitlines()))
    REPORT.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
