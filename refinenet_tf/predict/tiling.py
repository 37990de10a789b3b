"""Sliding-window (tiled) prediction: memory bounded by the window, not by the image.

**Windows.** Each axis of the image is covered by windows of the tile's size whose starts are ``step`` apart,
``step`` being the tile times ``1 - overlap`` rounded down to the output stride (4), the last window flush with
the end; an image shorter than the tile along an axis gets one window, rounded up to a multiple of 32. Pixels a
window has beyond the image are the colour the preprocessing maps to zero (the mean), which is what the
network's own zero padding shows it around a whole image.

**Blending.** Every window yields its stride-4 logits, already fused over the scales and mirroring as the
whole-image graph fuses them (the Predictor's ``fused_logits``). They are added into a stride-4 canvas, each
cell weighted by a separable Hann window floored at :data:`EDGE_WEIGHT` (reached at the window's border), and the
canvas is divided by the summed weights: a cell near one window's edge takes its value from the window that
sees it in the middle.

**Output.** The canvas is resized to the image size bilinearly with the whole-image graph's alignment
(half-pixel centres, ``ceil(H/4)`` cells onto ``H`` pixels) one band of rows at a time, so labels,
probabilities and the dense CRF never need an ``H x W x C`` array: a band of rows is at most
:data:`BAND_BYTES`.

**Dense CRF.** The CRF runs on bands of rows too: each band is refined together with :func:`crf_margin` rows
above and below it (three standard deviations of the widest CRF kernel), whose results are dropped. Pixels
further apart than the margin do not influence each other, which changes the CRF's result only where its
kernels are already negligible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from refinenet_tf.defaults import IGNORE_LABEL
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.predict.crf import CRFParams, CRFPool
from refinenet_tf.predict.decision import LabelRule, active, labels_from_probabilities

AUTO = "auto"  # tile only images too large for memory
OUTPUT_STRIDE = 4  # the logits' stride: windows start on its grid
TILE_MULTIPLE = 32  # the network's deepest stride: a tile is a whole number of its cells
MIN_TILE = 32
EDGE_WEIGHT = 0.01  # the blending weight at a window's border, relative to 1 at its centre
BAND_BYTES = 32 * 2**20  # float32 logits of one band of rows at the image size
CRF_BAND_PIXELS = 4 * 2**20  # pixels of one CRF band, its margins included


def check_tile_setting(tile) -> tuple[int, int] | str | None:
    """A ``tile`` argument checked: None (whole images), ``'auto'`` or ``(height, width)`` (see :func:`check_tile`)."""
    if tile is None or (isinstance(tile, str) and tile == AUTO):
        return tile
    return check_tile(tile)


def auto_tile(image_size: tuple[int, int], bytes_per_pixel: float, budget: float) -> tuple[int, int] | None:
    """None when predicting the whole image needs at most ``budget`` bytes at ``bytes_per_pixel``, else the
    largest square tile (a multiple of 32) that does."""
    if image_size[0] * image_size[1] * bytes_per_pixel <= budget:
        return None
    side = max(MIN_TILE, int(math.sqrt(budget / bytes_per_pixel)) // TILE_MULTIPLE * TILE_MULTIPLE)
    return side, side


def check_tile(tile) -> tuple[int, int]:
    """``(height, width)`` of a tile, checked: at least 32 pixels and a multiple of 32 (ConfigError)."""
    try:
        if isinstance(tile, str):
            raise TypeError(tile)
        height, width = (int(value) for value in tile)
    except (TypeError, ValueError):
        raise ConfigError(f"{parameter('tile')} must be (height, width) or 'auto', got {tile!r}") from None
    for value in (height, width):
        if value < MIN_TILE:
            raise ConfigError(f"{parameter('tile')} {height},{width} is too small: each side needs at least "
                              f"{MIN_TILE} pixels")
        if value % TILE_MULTIPLE:
            raise ConfigError(f"{parameter('tile')} {height},{width} must be a multiple of {TILE_MULTIPLE} "
                              f"(the network's deepest stride), e.g. {_round_up(height, TILE_MULTIPLE)},"
                              f"{_round_up(width, TILE_MULTIPLE)}")
    return height, width


def check_overlap(overlap) -> float:
    """The fraction of a tile that neighbouring windows share, checked to lie in [0, 1) (ConfigError)."""
    try:
        value = float(overlap)
    except (TypeError, ValueError):
        raise ConfigError(f"{parameter('tile_overlap')} must be a number in [0, 1), got {overlap!r}") from None
    if not 0 <= value < 1:
        raise ConfigError(f"{parameter('tile_overlap')} must be at least 0 and below 1, got {overlap}")
    return value


@dataclass(frozen=True)
class TilePlan:
    """Where the windows go: their starts along each axis (every combination is a window), in the padded image."""

    image_size: tuple[int, int]
    padded_size: tuple[int, int]  # multiples of the output stride, covering the image and at least one window
    window: tuple[int, int]
    row_starts: tuple[int, ...]
    column_starts: tuple[int, ...]

    @property
    def windows(self) -> list[tuple[int, int]]:
        """``(top, left)`` of every window, row by row."""
        return [(top, left) for top in self.row_starts for left in self.column_starts]


def plan_tiles(image_size: tuple[int, int], tile: tuple[int, int], overlap: float) -> TilePlan:
    """The windows covering an image of ``image_size`` (height, width) with ``tile`` and ``overlap``."""
    tile, overlap = check_tile(tile), check_overlap(overlap)
    axes = [_plan_axis(length, size, overlap) for length, size in zip(image_size, tile, strict=True)]
    return TilePlan(tuple(int(v) for v in image_size), (axes[0][0], axes[1][0]), (axes[0][1], axes[1][1]),
                    axes[0][2], axes[1][2])


def _plan_axis(length: int, tile: int, overlap: float) -> tuple[int, int, tuple[int, ...]]:
    """(padded length, window length, window starts) along one axis."""
    window = min(tile, _round_up(length, TILE_MULTIPLE))
    padded = max(_round_up(length, OUTPUT_STRIDE), window)
    step = max(OUTPUT_STRIDE, int(window * (1 - overlap)) // OUTPUT_STRIDE * OUTPUT_STRIDE)
    count = math.ceil((padded - window) / step) + 1
    return padded, window, tuple(min(index * step, padded - window) for index in range(count))


def blend_weights(height: int, width: int) -> np.ndarray:
    """Separable Hann weights of a window of ``height x width`` logit cells: 1 in the middle, falling to
    :data:`EDGE_WEIGHT` at the border (float32)."""

    def hann(length: int) -> np.ndarray:
        return np.sin(np.pi * (np.arange(length) + 0.5) / length) ** 2

    return np.maximum(np.outer(hann(height), hann(width)), EDGE_WEIGHT).astype(np.float32)


def window_pixels(image: np.ndarray, top: int, left: int, size: tuple[int, int], fill: np.ndarray) -> np.ndarray:
    """The ``size`` window of ``image`` at (top, left); where it leaves the image it holds ``fill`` (one value per
    band, in the image's type)."""
    window = np.empty((*size, image.shape[-1]), image.dtype)
    window[...] = fill
    inside = image[top:top + size[0], left:left + size[1]]
    window[:inside.shape[0], :inside.shape[1]] = inside
    return window


class LogitMap:
    """Logits at output stride 4 for an image of ``image_size``, read at the image size in bands of rows.

    ``logits`` holds at least ``ceil(H/4) x ceil(W/4)`` cells (more are ignored); they map onto the image as the
    whole-image graph's bilinear resize maps them (half-pixel centres).
    """

    def __init__(self, logits: np.ndarray, image_size: tuple[int, int]):
        height, width = image_size
        self.image_size = (int(height), int(width))
        self.logits = logits[:-(-height // OUTPUT_STRIDE), :-(-width // OUTPUT_STRIDE)]
        self.num_classes = logits.shape[-1]
        self._columns = _bilinear_taps(self.logits.shape[1], width)

    def band_rows(self) -> int:
        """Rows per band: a band of float32 logits at the image width stays within :data:`BAND_BYTES`."""
        return max(1, BAND_BYTES // (4 * self.image_size[1] * self.num_classes))

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Logits of image rows ``start:stop`` at the image width, float32 ``(stop - start, W, C)``."""
        lower, upper, lerp = _bilinear_taps(self.logits.shape[0], self.image_size[0], start, stop)
        first = int(lower.min())
        slab = self.logits[first:int(upper.max()) + 1]
        rows = _lerp(slab[lower - first], slab[upper - first], lerp[:, None, None])
        lower, upper, lerp = self._columns
        return _lerp(rows[:, lower], rows[:, upper], lerp[None, :, None])

    def bands(self, rows: int | None = None) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` of consecutive bands of ``rows`` image rows (default :meth:`band_rows`)."""
        rows = rows or self.band_rows()
        for start in range(0, self.image_size[0], rows):
            yield start, min(start + rows, self.image_size[0])

    def labels(self, rule: LabelRule | None = None, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
        """The class of every pixel, int32 ``(H, W)``: the argmax of the resized logits, or with a ``rule`` its
        labels of the probabilities (unknown pixels ``ignore_label``)."""
        if active(rule):
            return _collected_labels(self.image_size, self.probability_bands(), rule, ignore_label)
        labels = np.empty(self.image_size, np.int32)
        for start, stop in self.bands():
            labels[start:stop] = self.rows(start, stop).argmax(axis=-1)
        return labels

    def probabilities(self, start: int, stop: int) -> np.ndarray:
        """Softmax probabilities of image rows ``start:stop``, float32 ``(stop - start, W, C)``."""
        return softmax(self.rows(start, stop))

    def probability_bands(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, probabilities)`` of consecutive bands covering the image."""
        for start, stop in self.bands():
            yield start, self.probabilities(start, stop)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, float32, computed in place on a copy."""
    values = np.array(logits, np.float32)
    values -= values.max(axis=-1, keepdims=True)
    np.exp(values, out=values)
    values /= values.sum(axis=-1, keepdims=True)
    return values


def tiled_logits(predict_windows: Callable[[np.ndarray], np.ndarray], image: np.ndarray, plan: TilePlan,
                 fill_value, batch_size: int = 1) -> LogitMap:
    """Predict ``image`` (HxWxbands: uint8 RGB, or the model's bands) window by window and blend the windows'
    stride-4 logits.

    ``predict_windows`` maps windows ``[N, h, w, bands]`` to their stride-4 logits ``[N, h/4, w/4, C]``; it is
    called with up to ``batch_size`` windows at a time. ``fill_value`` (per band) fills pixels beyond the image.
    """
    if batch_size < 1:
        raise ConfigError(f"{parameter('batch_size')} must be at least 1, got {batch_size}")
    fill = np.asarray(fill_value, np.float64)
    if np.issubdtype(image.dtype, np.integer):
        limits = np.iinfo(image.dtype)
        fill = np.clip(np.round(fill), limits.min, limits.max)
    fill = fill.astype(image.dtype)
    cells = (plan.window[0] // OUTPUT_STRIDE, plan.window[1] // OUTPUT_STRIDE)
    weights = blend_weights(*cells)
    canvas, total = None, np.zeros([size // OUTPUT_STRIDE for size in plan.padded_size], np.float32)
    windows = plan.windows
    for first in range(0, len(windows), batch_size):
        chosen = windows[first:first + batch_size]
        logits = predict_windows(np.stack([window_pixels(image, top, left, plan.window, fill)
                                           for top, left in chosen]))
        if canvas is None:
            canvas = np.zeros((*total.shape, logits.shape[-1]), np.float32)
        for (top, left), window_logits in zip(chosen, logits, strict=True):
            rows = slice(top // OUTPUT_STRIDE, top // OUTPUT_STRIDE + cells[0])
            columns = slice(left // OUTPUT_STRIDE, left // OUTPUT_STRIDE + cells[1])
            canvas[rows, columns] += window_logits * weights[..., None]
            total[rows, columns] += weights
    canvas /= total[..., None]
    return LogitMap(canvas, plan.image_size)


def crf_margin(params: CRFParams) -> int:
    """Rows refined beside a CRF band and dropped: three standard deviations of the widest spatial kernel."""
    return math.ceil(3 * max(params.gaussian_sxy, params.bilateral_sxy))


def crf_marginal_bands(logits: LogitMap, image: np.ndarray, pool: CRFPool) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, dense-CRF marginals)`` of consecutive bands of rows covering the image, float32
    ``(rows, W, C)``, each band refined with its margins (see the module's description); ``pool`` runs the
    bands, in parallel when it has workers."""
    height, width = logits.image_size
    margin = crf_margin(pool.params)
    rows = max(OUTPUT_STRIDE, CRF_BAND_PIXELS // width - 2 * margin)

    def items():
        for start in range(0, height, rows):
            stop = min(start + rows, height)
            top, bottom = max(0, start - margin), min(height, stop + margin)
            yield (start, stop, top), logits.probabilities(top, bottom), image[top:bottom]

    for (start, stop, top), marginals in pool.map_tagged(items()):
        yield start, marginals[start - top:stop - top]


def argmax_into(labels: np.ndarray, bands: Iterable[tuple[int, np.ndarray]], rule: LabelRule | None = None,
                ignore_label: int = IGNORE_LABEL) -> Iterator[tuple[int, np.ndarray]]:
    """Pass ``(first row, probabilities)`` bands through, writing each band's argmax (or with a ``rule`` its labels,
    see :func:`~refinenet_tf.predict.decision.labels_from_probabilities`) into its rows of ``labels``."""
    for start, probabilities in bands:
        labels[start:start + len(probabilities)] = labels_from_probabilities(probabilities, rule, ignore_label)
        yield start, probabilities


def crf_labels(logits: LogitMap, image: np.ndarray, pool: CRFPool, rule: LabelRule | None = None,
               ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """Dense-CRF labels of an image from its :class:`LogitMap`, int32 ``(H, W)`` (see
    :func:`crf_marginal_bands`), under ``rule`` when given."""
    return _collected_labels(logits.image_size, crf_marginal_bands(logits, image, pool), rule, ignore_label)


def _collected_labels(image_size: tuple[int, int], bands: Iterable[tuple[int, np.ndarray]], rule: LabelRule | None,
                      ignore_label: int) -> np.ndarray:
    """The labels of every probability band (see :func:`argmax_into`), int32 ``image_size``."""
    labels = np.empty(image_size, np.int32)
    for _ in argmax_into(labels, bands, rule, ignore_label):
        pass
    return labels


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


def _lerp(lower: np.ndarray, upper: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    result = upper - lower
    result *= fraction
    result += lower
    return result


def _bilinear_taps(cells: int, size: int, start: int = 0, stop: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For output positions ``start:stop`` of a bilinear resize of ``cells`` values to ``size`` with half-pixel
    centres (as ``tf.image.resize``): the lower and upper source indices and the upper one's weight."""
    positions = (np.arange(start, size if stop is None else stop) + 0.5) * (cells / size) - 0.5
    floor = np.floor(positions)
    lower = np.maximum(floor, 0).astype(np.intp)
    upper = np.minimum(np.ceil(positions), cells - 1).astype(np.intp)
    return lower, upper, (positions - floor).astype(np.float32)
