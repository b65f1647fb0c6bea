"""Class regions of a map as GeoJSON that QuPath imports (one feature per region).

A region is a 4-connected set of map cells of one class. Its outline is traced exactly along the
cell edges (no smoothing, so the polygons cover the labelled cells and nothing else); holes
become interior rings. Coordinates are image pixels of the full-resolution image (x right, y
down, as QuPath expects); exterior rings have positive shoelace area, holes negative.
"""

from __future__ import annotations

import numpy as np

Point = tuple[int, int]


def _boundary_edges(mask: np.ndarray) -> dict[Point, list[Point]]:
    """Directed cell edges with the region on their right (screen coordinates), start -> ends."""
    padded = np.pad(mask, 1)
    inside = padded[1:-1, 1:-1]
    outgoing: dict[Point, list[Point]] = {}

    def add(rows, cols, start, end):
        for r, c in zip(rows.tolist(), cols.tolist()):
            outgoing.setdefault((c + start[0], r + start[1]), []).append((c + end[0], r + end[1]))

    add(*np.nonzero(inside & ~padded[:-2, 1:-1]), (0, 0), (1, 0))   # top, heading east
    add(*np.nonzero(inside & ~padded[1:-1, 2:]), (1, 0), (1, 1))    # right, heading south
    add(*np.nonzero(inside & ~padded[2:, 1:-1]), (1, 1), (0, 1))    # bottom, heading west
    add(*np.nonzero(inside & ~padded[1:-1, :-2]), (0, 1), (0, 0))   # left, heading north
    return outgoing


def _next_point(point: Point, heading: Point, candidates: list[Point]) -> Point:
    """At a vertex with two ways on, turn right first (keeps diagonal neighbours apart)."""
    if len(candidates) == 1:
        return candidates[0]
    dx, dy = heading
    for turn in ((-dy, dx), (dx, dy), (dy, -dx)):  # right, straight, left (y down)
        target = (point[0] + turn[0], point[1] + turn[1])
        if target in candidates:
            return target
    return candidates[0]


def _simplify(ring: list[Point]) -> list[Point]:
    """Drop points in the middle of straight runs; the ring is closed (first == last)."""
    points = ring[:-1]
    kept = []
    for i, point in enumerate(points):
        before, after = points[i - 1], points[(i + 1) % len(points)]
        if (point[0] - before[0]) * (after[1] - point[1]) != (point[1] - before[1]) * (after[0] - point[0]):
            kept.append(point)
    return kept + kept[:1]


def trace_rings(mask: np.ndarray) -> list[list[Point]]:
    """Closed rings (first point repeated at the end) around the cells of ``mask``.

    Each ring starts at a vertex with a single way on, so it closes at its first return there.
    """
    outgoing = _boundary_edges(np.asarray(mask, bool))
    rings = []
    while outgoing:
        simple = [p for p, ends in outgoing.items() if len(ends) == 1]
        start = min(simple or outgoing, key=lambda p: (p[1], p[0]))
        ring, point, heading = [start], start, None
        while True:
            candidates = outgoing[point]
            target = candidates[0] if heading is None else _next_point(point, heading, candidates)
            candidates.remove(target)
            if not candidates:
                del outgoing[point]
            heading = (target[0] - point[0], target[1] - point[1])
            ring.append(target)
            point = target
            if point == start:
                break
        rings.append(_simplify(ring))
    return rings


def ring_area(ring: list[Point]) -> float:
    """Shoelace area: positive for exterior rings, negative for holes (see module docstring)."""
    xs = np.array([p[0] for p in ring], float)
    ys = np.array([p[1] for p in ring], float)
    return float((xs[:-1] * ys[1:] - xs[1:] * ys[:-1]).sum() / 2.0)


def region_polygons(mask: np.ndarray) -> list[list[list[Point]]]:
    """One polygon (exterior ring, then holes) per 4-connected region of ``mask``."""
    from scipy import ndimage

    labelled, count = ndimage.label(mask)
    polygons = []
    for index, box in enumerate(ndimage.find_objects(labelled), start=1):
        if box is None:
            continue
        crop = labelled[box] == index
        rings = trace_rings(crop)
        offset = (box[1].start, box[0].start)
        rings = [[(x + offset[0], y + offset[1]) for x, y in ring] for ring in rings]
        rings.sort(key=ring_area, reverse=True)
        polygons.append(rings)
    return polygons


def feature_collection(labels: np.ndarray, classes: list[str], colours: dict[str, tuple[int, int, int]], *,
                       scale: float, synthetic: bool = False) -> dict:
    """GeoJSON FeatureCollection: one QuPath annotation per region, classified by its class name.

    ``scale``: full-resolution image pixels per map cell."""
    features = []
    for index, name in enumerate(classes):
        for rings in region_polygons(labels == index):
            properties = {"objectType": "annotation", "name": name,
                          "classification": {"name": name, "color": list(colours[name])}, "isLocked": False,
                          "cells": int(round(sum(ring_area(r) for r in rings)))}
            if synthetic:
                properties["note"] = "model trained on synthetic data"
            coordinates = [[[round(x * scale, 2), round(y * scale, 2)] for x, y in ring] for ring in rings]
            features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": coordinates},
                             "properties": properties})
    return {"type": "FeatureCollection", "features": features}
