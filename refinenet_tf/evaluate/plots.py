"""The evaluation report's charts, drawn with matplotlib (the optional ``[report]`` extra) into PNG files.

Figures are made with matplotlib's object interface and its Agg canvas, never ``pyplot``, so drawing a
report changes no global matplotlib state (a notebook's backend stays as it was).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from refinenet_tf.errors import ConfigError

INSTALL_HINT = 'pip install "refinenet_tf[report]"'
DPI = 100
_ANNOTATED_CLASSES = 25  # heat maps of more classes are too dense to print a number in every cell


def require_matplotlib() -> None:
    """Refuse, in one line, to draw a report without matplotlib."""
    _figure_class()


def has_matplotlib() -> bool:
    """True when matplotlib can be imported (the report can be drawn)."""
    try:
        _figure_class()
    except ConfigError:
        return False
    return True


def class_scores_chart(path: str, names: Sequence[str], colours: np.ndarray, iou: Sequence[float | None],
                       accuracy: Sequence[float | None], title: str) -> None:
    """Horizontal bars of per-class IoU (solid) and accuracy (hatched) in %, best IoU on top, n/a classes last."""
    order = sorted(range(len(names)), key=lambda index: (_missing(iou[index]), -(iou[index] or 0.0), index))
    figure = _figure(7.5, 0.9 + 0.42 * len(names))
    axes = figure.add_subplot()
    positions = np.arange(len(order))[::-1]
    for position, index in zip(positions, order, strict=True):
        colour = tuple(float(value) / 255 for value in colours[index])
        for offset, value, hatch in ((0.19, iou[index], None), (-0.19, accuracy[index], "///")):
            if _missing(value):
                axes.text(1, position + offset, "n/a", va="center", fontsize=8)
                continue
            axes.barh(position + offset, 100 * value, height=0.36, color=colour, edgecolor="black", linewidth=0.6,
                      hatch=hatch)
            axes.text(100 * value + 1, position + offset, f"{100 * value:.1f}", va="center", fontsize=8)
    axes.set_yticks(positions, [names[index] for index in order])
    axes.set_xlim(0, 112)
    axes.set_xlabel("% (solid: IoU, hatched: accuracy)")
    axes.set_title(title)
    _save(figure, path)


def confusion_heat_map(path: str, names: Sequence[str], confusion: np.ndarray, title: str) -> None:
    """The confusion matrix with each ground-truth row divided by its pixel count (blank rows: class absent)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(axis=1, keepdims=True)
    shares = np.divide(confusion, totals, out=np.full_like(confusion, np.nan), where=totals > 0)
    side = 2.5 + 0.45 * len(names)
    figure = _figure(side + 1.2, side)
    axes = figure.add_subplot()
    image = axes.imshow(np.ma.masked_invalid(shares), cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = np.arange(len(names))
    axes.set_xticks(ticks, names, rotation=60, ha="right")
    axes.set_yticks(ticks, names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("ground-truth class")
    axes.set_title(title)
    if len(names) <= _ANNOTATED_CLASSES:
        for (row, column), share in np.ndenumerate(shares):
            if not math.isnan(share):
                axes.text(column, row, f"{100 * share:.0f}", ha="center", va="center", fontsize=7,
                          color="white" if share > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the row's pixels")
    _save(figure, path)


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def _figure_class():
    try:
        from matplotlib.figure import Figure  # deferred: matplotlib is optional (the [report] extra)
    except ImportError:
        raise ConfigError(f"the HTML report draws its charts with matplotlib, which is not installed: "
                          f"{INSTALL_HINT}") from None
    return Figure


def _figure(width: float, height: float):
    figure = _figure_class()(figsize=(width, height), dpi=DPI)
    figure.set_layout_engine("constrained")
    return figure


def _save(figure, path: str) -> None:
    try:
        figure.savefig(path, format="png", dpi=DPI)
    except OSError as error:
        raise ConfigError(f"{path}: cannot write the chart ({error.strerror or error})") from None
