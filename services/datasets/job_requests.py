"""Which dataset job the explorer starts for what the person asked (job bodies:
:mod:`services.datasets.tasks`): a published set's download or its zip, an uploaded or server-side
zip to import, or the index of a dataset. The page only shows the request's title and submits it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.datasets import published, tasks
from services.datasets.naming import safe_name
from services.jobs import kinds

ZIP_NAME_LENGTH = 120
RETRYABLE = ("failed", "stopped", "interrupted")


@dataclass(frozen=True)
class DatasetJob:
    kind: str
    title: str
    params: dict
    files: dict[str, bytes] | None = field(default=None, compare=False)

    @property
    def selects_dataset(self) -> bool:
        """Downloads and imports bring a new dataset, selected when they finish (indexing does not)."""
        return self.kind != kinds.DATASET_INDEX

    def submit(self, manager) -> str:
        """Submit it unless the same kind of job for the same dataset is running; the job id."""
        return tasks.submit_once(manager, self.kind, self.title, self.params, files=self.files)


def published_download(item: published.Published) -> DatasetJob:
    return DatasetJob(item.kind, f"{item.label} download", item.job_params())


def published_zip(item: published.Published, zip_path: str) -> DatasetJob:
    """The published set from its zip at ``zip_path`` (relative to the data root)."""
    return DatasetJob(item.kind, f"{item.label} from zip", item.job_params(zip_path))


def upload_import(name: str, zip_name: str, data: bytes, owner: str | None) -> DatasetJob:
    """Import an uploaded zip as the dataset ``name`` (the job deletes the zip after the import)."""
    return DatasetJob(kinds.DATASET_IMPORT, f"Import {name}",
                      {"dataset": name, "zip_name": Path(zip_name).name[:ZIP_NAME_LENGTH], "owner": owner},
                      files={tasks.UPLOAD_FILE: data})


def zip_job(zip_file: Path, zip_path: str, owner: str | None) -> DatasetJob:
    """A zip under the data root (``zip_path`` relative to it): a published set's zip is
    verified as that set; any other is imported under its file name."""
    item = published.by_file_name(zip_file.name)
    if item is not None:
        return published_zip(item, zip_path)
    name = safe_name(zip_file.stem)
    return DatasetJob(kinds.DATASET_IMPORT, f"Import {name}", {"dataset": name, "zip_path": zip_path,
                                                             "zip_name": zip_file.name, "owner": owner})


def index_job(dataset: str) -> DatasetJob:
    return DatasetJob(kinds.DATASET_INDEX, f"Index {dataset}", {"dataset": dataset})


def latest_index_job(manager, dataset: str):
    """The newest indexing job of ``dataset`` (None: never indexed by a job)."""
    return next((s for s in manager.list(kind=kinds.DATASET_INDEX) if s.params.get("dataset") == dataset), None)


def index_failed(state) -> bool:
    """Whether the indexing job ``state`` ended without an index (the page offers Try again)."""
    return state is not None and state.status in RETRYABLE
