"""Draw detections: class-coloured boxes with an outline that shows on any background, and
labels on a filled tag whose text colour is chosen for contrast."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from services.detection.decode import Detections


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A bright colour per class, spread around the hue circle by the golden ratio."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light tags, white on dark ones (relative luminance)."""
    r, g, b = background
    return (0, 0, 0) if 0.2126 * r + 0.7152 * g + 0.0722 * b > 140 else (255, 255, 255)


def annotate(image: np.ndarray, detections: Detections, names: list[str]) -> np.ndarray:
    """A copy of the RGB image with every detection drawn on it."""
    canvas = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    height, width = image.shape[:2]
    line = max(2, round(max(width, height) / 300))
    font = ImageFont.load_default(size=max(11, round(max(width, height) / 45)))
    for box, score, class_id in zip(detections.boxes, detections.scores, detections.class_ids):
        colour = class_colour(int(class_id))
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle([x1 - line, y1 - line, x2 + line, y2 + line], outline=(0, 0, 0), width=line + 2)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=line)
        name = names[int(class_id)] if 0 <= int(class_id) < len(names) else str(int(class_id))
        label = f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tag_w, tag_h = right - left + 6, bottom - top + 6
        tag_y = y1 - tag_h if y1 - tag_h >= 0 else y1
        tag_x = min(max(0.0, x1), max(0.0, width - tag_w))
        draw.rectangle([tag_x, tag_y, tag_x + tag_w, tag_y + tag_h], fill=colour, outline=(0, 0, 0))
        draw.text((tag_x + 3 - left, tag_y + 3 - top), label, fill=text_colour(colour), font=font)
    return np.asarray(canvas)
