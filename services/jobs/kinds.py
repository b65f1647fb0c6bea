"""Every kind of background job: the body that runs it, its resource class, whether it resumes.

This module is the one place a job kind is named and declared: every other module submits, lists
or compares kinds through the constants below (``tests/test_owned_names.py`` fails on a kind
spelled as a string literal elsewhere). A worker process imports a body only when it runs a job
of that kind, so this module imports nothing heavy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from services.errors import UserFacingError

TENSORFLOW, CPU, IO = "tensorflow", "cpu", "io"
RESOURCES = (TENSORFLOW, CPU, IO)

# --- kind names ---------------------------------------------------------------------------------
TRAINING = "training"
TRANSFER = "transfer"
FEATURE_EXTRACTION = "feature-extraction"
STYLE_TRANSFER = "style-transfer"
FAST_STYLE_TRANSFER = "fast-style-transfer"
DETECTION_BATCH = "detection-batch"
TISSUE_MAP = "tissue-map"
REAL_TISSUE_DEMO = "real-tissue-demo"
DATASET_INDEX = "dataset-index"
DATASET_IMPORT = "dataset-import"
TENSORBOARD_IMPORT = "tensorboard-import"
KATHER_DOWNLOAD = "kather-download"
NCT_DOWNLOAD = "nct-download"
KATHER_LARGE_DOWNLOAD = "kather-large-download"
WEIGHTS_DOWNLOAD = "weights-download"
STYLE_MODEL_DOWNLOAD = "style-model-download"
DETECTION_DOWNLOAD = "detection-download"
TEST_SLEEP, TEST_ONCE, TEST_TENSORFLOW, TEST_REUSE = "test-sleep", "test-once", "test-tensorflow", "test-reuse"


@dataclass(frozen=True)
class JobKind:
    name: str
    body: str
    """``"module:function"``; the function takes ``(params, context)``."""
    resource: str
    """Which concurrency limit the job counts against (``tensorflow`` jobs also get a warm worker)."""
    resumable: bool = False
    label: str = ""
    reuses_worker: bool = False
    """A warm worker that ran a job of this kind may take the next job of such a kind, keeping
    what it loaded (a tissue map's models); every other job runs in a worker of its own."""

    def load_body(self) -> Callable[[dict, Any], Any]:
        return load(self.body)


_KINDS = [
    JobKind(TRAINING, "services.training.worker:training_job", TENSORFLOW, True, "training run"),
    JobKind(TRANSFER, "services.transfer.experiments:experiment_job", TENSORFLOW, True, "transfer comparison"),
    JobKind(FEATURE_EXTRACTION, "services.transfer.features:feature_extraction_job", TENSORFLOW, False,
            "feature extraction"),
    JobKind(STYLE_TRANSFER, "services.style.transfer:style_job", TENSORFLOW, True, "style transfer"),
    JobKind(FAST_STYLE_TRANSFER, "services.style.fast:fast_style_job", TENSORFLOW, False, "fast style transfer"),
    JobKind(DETECTION_BATCH, "services.detection.batch:batch_job", TENSORFLOW, False, "batch detection"),
    JobKind(TISSUE_MAP, "services.tissuemap.job:tissue_map_job", TENSORFLOW, True, "tissue map",
            reuses_worker=True),
    JobKind(REAL_TISSUE_DEMO, "services.demo.chain:demo_job", TENSORFLOW, True, "real-tissue demo"),
    JobKind(DATASET_INDEX, "services.datasets.tasks:index_job", CPU, False, "dataset indexing"),
    JobKind(DATASET_IMPORT, "services.datasets.tasks:import_job", CPU, False, "dataset import"),
    JobKind(TENSORBOARD_IMPORT, "services.training.tb_import:import_job", CPU, False, "TensorBoard import"),
    JobKind(KATHER_DOWNLOAD, "services.datasets.tasks:kather_job", IO, False, "Kather download"),
    JobKind(NCT_DOWNLOAD, "services.datasets.nct_tasks:nct_job", IO, False, "NCT-CRC-HE download"),
    JobKind(KATHER_LARGE_DOWNLOAD, "services.tissuemap.kather_large:download_job", IO, False,
            "Kather larger images download"),
    JobKind(WEIGHTS_DOWNLOAD, "services.models.weights.job:download_weights_job", IO, False, "weights download"),
    JobKind(STYLE_MODEL_DOWNLOAD, "services.style.fast_models:download_job", IO, False, "fast style model download"),
    JobKind(DETECTION_DOWNLOAD, "services.detection.registry:download_job", IO, False, "Darknet download"),
    # Used by the job tests: small bodies with known behaviour (sleep, crash, fail, progress).
    JobKind(TEST_SLEEP, "services.jobs.testing:sleep_job", CPU, True, "test job"),
    JobKind(TEST_ONCE, "services.jobs.testing:sleep_job", CPU, False, "test job that cannot resume"),
    JobKind(TEST_TENSORFLOW, "services.jobs.testing:tensorflow_job", TENSORFLOW, True, "test TF job"),
    JobKind(TEST_REUSE, "services.jobs.testing:tensorflow_job", TENSORFLOW, False, "test TF job in a reused worker",
            reuses_worker=True),
]
KINDS: dict[str, JobKind] = {kind.name: kind for kind in _KINDS}
SWEEPS = ("services.training.reconcile:sweep",)
"""``"module:function"`` the job runner calls every few seconds with ``(jobs_dir, get_job)``: records
kept beside the jobs (a training run's status) follow the jobs' endings there, not in a page."""


def load(path: str) -> Callable:
    """The function named by ``"module:function"``."""
    module_name, function_name = path.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def kind_of(name: str) -> JobKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UserFacingError(f"Unknown kind of job: {name!r}.") from None
