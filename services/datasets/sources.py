"""Where datasets come from: the synthetic demo, Kather 2016, and folders under the data root.

Every dataset has a name: ``demo``, ``kather2016``, the name of a folder in
``<data_root>/datasets/`` (an extracted upload, a copied folder), or the path relative to the
data root of a folder registered with :func:`register_folder`. All folders are confined to the
data root.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from services import untrusted_json
from services.access import Actor
from services.config import DATA_ROOT_FOLDERS, DATASETS, confine, display_path, get_settings
from services.datasets import index, kather, layout, nct, records
from services.archives import Source, extract_zip
from services.datasets.demo import DEMO_NAME, demo_folder, ensure_demo_dataset
from services.datasets.index import class_folders, scan_folder
from services.datasets.naming import is_safe_name
from services.errors import UserFacingError

REGISTRY = "registered.json"
MANAGED_FOLDERS = DATA_ROOT_FOLDERS
"""Top-level folders of the data root that the dashboard itself manages (the layout of
services.config): never a dataset."""
RESERVED_NAMES = frozenset({DEMO_NAME, kather.DATASET_NAME, *nct.KNOWN, REGISTRY, *MANAGED_FOLDERS})
"""Names a new dataset may not take (compared case-insensitively)."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    folder: Path
    kind: str
    """"demo", "kather2016" or "folder"."""
    is_synthetic: bool

    @property
    def title(self) -> str:
        if self.kind == "demo":
            return "Synthetic demo (procedural H&E-like tiles)"
        if self.kind == kather.DATASET_NAME:
            return "Kather 2016 (5000 colorectal histology tiles)"
        if self.kind in nct.KNOWN:
            return nct.KNOWN[self.kind].title
        return f"Folder: {self.name}"


def find_class_root(folder: Path) -> Path:
    """The folder that holds the class sub-folders: descends through single wrapper folders,
    as zips often have one (``Kather_texture_2016_image_tiles_5000/01_TUMOR/...``)."""
    for _ in range(4):
        children = class_folders(folder)
        if len(children) == 1 and class_folders(folder / children[0]):
            folder = folder / children[0]
        else:
            break
    return folder


def _registry_path() -> Path:
    return get_settings().datasets_dir / REGISTRY


def _registered() -> list[str]:
    names = untrusted_json.read_or(_registry_path(), [], expect=list)
    return [n for n in names if isinstance(n, str)]


def list_datasets() -> list[DatasetInfo]:
    """Every dataset available now; the demo set is always listed (generated when opened)."""
    datasets_dir = get_settings().datasets_dir
    found = [DatasetInfo(DEMO_NAME, demo_folder(), "demo", True)]
    if kather.is_installed():
        found.append(DatasetInfo(kather.DATASET_NAME, find_class_root(kather.install_folder()), "kather2016", False))
    found += [DatasetInfo(a.name, find_class_root(a.install_folder()), a.name, False)
              for a in nct.KNOWN.values() if a.is_installed()]
    if datasets_dir.is_dir():
        for name in class_folders(datasets_dir):
            if name in (DEMO_NAME, kather.DATASET_NAME, *nct.KNOWN):
                continue
            root = find_class_root(datasets_dir / name)
            if class_folders(root):
                found.append(DatasetInfo(name, root, "folder", False))
    data_root = get_settings().data_root
    for relative in _registered():
        try:
            folder = confine(relative, data_root)
        except UserFacingError:
            continue
        if folder.is_dir():
            found.append(DatasetInfo(relative, find_class_root(folder), "folder", False))
    return found


def dataset_info(name: str) -> DatasetInfo:
    for info in list_datasets():
        if info.name == name:
            return info
    raise UserFacingError(f"no dataset called {name!r}; pick one of the listed datasets.")


def dataset_folder(name: str) -> Path:
    """The class-root folder of dataset ``name`` (generating the demo set when needed)."""
    if name == DEMO_NAME:
        return ensure_demo_dataset()
    return confine(dataset_info(name).folder)


