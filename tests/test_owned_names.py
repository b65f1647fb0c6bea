"""Names owned once: job kinds and output file names are spelled only by the module that owns them.

Job kinds are constants of services/jobs/kinds.py; the files of a run or job folder are constants
of services/run_layout.py; a tissue map's outputs are constants of services/tissuemap/job.py (and
maps.py for the map itself); a batch detection's outputs are constants of
services/detection/batch.py. Every other module of services/, dashboard/ and pages/ uses those
constants: a string literal equal to one of these names fails this test (an AST scan, so comments
and docstrings do not count).

Two kinds are plain words ("training", "transfer") that also name other things (a run's source,
a page); they count only where a kind is meant: ``kind=...``, the first argument of ``submit``,
a comparison with ``.kind``, or a value assigned to a name containing ``KIND``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from services import run_layout
from services.detection import batch
from services.jobs import kinds
from services.tissuemap import job as map_job
from services.tissuemap import maps

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("services", "dashboard", "pages")


def _file_names(module, names: list[str] | None = None) -> dict[str, str]:
    """The file-name constants of ``module`` (upper-case names whose value has a suffix)."""
    chosen = names or [name for name in vars(module) if name.isupper()]
    return {getattr(module, name): f"{module.__name__}.{name}" for name in chosen
            if isinstance(getattr(module, name), str) and "." in getattr(module, name)}


OWNED_FILES: dict[Path, dict[str, str]] = {
    Path("services/run_layout.py"): _file_names(run_layout),
    Path("services/tissuemap/job.py"): _file_names(map_job, [
        "THUMBNAIL", "TISSUE_PREVIEW", "OVERLAY", "LABELS_TIFF", "TILES_CSV", "REGIONS_GEOJSON", "AREAS_CSV",
        "REPORT_HTML", "PLAN_FILE"]),
    Path("services/tissuemap/maps.py"): _file_names(maps, ["META_FILE", "MAP_FILE"]),
    Path("services/detection/batch.py"): _file_names(batch, ["DETECTIONS_CSV", "DETECTIONS_COCO", "ANNOTATED_ZIP",
                                                             "PROBLEMS_CSV"]),
}
KINDS_MODULE = Path("services/jobs/kinds.py")


def _in_kind_context(node: ast.Constant, parents: dict[ast.AST, ast.AST]) -> bool:
    parent = parents.get(node)
    if isinstance(parent, ast.keyword) and parent.arg == "kind":
        return True
    if isinstance(parent, ast.Call) and parent.args and parent.args[0] is node \
            and isinstance(parent.func, ast.Attribute) and parent.func.attr in ("submit", "create", "list"):
        return True
    if isinstance(parent, ast.Compare):
        sides = [parent.left, *parent.comparators]
        return any(isinstance(side, ast.Attribute) and side.attr == "kind" for side in sides)
    while isinstance(parent, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
        parent = parents.get(parent)
    if isinstance(parent, ast.Assign):
        return any(isinstance(target, ast.Name) and "KIND" in target.id for target in parent.targets)
    return False


def spelled_names(source: str, path: Path) -> list[str]:
    """``path:line: 'name' (owner)`` for each owned name that ``source`` spells as a literal."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    files = {value: owner for owner_path, names in OWNED_FILES.items() if owner_path != path
             for value, owner in names.items()}
    found = []
    for node in sorted(ast.walk(tree), key=lambda node: (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        value = node.value
        if value in files:
            found.append(f"{path}:{node.lineno}: {value!r} ({files[value]})")
        elif path != KINDS_MODULE and value in kinds.KINDS and ("-" in value or _in_kind_context(node, parents)):
            found.append(f"{path}:{node.lineno}: {value!r} (services.jobs.kinds)")
    return found


def test_no_module_spells_an_owned_name():
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT)
            found += spelled_names(path.read_text(encoding="utf-8"), relative)
    assert not found, "use the owner's constant instead of the literal:\n" + "\n".join(found)


def test_the_scan_finds_each_kind_of_literal():
    source = '''
manager.submit("tissue-map", "t", {})
manager.list(kind="training")
if state.kind == "transfer":
    pass
JOB_KIND = "training"
open(folder / "best.keras")
open(folder / "overlay.png")
open(folder / "detections.csv")
run = create_run(source="transfer")  # a run's source, not a kind
'''
    found = spelled_names(source, Path("pages/example.py"))
    assert [line.split(": ", 1)[1] for line in found] == [
        "'tissue-map' (services.jobs.kinds)", "'training' (services.jobs.kinds)",
        "'transfer' (services.jobs.kinds)", "'training' (services.jobs.kinds)",
        "'best.keras' (services.run_layout.BEST_MODEL)", "'overlay.png' (services.tissuemap.job.OVERLAY)",
        "'detections.csv' (services.detection.batch.DETECTIONS_CSV)"]


def test_owners_may_spell_their_own_names():
    assert spelled_names('BEST_MODEL = "best.keras"', Path("services/run_layout.py")) == []
    assert spelled_names('TISSUE_MAP = "tissue-map"', KINDS_MODULE) == []
