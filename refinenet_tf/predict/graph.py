"""The full-resolution prediction graph (multi-scale, mirror averaging), shared by every way of predicting.

Order of operations, the same for evaluation, inference, export and validation during training:

1. the images (``[N,H,W,bands]``, any size, usually N=1: uint8 RGB, or the bands and type the model description
   names) are preprocessed inside the graph as the model description says;
2. for every scale the preprocessed input is resized bilinearly and run through the shared weights;
3. the logits of every scale are resized bilinearly to the size of the scale-1.0 logits (output
   stride 4) and fused element-wise by ``max`` (DeepLab) or ``mean`` (original RefineNet);
4. the fused logits are resized bilinearly to the image size;
5. with ``flip`` steps 2-4 also run on the mirrored image (in the same batch) and its image-size
   logits, mirrored back, are averaged with the plain ones. Mirroring back at image size keeps the
   two maps pixel-aligned whatever the image width;
6. ``probabilities`` = softmax, ``labels`` = argmax.

``logits_os`` is the scale-1.0 logits of the unmirrored image, before any resizing; ``fused_logits`` the
fused logits at output stride 4, averaged with the mirrored image's (mirrored back at stride 4, which lines up
pixel for pixel when the width is a multiple of 4, as tiles are). Resizing is linear, so resizing
``fused_logits`` to the image size gives step 5's logits for such widths: tiled prediction blends them.
``labels``, ``probabilities`` and ``logits_os`` are the first image's, the ``batch_`` outputs every image's.
Whatever the model computes in, resizing, softmax and argmax run in float32.
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
    """The graph's input and outputs: the first image's, and the whole batch's."""

    image: tf.Tensor  # [N,H,W,bands]: uint8 RGB, or the model's bands and type
    labels: tf.Tensor  # [H,W] int32
    probabilities: tf.Tensor  # [H,W,C] float32
    logits_os: tf.Tensor  # [ceil(H/4),ceil(W/4),C] float32, scale 1.0, unmirrored, not resized
    batch_labels: tf.Tensor  # [N,H,W]
    batch_probabilities: tf.Tensor  # [N,H,W,C]
    batch_logits_os: tf.Tensor  # [N,ceil(H/4),ceil(W/4),C]
    fused_logits: tf.Tensor  # [N,ceil(H/4),ceil(W/4),C] fused over scales and mirroring, not resized


def build_predictor_graph(description: ModelDescription, options: PredictOptions = SINGLE_SCALE,
                          image: tf.Tensor | None = None) -> PredictorTensors:
    """Build the prediction graph in the default graph; ``image`` defaults to a placeholder ``[N,H,W,bands]`` of the
    model's input type (uint8 RGB for an RGB model)."""
    if image is None:
        preprocessing = description.preprocessing
        image = v1.placeholder(tf.as_dtype(preprocessing.input_dtype), [None, None, None, preprocessing.channels],
                               name="image")
    others = list(options.scales)
    others.remove(1.0)
    scales = (1.0, *others)  # the scale-1.0 logits set the fusion size and are logits_os
    count = tf.shape(image)[0]
    inputs = description.preprocessing.apply(image)
    if options.flip:
        inputs = tf.concat([inputs, tf.reverse(inputs, axis=[2])], axis=0)
    multiscale = multiscale_logits(inputs, description, scales=scales, fusion=options.fusion)
    fused = tf.cast(multiscale.fused, tf.float32)
    logits = tf.image.resize(fused, tf.shape(image)[1:3], method=tf.image.ResizeMethod.BILINEAR)
    if options.flip:
        logits = _mirror_average(logits, count)
        fused = _mirror_average(fused, count)
    labels = tf.argmax(logits, axis=-1, output_type=tf.int32)
    probabilities = tf.nn.softmax(logits, axis=-1)
    logits_os = tf.cast(multiscale.per_scale[0][:count], tf.float32)
    return PredictorTensors(image=image, labels=labels[0], probabilities=probabilities[0], logits_os=logits_os[0],
                            batch_labels=labels, batch_probabilities=probabilities, batch_logits_os=logits_os,
                            fused_logits=fused)


def _mirror_average(logits: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """The mean of the first ``count`` maps and the mirrored last ``count`` ones, mirrored back."""
    return 0.5 * (logits[:count] + tf.reverse(logits[count:], axis=[2]))
