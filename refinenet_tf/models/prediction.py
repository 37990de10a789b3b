"""The full-resolution prediction graph (multi-scale, mirror averaging), shared by every way of predicting.

Order of operations, the same for evaluation, inference, export and validation during training:

1. the RGB image (uint8 or float, ``[1,H,W,3]``, any size) is preprocessed inside the graph as the
   model description says;
2. for every scale the preprocessed input is resized bilinearly and run through the shared weights;
3. the logits of every scale are resized bilinearly to the size of the scale-1.0 logits (output
   stride 4) and fused element-wise by ``max`` (DeepLab) or ``mean`` (original RefineNet);
4. the fused logits are resized bilinearly to the image size;
5. with ``flip`` steps 2-4 also run on the mirrored image (in the same batch) and its image-size
   logits, mirrored back, are averaged with the plain ones. Mirroring back at image size keeps the
   two maps pixel-aligned whatever the image width;
6. ``probabilities`` = softmax, ``labels`` = argmax.

``logits_os`` is the scale-1.0 logits of the unmirrored image, before any resizing. Whatever the model
computes in, resizing, softmax and argmax run in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.models.model import check_scales, multiscale_logits

v1 = tf.compat.v1


@dataclass(frozen=True)
class PredictOptions:
    """How to predict: input scales (1.0 among them), how their logits are fused, and mirror averaging."""

    scales: tuple[float, ...] = (1.0,)
    fusion: str = "max"
    flip: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(float(scale) for scale in self.scales))
        check_scales(self.scales, self.fusion)
        if 1.0 not in self.scales:
            raise ConfigError(f"{parameter('scales')} must include 1.0 (its logits set the fusion size), got "
                              f"{','.join(f'{scale:g}' for scale in self.scales)}")


SINGLE_SCALE = PredictOptions()


class PredictorTensors(NamedTuple):
    """The graph's input and outputs for one image."""

    image: tf.Tensor  # [1,H,W,3] RGB, uint8 or float in 0..255
    labels: tf.Tensor  # [H,W] int32
    probabilities: tf.Tensor  # [H,W,C] float32
    logits_os: tf.Tensor  # [ceil(H/4),ceil(W/4),C] float32, scale 1.0, unmirrored, not resized


def build_predictor_graph(description: ModelDescription, options: PredictOptions = SINGLE_SCALE,
                          image: tf.Tensor | None = None) -> PredictorTensors:
    """Build the prediction graph in the default graph; ``image`` defaults to a uint8 placeholder ``[1,H,W,3]``."""
    if image is None:
        image = v1.placeholder(tf.uint8, [1, None, None, 3], name="image")
    others = list(options.scales)
    others.remove(1.0)
    scales = (1.0, *others)  # the scale-1.0 logits set the fusion size and are logits_os
    inputs = description.preprocessing.apply(image)
    if options.flip:
        inputs = tf.concat([inputs, tf.reverse(inputs, axis=[2])], axis=0)
    multiscale = multiscale_logits(inputs, description, scales=scales, fusion=options.fusion)
    fused = tf.cast(multiscale.fused, tf.float32)
    logits = tf.image.resize(fused, tf.shape(image)[1:3], method=tf.image.ResizeMethod.BILINEAR)
    logits = 0.5 * (logits[0] + tf.reverse(logits[1], axis=[1])) if options.flip else logits[0]
    return PredictorTensors(
        image=image,
        labels=tf.argmax(logits, axis=-1, output_type=tf.int32),
        probabilities=tf.nn.softmax(logits, axis=-1),
        logits_os=tf.cast(multiscale.per_scale[0][0], tf.float32),
    )
