"""The pages shown in the navigation. Only pages that work are listed here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    section: str
    summary: str
    default: bool = False

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.file

    @property
    def link(self) -> str:
        """The page's path as st.page_link wants it: relative to the entrypoint's folder."""
        return f"../pages/{self.file}"


def page(file: str) -> PageSpec:
    return next(spec for spec in PAGES if spec.file == file)


PAGES: list[PageSpec] = [
    PageSpec("home.py", "Home", ":material/home:", "Overview",
             "What the dashboard does and which compute device it runs on.", default=True),
    PageSpec("system.py", "System", ":material/memory:", "Overview",
             "TensorFlow devices and the book's CPU vs GPU matrix-multiplication probe."),
]
