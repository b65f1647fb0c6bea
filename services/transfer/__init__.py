"""Transfer learning (book ch. 4 and 8): compare strategies on the lab's tiles.

- :mod:`services.transfer.models`: strategy B (frozen backbone + head, the book's vgg16_v4 on
  any registry backbone), C (head on cached features) and D (fine-tuning the top block).
- :mod:`services.transfer.features`: the feature cache of strategy C (extract once, reuse).
- :mod:`services.transfer.gradcam`: Grad-CAM heatmaps and intermediate feature maps.
- :mod:`services.transfer.metrics`: accuracy, macro F1, per-class recall, confusion matrix.
- :mod:`services.transfer.report`: the comparison table and its HTML / CSV / JSON export.

Modules that need TensorFlow import it inside functions (through :mod:`services.runtime`).
"""