def register_folder(path: str | os.PathLike) -> DatasetInfo:
    """Add an existing folder of class sub-folders (inside the data root) as a dataset."""
    data_root = get_settings().data_root
    folder = confine(path, data_root)
    if not folder.is_dir():
        raise UserFacingError(f"{display_path(folder)}: no such folder under the data root.")
    relative = folder.relative_to(data_root)
    if not relative.parts or (relative.parts[0] in MANAGED_FOLDERS and len(relative.parts) == 1) \
            or (relative.parts[0] in MANAGED_FOLDERS - {DATASETS}):
        raise UserFacingError(
            f"{display_path(folder)} is a folder the dashboard manages itself, not a dataset; pick the folder "
            "that holds the class sub-folders."
        )
    root = find_class_root(folder)
    if not class_folders(root):
        raise UserFacingError(
            f"{display_path(folder)} has no class sub-folders. A dataset folder holds one sub-folder per class "
            "(e.g. 01_TUMOR/, 02_STROMA/) with the image tiles inside."
        )
    if folder.parent == get_settings().datasets_dir:
        return dataset_info(folder.name)
    names = _registered()
    if relative.as_posix() not in names:
        _registry_path().parent.mkdir(parents=True, exist_ok=True)
        _registry_path().write_text(json.dumps([*names, relative.as_posix()], indent=1))
    return dataset_info(relative.as_posix())


def check_new_name(name: object) -> str:
    """``name`` when it can become a new dataset folder; else a clear :class:`UserFacingError`."""
    if not is_safe_name(name) or name.lower() in RESERVED_NAMES:
        raise UserFacingError(
            f"{str(name)[:80]!r} is not a usable dataset name: use 1-64 letters, digits, '_', '-' or '.', "
            f"starting with a letter or digit, and not one of {', '.join(sorted(RESERVED_NAMES))}."
        )
    if (get_settings().datasets_dir / name).exists():
        raise UserFacingError(f"a dataset called {name!r} already exists; choose another name.")
    return name


def import_zip(zip_source: Source, name: str, *, progress=None, stop=None, label: str | None = None,
               owner: str | None = None) -> DatasetInfo:
    """Extract a zip of class folders (a path inside the data root, bytes or a file object) as
    the new dataset ``name``, recording ``owner`` (:mod:`services.datasets.records`). A zip
    without class sub-folders holding files is refused and leaves nothing behind (the name
    stays free)."""
    check_new_name(name)
    if label is None and isinstance(zip_source, (str, os.PathLike)):
        label = Path(zip_source).name
    datasets_dir = get_settings().datasets_dir
    staging = datasets_dir / f".importing-{uuid.uuid4().hex[:12]}"
    try:
        extract_zip(zip_source, staging, progress=progress, stop=stop, label=label)
        root = find_class_root(staging)
        if not class_folders(root) or not scan_folder(root):
            raise UserFacingError(
                f"{label or 'the zip'} has no class sub-folders with files in them; a dataset zip holds one "
                "folder per class with the image tiles inside. Nothing was kept."
            )
        records.write_record(staging, owner, label)
        check_new_name(name)  # another import may have taken the name meanwhile
        try:
            os.replace(staging, datasets_dir / name)
        except OSError:
            raise UserFacingError(f"a dataset called {name!r} was just created by another import; choose "
                                  "another name.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dataset_info(name)


def managed_folder(info: DatasetInfo) -> Path | None:
    """The folder under ``<data_root>/datasets`` that holds dataset ``info`` (what deleting it
    removes), or None when the dashboard does not own its files: the demo set, and folders
    registered where they lie (they belong to whoever put them there)."""
    datasets_dir = get_settings().datasets_dir
    if info.kind == "demo" or not is_safe_name(info.name):
        return None
    folder = datasets_dir / info.name
    return folder if folder.is_dir() and folder in (info.folder, *info.folder.parents) else None


def dataset_owner(info: DatasetInfo) -> str | None:
    """Who imported ``info`` (None: a download, a hand-copied folder, or sign-in was off)."""
    folder = managed_folder(info)
    return records.read_owner(folder) if folder is not None else None


def delete_dataset(name: str, actor: Actor) -> None:
    """Delete the dataset ``name`` (its folder, cached index and saved splits) when ``actor``
    may: its owner or an administrator, everybody with sign-in off. The demo set and registered
    folders are refused. The folder is renamed away first, so the list never shows half of it."""
    info = dataset_info(name)
    folder = managed_folder(info)
    if folder is None:
        raise UserFacingError(f"{info.title} cannot be deleted here: the demo set is generated, and a folder "
                              "added where it lies belongs to whoever put it there (remove it on disk).")
    actor.check_can_delete(records.read_owner(folder), what=f"the dataset {name!r}")
    cache = index.cache_file(confine(info.folder))
    doomed = folder.with_name(f".deleting-{uuid.uuid4().hex[:12]}")
    os.replace(folder, doomed)
    cache.unlink(missing_ok=True)
    shutil.rmtree(layout.split_dir(name), ignore_errors=True)
    shutil.rmtree(doomed, ignore_errors=True)
