"""Every kind of background job: the body that runs it, its resource class, whether it resumes.

This table is the one place a job kind is declared. A worker process imports a body only when it
runs a job of that kind, so this module imports nothing heavy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from services.errors import UserFacingError

TENSORFLOW, CPU, IO = "tensorflow", "cpu", "io"
RESOURCES = (TENSORFLOW, CPU, IO)


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
        module_name, function_name = self.body.split(":")
        return getattr(importlib.import_module(module_name), function_name)


_KINDS = [
    JobKind("training", "services.training.worker:training_job", TENSORFLOW, True, "training run"),
    JobKind("transfer", "services.transfer.experiments:experiment_job", TENSORFLOW, True, "transfer comparison"),
    JobKind("feature-extraction", "services.transfer.features:feature_extraction_job", TENSORFLOW, False,
            "feature extraction"),
    JobKind("style-transfer", "services.style.transfer:style_job", TENSORFLOW, True, "style transfer"),
    JobKind("fast-style-transfer", "services.style.fast:fast_style_job", TENSORFLOW, False, "fast style transfer"),
    JobKind("detection-batch", "services.detection.batch:batch_job", TENSORFLOW, False, "batch detection"),
    JobKind("tissue-map", "services.tissuemap.job:tissue_map_job", TENSORFLOW, True, "tissue map",
            reuses_worker=True),
    JobKind("real-tissue-demo", "services.demo.chain:demo_job", TENSORFLOW, True, "real-tissue demo"),
    JobKind("dataset-index", "services.datasets.tasks:index_job", CPU, False, "dataset indexing"),
    JobKind("dataset-import", "services.datasets.tasks:import_job", CPU, False, "dataset import"),
    JobKind("tensorboard-import", "services.training.tb_import:import_job", CPU, False, "TensorBoard import"),
    JobKind("kather-download", "services.datasets.tasks:kather_job", IO, False, "Kather download"),
    JobKind("nct-download", "services.datasets.nct_tasks:nct_job", IO, False, "NCT-CRC-HE download"),
    JobKind("kather-large-download", "services.tissuemap.kather_large:download_job", IO, False,
            "Kather larger images download"),
    JobKind("weights-download", "services.models.weights:download_weights_job", IO, False, "weights download"),
    JobKind("style-model-download", "services.style.fast_models:download_job", IO, False, "fast style model download"),
    JobKind("detection-download", "services.detection.registry:download_job", IO, False, "Darknet download"),
    # Used by the job tests: small bodies with known behaviour (sleep, crash, fail, progress).
    JobKind("test-sleep", "services.jobs.testing:sleep_job", CPU, True, "test job"),
    JobKind("test-once", "services.jobs.testing:sleep_job", CPU, False, "test job that cannot resume"),
    JobKind("test-tensorflow", "services.jobs.testing:tensorflow_job", TENSORFLOW, True, "test TF job"),
    JobKind("test-reuse", "services.jobs.testing:tensorflow_job", TENSORFLOW, False, "test TF job in a reused worker",
            reuses_worker=True),
]
KINDS: dict[str, JobKind] = {kind.name: kind for kind in _KINDS}


def kind_of(name: str) -> JobKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UserFacingError(f"Unknown kind of job: {name!r}.") from None
