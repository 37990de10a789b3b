"""Colour maps for painting index masks."""

from __future__ import annotations

import numpy as np

VOID_COLOUR = (224, 224, 192)  # VOC's colour of its void index 255, where the ignore label is painted


def voc_palette(num_colours: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: class bits interleaved into the high bits of R, G and B.

    Returns a ``(num_colours, 3)`` uint8 array; index 0 is black, 1 is (128, 0, 0), 255 is (224, 224, 192).
    """
    palette = np.zeros((num_colours, 3), dtype=np.uint8)
    for index in range(num_colours):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def colourise(mask: np.ndarray, colours: np.ndarray | list | None = None, void_label: int | None = None) -> np.ndarray:
    """Paint an HxW index mask as an HxWx3 uint8 image.

    ``colours`` lists one RGB triple per class (the VOC palette when None); indices beyond the table
    (the ignore label, say) keep their VOC colour so they stay visible. ``void_label`` (unknown pixels) is painted
    :data:`VOID_COLOUR` whatever its index.
    """
    table = voc_palette(256)
    if colours is not None:
        colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
        table[: len(colours)] = colours
    if void_label is not None and 0 <= void_label < len(table):
        table[void_label] = VOID_COLOUR
    mask = np.asarray(mask)
    return table[np.clip(mask, 0, 255).astype(np.int64)]
