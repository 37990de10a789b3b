"""The accuracy guard: int8 against float32 on a labelled list, sensitive layers back to float until the mean IoU
loss is within the tolerance.

Both ONNX models (the float32 one and the int8 one made from it) segment every validation image; each gets a
mean IoU against the masks (:class:`~refinenet_tf.evaluate.metrics.ConfusionMatrix`), and the label agreement is
the share of pixels where the two predict the same class. While int8 loses more than ``tolerance`` points, the
k layers :func:`~refinenet_tf.quantize.sensitivity.rank_layers` ranks worst stay float (k = 1, 2, 4, ...) and the
model is quantized again; when even every ranked layer in float does not meet it, :class:`QuantizationError`
says the best loss reached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from refinenet_tf.data.images import load_mask, load_model_image
from refinenet_tf.data.listfile import Sample
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import QuantizationError
from refinenet_tf.evaluate.metrics import ConfusionMatrix
from refinenet_tf.predict.int8 import OnnxPredictor

_LOG = logging.getLogger(__name__)


@dataclass
class GuardResult:
    """int8 against float32 on the validation images, with the layers kept in float."""

    float_miou: float
    int8_miou: float
    agreement: float  # share of labelled pixels where int8 and float32 predict the same class
    images: int
    float_layers: list[str] = field(default_factory=list)

    @property
    def change_points(self) -> float:
        """int8's mean IoU minus float32's, in points (negative: int8 is worse)."""
        return 100.0 * (self.int8_miou - self.float_miou)

    def to_dict(self, tolerance: float) -> dict:
        """The guard's numbers as JSON-ready values (model.json's ``int8.guard``)."""
        return {"float_miou": self.float_miou, "int8_miou": self.int8_miou, "miou_change_points": self.change_points,
                "agreement": self.agreement, "images": self.images, "tolerance_points": tolerance,
                "layers_in_float": len(self.float_layers), "float_layers": list(self.float_layers)}

    def __str__(self) -> str:
        return (f"float32 mean IoU {100 * self.float_miou:.2f}, int8 {100 * self.int8_miou:.2f} "
                f"({self.change_points:+.2f} points), labels agree on {100 * self.agreement:.2f}% of pixels, "
                f"{len(self.float_layers)} layers in float, {self.images} images")


def compare(float_model: OnnxPredictor, int8_model: OnnxPredictor, samples: Sequence[Sample],
            description: ModelDescription) -> GuardResult:
    """Both models' mean IoU on ``samples`` (images with masks) and their label agreement."""
    num_classes, ignore_label = description.num_classes, description.ignore_label
    confusions = {"float": ConfusionMatrix(num_classes), "int8": ConfusionMatrix(num_classes)}
    agreeing = counted = 0
    for sample in samples:
        image, mask = load_model_image(sample.image_path, description.preprocessing), load_mask(sample.mask_path)
        reference = float_model.predict(image, ("batch_labels",))["batch_labels"][0]
        labels = int8_model.predict(image, ("batch_labels",))["batch_labels"][0]
        confusions["float"].update(mask, reference)
        confusions["int8"].update(mask, labels)
        valid = mask != ignore_label
        agreeing += int(np.count_nonzero((reference == labels) & valid))
        counted += int(np.count_nonzero(valid))
    return GuardResult(confusions["float"].mean_iou(), confusions["int8"].mean_iou(), agreeing / max(counted, 1),
                       len(samples))


def guarded(quantize: Callable[[list[str]], GuardResult], rank: Callable[[], list[str]], tolerance: float,
            source: str) -> GuardResult:
    """Quantize (``quantize(float_layers)`` makes and measures a model) until the loss is within ``tolerance``
    points, keeping the ``rank()`` layers in float k = 1, 2, 4, ... at a time; ``source`` names the list."""
    result = best = quantize([])
    _LOG.info("int8: %s", result)
    ranked: list[str] | None = None
    while -result.change_points > tolerance:
        ranked = rank() if ranked is None else ranked
        if len(result.float_layers) >= len(ranked):
            raise QuantizationError(
                f"{source}: int8 cannot meet the tolerance of {tolerance:g} mean IoU points: the best loss was "
                f"{-best.change_points:.2f} points with {len(best.float_layers)} of {len(ranked)} layers in float")
        result = quantize(ranked[:min(len(ranked), max(1, 2 * len(result.float_layers)))])
        best = result if result.change_points > best.change_points else best
        _LOG.info("int8: %s", result)
    return result
