"""Transfer learning (book ch. 4 and 8): compare strategies on the lab's tiles.

- :mod:`services.transfer.spec`: what a comparison is asked to run (:class:`ExperimentSpec`, :func:`plan`).
- :mod:`services.transfer.experiments`: the comparison's job body (kind ``transfer``) and its result rows.
- :mod:`services.transfer.models`: strategy B (frozen backbone + head, the book's vgg16_v4 on
  any registry backbone), C (head on cached features; Flatten or global average pooling) and D
  (fine-tuning the top block).
- :mod:`services.transfer.strategy_c`: strategy C inside the comparison job.
- :mod:`services.transfer.features`: the feature cache of strategy C (extract once, reuse).
- :mod:`services.transfer.crossval`: k-fold cross-validation grouped by source image.
- :mod:`services.transfer.crossdataset`: scoring on another tile set through an explicit class mapping.
- :mod:`services.transfer.graph`: running any Keras classifier with access to its inner layers.
- :mod:`services.transfer.gradcam`: Grad-CAM heatmaps and intermediate feature maps.
- :mod:`services.transfer.service_ops`: the model service's ``keras.*`` operations.
- :mod:`services.transfer.metrics`: accuracy, macro F1, per-class recall, confusion matrix.
- :mod:`services.transfer.report`: the comparison table and its HTML / CSV / JSON export.

Modules that need TensorFlow import it inside functions (through :mod:`services.runtime`).
"""
