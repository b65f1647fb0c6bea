"""Float images with NaN and infinite pixels (issue 17): their finite pixels keep their values."""

from __future__ import annotations

import io

import numpy as np
import tifffile

from services.images import decode_image, display_copy


def test_float_tiff_with_nan_and_infinity_keeps_its_finite_pixels():
    values = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (64, 1))
    values[:4] = np.nan
    values[4, :4] = np.inf
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, values)
    decoded = decode_image(buffer.getvalue()).pixels[..., 0]
    assert (decoded[:4] == 0).all()  # NaN shown as black
    assert decoded[10, -1] == 255 and 120 <= decoded[10, 32] <= 135  # the rest scaled on the finite range
    shown = display_copy(values)  # the same array handed straight to st.image
    assert (shown[:4] == 0).all() and shown[4, 0] == 255
    assert shown[10, -1] == 255 and 120 <= shown[10, 32] <= 135
