"""Where datasets come from: the synthetic demo, Kather 2016, and folders under the data root.

Every dataset has a name: ``demo``, ``kather2016``, the name of a folder in
``<data_root>/datasets/`` (an extracted upload, a copied folder), or the path relative to the
data root of a folder registered with :func:`register_folder`. All folders are confined to the
data root.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from services.config import confine, get_settings
from services.datasets import kather
from services.archives import safe_extract
from services.datasets.demo import DEMO_NAME, demo_folder, ensure_demo_dataset
from services.datasets.index import class_folders
from services.datasets.naming import SAFE_NAME, safe_name
from services.errors import UserFacingError

REGISTRY = "registered.json"


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
    try:
        names = json.loads(_registry_path().read_text())
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def list_datasets() -> list[DatasetInfo]:
    """Every dataset available now; the demo set is always listed (generated when opened)."""
    datasets_dir = get_settings().datasets_dir
    found = [DatasetInfo(DEMO_NAME, demo_folder(), "demo", True)]
    if kather.is_installed():
        found.append(DatasetInfo(kather.DATASET_NAME, find_class_root(kather.install_folder()), "kather2016", False))
    if datasets_dir.is_dir():
        for name in class_folders(datasets_dir):
            if name in (DEMO_NAME, kather.DATASET_NAME):
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
        raise UserFacingError(f"{path}: no such folder under the data root {data_root}.")
    root = find_class_root(folder)
    if not class_folders(root):
        raise UserFacingError(
            f"{path} has no class sub-folders. A dataset folder holds one sub-folder per class "
            "(e.g. 01_TUMOR/, 02_STROMA/) with the image tiles inside."
        )
    if folder.parent == get_settings().datasets_dir:
        return dataset_info(folder.name)
    relative = folder.relative_to(data_root).as_posix()
    names = _registered()
    if relative not in names:
        _registry_path().parent.mkdir(parents=True, exist_ok=True)
        _registry_path().write_text(json.dumps([*names, relative], indent=1))
    return dataset_info(relative)


def check_new_name(name: str) -> str:
    if not SAFE_NAME.match(name or "") or name in (DEMO_NAME, kather.DATASET_NAME):
        raise UserFacingError(
            f"{name!r} is not a usable dataset name: use 1-64 letters, digits, '_', '-' or '.', "
            f"not starting with '.', and not {DEMO_NAME!r} or {kather.DATASET_NAME!r}."
        )
    if (get_settings().datasets_dir / name).exists():
        raise UserFacingError(f"a dataset called {name!r} already exists; choose another name.")
    return name


def import_zip(zip_path: str | os.PathLike, name: str, *, progress=None, stop=None) -> DatasetInfo:
    """Extract a zip of class folders (inside the data root) as the new dataset ``name``."""
    check_new_name(name)
    target = safe_extract(zip_path, get_settings().datasets_dir / name, progress=progress, stop=stop)
    if not class_folders(find_class_root(target)):
        raise UserFacingError(
            f"the zip was extracted to {target}, but it has no class sub-folders; a dataset zip "
            "holds one folder per class with the image tiles inside."
        )
    return dataset_info(name)


def slug(name: str) -> str:
    """A dataset name as one safe path component (registered names may contain '/')."""
    return safe_name(name.replace("/", "__"))
