"""Provenance: the words, labels and picture marks that say a model's weights were random.

The one owner of

- the weights words a caller asks for (:data:`IMAGENET`, :data:`RANDOM`: ``load_backbone``,
  style settings, transfer specs, job parameters);
- the label a run records for weights that started random (:data:`RANDOM_INIT`, derived by
  :func:`weights_label` for the training worker, the run overview and the transfer strategies);
- the band painted on a picture made with random weights (:func:`mark_random_weights`, used by
  the detector, batch detection and style transfer), so a download can never pass for a real
  result.

Synthetic *data* is recorded where the data is (``DatasetInfo.is_synthetic``, a run's
``synthetic`` column, a map's ``synthetic`` metadata) and shown by ``dashboard.widgets``'
badges. No Streamlit, no TensorFlow here.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

IMAGENET, RANDOM = "imagenet", "random"
"""A backbone's weights as a caller asks for them: ImageNet's, or an explicit random initialisation."""
RANDOM_INIT = "random init"
"""The label recorded (run summary, results tables, reports) for weights that started random."""
_RANDOM_WORDS = (None, "", RANDOM, "none")

DETECTION_MARK = "RANDOM WEIGHTS - detections meaningless"
STYLE_MARK = "RANDOM WEIGHTS - not a real style transfer"
MARK_COLOUR, MARK_TEXT_COLOUR = (255, 140, 0), (0, 0, 0)


def weights_label(weights: Any) -> str:
    """The label of a run's starting weights: :data:`RANDOM_INIT` when they were random (or none
    were given), else the word as recorded (``"imagenet"``, a file...)."""
    return RANDOM_INIT if weights in _RANDOM_WORDS else str(weights)


def mark_random_weights(image: np.ndarray, text: str = DETECTION_MARK) -> np.ndarray:
    """A writable RGB copy of ``image`` with a banner across the top holding ``text``."""
    marked = np.array(Image.fromarray(np.ascontiguousarray(image)).convert("RGB"))
    banner = _banner(marked.shape[1], text)
    rows = min(len(banner), len(marked))
    marked[:rows] = banner[:rows]
    return marked


@functools.lru_cache(maxsize=32)
def _banner(width: int, text: str) -> np.ndarray:
    """The banner strip of an image ``width`` wide (it covers whatever was there, so it is drawn
    once per width and pasted; rendering the text costs about 10 ms)."""
    font = ImageFont.load_default(size=max(10, min(48, round(width / 28))))
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
    height = bottom - top + 10
    canvas = Image.new("RGB", (width, height + 1))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([0, 0, width, height], fill=MARK_COLOUR)
    draw.text((max(4, (width - (right - left)) // 2) - left, 5 - top), text, fill=MARK_TEXT_COLOUR, font=font)
    strip = np.asarray(canvas)
    strip.flags.writeable = False
    return strip
