"""Rasterising shapes with NumPy, independently of the drawing code under test: point in polygon and distances,
at integer pixel coordinates."""

from __future__ import annotations

import numpy as np


def inside_polygon(points, xs, ys) -> np.ndarray:
    """Whether each pixel coordinate (xs, ys) lies inside the polygon ``points`` (even-odd rule)."""
    inside = np.zeros(xs.shape, bool)
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        crosses = (y0 > ys) != (y1 > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (ys - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (xs < at)
    return inside


def distance_to_segment(a, b, xs, ys) -> np.ndarray:
    """Each pixel coordinate's distance to the segment from ``a`` to ``b``."""
    (ax, ay), (bx, by) = a, b
    t = np.clip(((xs - ax) * (bx - ax) + (ys - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2), 0, 1)
    return np.hypot(xs - (ax + t * (bx - ax)), ys - (ay + t * (by - ay)))


def distance_to_outline(points, xs, ys) -> np.ndarray:
    """Each pixel coordinate's distance to the closed outline of the polygon ``points``."""
    edges = zip(points, list(points[1:]) + list(points[:1]), strict=True)
    return np.min([distance_to_segment(a, b, xs, ys) for a, b in edges], axis=0)
