"""Pictures as the page shows and offers them: size-limited, and marked when the weights were random.

A run on random (untrained) VGG19 weights is not a style transfer; every preview, gallery
picture and download of such a run carries a visible band saying so
(:func:`services.provenance.mark_random_weights`). The job folder keeps the unmarked picture,
which a resumed run continues from.
"""

from __future__ import annotations

import numpy as np

from services import provenance
from services.images import display_copy

DISPLAY_SIDE = 1024
"""Longest side of a picture sent to the browser (st.image never gets a giant array)."""


def shown(pixels: np.ndarray, random_weights: bool, max_side: int = DISPLAY_SIDE) -> np.ndarray:
    """What the page shows or offers for download: limited in size, marked when random."""
    limited = display_copy(pixels, max_side)  # services.images: uint8, longest side bounded
    return provenance.mark_random_weights(limited, provenance.STYLE_MARK) if random_weights else limited
