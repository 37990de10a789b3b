"""From per-class probabilities to labels: the argmax, or a :class:`LabelRule` (a foreground threshold for two-class
models, a minimum confidence below which a pixel is "unknown").

Every place that makes labels from probabilities under a rule (whole images, tiled images band by band, dense-CRF
marginals, evaluation) calls :func:`labels_from_probabilities`. Without a rule the graph's own argmax stays the fast
path and nothing changes.

**Threshold** ``T`` (two-class models only: class 0 background, class 1 foreground): a pixel is foreground where the
foreground probability is at least ``T``; ``T = 0.5`` is the argmax, except that an exact tie goes to the foreground.

**Minimum confidence** ``P``: a pixel whose top class probability is below ``P`` is unknown, and gets the model's
ignore label (painted in the void colour). With both, the threshold chooses the class and the top probability
(whichever class holds it) decides whether the pixel is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refinenet_tf.errors import ConfigError, parameter

FOREGROUND = 1  # the foreground class of a two-class model (0 is the background)


@dataclass(frozen=True)
class LabelRule:
    """How probabilities become labels: ``threshold`` on the foreground probability (0 < T < 1, two-class models)
    and ``min_confidence`` on the top probability (0 <= P <= 1); None leaves that part to the argmax."""

    threshold: float | None = None
    min_confidence: float | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0 < _number(self.threshold, "threshold") < 1:
            raise ConfigError(f"{parameter('threshold')} must lie strictly between 0 and 1, got {self.threshold}")
        if self.min_confidence is not None and not 0 <= _number(self.min_confidence, "min_confidence") <= 1:
            raise ConfigError(f"{parameter('min_confidence')} must lie between 0 and 1, got {self.min_confidence}")

    def settings(self) -> dict[str, float]:
        """The parts that are set, by name (what results.json records)."""
        return {name: float(value) for name, value in (("threshold", self.threshold),
                                                       ("min_confidence", self.min_confidence)) if value is not None}

    def check_classes(self, num_classes: int) -> None:
        """Refuse a threshold for a model that is not two-class (ConfigError)."""
        if self.threshold is not None and num_classes != 2:
            raise ConfigError(f"{parameter('threshold')} applies to two-class models (background, foreground); this "
                              f"model has {num_classes} classes (use {parameter('min_confidence')} for unsure pixels)")


def active(rule: LabelRule | None) -> bool:
    """Whether ``rule`` changes anything: it is given and sets a threshold or a minimum confidence."""
    return rule is not None and bool(rule.settings())


def labels_from_probabilities(probabilities: np.ndarray, rule: LabelRule | None, ignore_label: int) -> np.ndarray:
    """int32 labels of probabilities ``(..., C)`` under ``rule`` (the argmax when it sets nothing); unknown pixels get
    ``ignore_label``."""
    if not active(rule):
        return probabilities.argmax(axis=-1).astype(np.int32)
    rule.check_classes(probabilities.shape[-1])
    if rule.threshold is None:
        labels = probabilities.argmax(axis=-1).astype(np.int32)
    else:
        labels = (probabilities[..., FOREGROUND] >= rule.threshold).astype(np.int32)
    if rule.min_confidence is not None:
        labels[probabilities.max(axis=-1) < rule.min_confidence] = ignore_label
    return labels


def _number(value, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{parameter(name)} must be a number, got {value!r}") from None
