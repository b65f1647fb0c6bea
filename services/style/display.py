"""Pictures as the page shows and offers them: size-limited, and marked when the weights were random.

A run on random (untrained) VGG19 weights is not a style transfer; every preview, gallery
picture and download of such a run carries a visible band saying so (:func:`mark_random`). The
job folder keeps the unmarked picture, which a resumed run continues from.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from services.images import display_copy

RANDOM_MARK = "RANDOM WEIGHTS - not a real style transfer"
MARK_COLOUR, MARK_TEXT = (200, 30, 30), (255, 255, 255)
DISPLAY_SIDE = 1024
"""Longest side of a picture sent to the browser (st.image never gets a giant array)."""


def mark_random(pixels: np.ndarray, text: str = RANDOM_MARK) -> np.ndarray:
    """A copy with a red band across the bottom holding ``text`` (scaled to the picture)."""
    image = Image.fromarray(np.ascontiguousarray(pixels[..., :3])).convert("RGB")
    width, height = image.size
    band = max(10, height // 8)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, height - band, width, height], fill=MARK_COLOUR)
    size = max(8, int(band * 0.6))
    font = ImageFont.load_default(size=size)
    while size > 6 and draw.textlength(text, font=font) > width - 4:
        size -= 1
        font = ImageFont.load_default(size=size)
    draw.text((width / 2, height - band / 2), text, fill=MARK_TEXT, font=font, anchor="mm")
    return np.asarray(image)


def shown(pixels: np.ndarray, random_weights: bool, max_side: int = DISPLAY_SIDE) -> np.ndarray:
    """What the page shows or offers for download: limited in size, marked when random."""
    limited = display_copy(pixels, max_side)  # services.images: uint8, longest side bounded
    return mark_random(limited) if random_weights else limited
