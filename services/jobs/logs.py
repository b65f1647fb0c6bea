"""Reading the end of a worker's log for the user: bounded, and without server paths."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from services.config import get_settings

TAIL_BYTES = 4000
TAIL_LINES = 15
REPO_ROOT = Path(__file__).resolve().parents[2]


def scrub_paths(text: str) -> str:
    """Replace the data root, the app folder and the home folder with placeholders."""
    replacements = [(str(get_settings().data_root), "<data root>"), (str(REPO_ROOT), "<app>"),
                    (os.path.expanduser("~"), "~")]
    for path, placeholder in replacements:
        if path and path not in ("/", "~"):
            text = text.replace(path, placeholder)
    return text


def log_tail(path: Path, lines: int = TAIL_LINES) -> str | None:
    """The last ``lines`` lines of a log (read from its end only), paths scrubbed."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    tail = "\n".join(text.splitlines()[-lines:]).strip()
    return scrub_paths(tail) or None


def describe_exit(returncode: int) -> tuple[str | None, int | None, str]:
    """(signal name, exit code, sentence) for a worker's return code from ``Popen``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (killed for using too much memory, most likely)" if name == "SIGKILL" else ""
        return name, None, f"The worker process was killed by {name}{hint}; the server kept running."
    return None, returncode, f"The worker process exited with code {returncode}; the server kept running."
