"""Built-in sample photos for the detector page, from scikit-image's data module
(astronaut, coffee, chelsea the cat): shipped with an installed package, no download."""

from __future__ import annotations

import numpy as np

SAMPLES = {
    "astronaut": "Astronaut Eileen Collins (NASA, public domain)",
    "coffee": "A cup of coffee (Rachel Michetti, CC0)",
    "chelsea": "Chelsea the cat (Stefan van der Walt, CC0)",
}


def load_sample(name: str) -> np.ndarray:
    """RGB uint8 pixels of a sample (scikit-image is imported only here)."""
    if name not in SAMPLES:
        raise KeyError(name)
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)()[..., :3].astype(np.uint8))
