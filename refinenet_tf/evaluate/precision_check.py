"""How much bfloat16 changes a model's answers: label agreement with float32 and the change in mean IoU.

Both precisions run the same checkpoint on the same labelled images through the Predictor; only pixels
labelled with a class count towards the scores, every pixel towards the agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from refinenet_tf.data.images import load_pair
from refinenet_tf.data.listfile import Sample
from refinenet_tf.description import ModelDescription
from refinenet_tf.evaluate.metrics import ConfusionMatrix
from refinenet_tf.predict.predictor import Predictor


@dataclass(frozen=True)
class PrecisionComparison:
    """bfloat16 against float32 on a set of images."""

    images: int
    label_agreement: float  # fraction of pixels with the same label
    mean_iou_float32: float
    mean_iou_bfloat16: float

    @property
    def mean_iou_change_points(self) -> float:
        """bfloat16's mean IoU minus float32's, in percentage points."""
        return 100.0 * (self.mean_iou_bfloat16 - self.mean_iou_float32)


def compare_precisions(checkpoint: str, samples: Sequence[Sample], description: ModelDescription,
                       threads: int | None = None) -> PrecisionComparison:
    """Run ``samples`` (image and mask each) in float32 and in bfloat16 and compare the answers."""
    confusions = {precision: ConfusionMatrix(description.num_classes) for precision in ("float32", "bfloat16")}
    same = total = 0
    with Predictor(checkpoint, description, threads=threads) as float32, \
            Predictor(checkpoint, description, threads=threads, precision="bfloat16") as bfloat16:
        for sample in samples:
            image, mask = load_pair(sample.image_path, sample.mask_path, description.num_classes,
                                    description.ignore_label)
            labels = {name: predictor.predict(image, ("labels",)).labels
                      for name, predictor in (("float32", float32), ("bfloat16", bfloat16))}
            for name, predicted in labels.items():
                confusions[name].update(mask, predicted)
            same += int(np.count_nonzero(labels["float32"] == labels["bfloat16"]))
            total += mask.size
    return PrecisionComparison(len(samples), same / max(total, 1), confusions["float32"].mean_iou(),
                               confusions["bfloat16"].mean_iou())
