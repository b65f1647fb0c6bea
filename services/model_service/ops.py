"""Every operation the model service answers: name -> ``"module:function"``.

An operation is ``def op(cache, args, arrays) -> (result_dict, arrays_dict)``; the service imports
its module on first use (inside the service process, where TensorFlow may be imported).
"""

from __future__ import annotations

OPS: dict[str, str] = {
    "system.ping": "services.model_service.system_ops:ping",
    "system.devices": "services.model_service.system_ops:devices",
    "system.matmul_probe": "services.model_service.system_ops:matmul_probe",
    "system.shutdown": "services.model_service.system_ops:shutdown",
    "system.crash": "services.model_service.system_ops:crash",  # tests only: kills the service
    "system.sleep": "services.model_service.system_ops:sleep",  # tests only
    # Saved Keras classifiers (training runs, transfer comparisons, tissue maps).
    "keras.describe": "services.transfer.service_ops:describe",
    "keras.inspect_tile": "services.transfer.service_ops:inspect_tile",
    "keras.feature_maps": "services.transfer.service_ops:feature_maps",
    "keras.classify": "services.transfer.service_ops:classify",
    # The training monitor's ch. 3 view: first-layer kernels and feature maps of a tile.
    "training.first_layer": "services.training.service_ops:first_layer",
    # The Dataset explorer's augmentation preview.
    "datasets.augment_preview": "services.datasets.service_ops:augment_preview",
    # Darknet YOLO on the TensorFlow backend.
    "darknet.describe": "services.detection.service_ops:describe",
    "darknet.detect": "services.detection.service_ops:detect",
}
