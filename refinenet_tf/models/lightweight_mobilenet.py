"""Light-Weight RefineNet decoder on MobileNet-v2 (module names of the official code; classifier ``clf_conv``).

Pairs of backbone stages are reduced to 256 channels by 1x1 convolutions (``conv8`` .. ``conv3``), summed with
the upsampled coarser path, passed through ReLU6 and chained residual pooling (``crp4`` .. ``crp1``) and
adapted by a 1x1 convolution (``conv_adapt4`` .. ``conv_adapt2``) before the next upsampling.
"""

from __future__ import annotations

import tensorflow as tf

from refinenet_tf.models.blocks import chained_residual_pooling
from refinenet_tf.models.layers import LayerOptions, conv2d, upsample_like
from refinenet_tf.models.refinenet import classifier

CHANNELS = 256


def lightweight_mobilenet_decoder(end_points: dict[str, tf.Tensor], num_classes: int,
                                  options: LayerOptions) -> tf.Tensor:
    """Logits at stride 4 from MobileNet-v2 end points layer3..layer8."""
    def reduce(layer: int) -> tf.Tensor:
        return conv2d(end_points[f"layer{layer}"], f"conv{layer}", CHANNELS, 1, options)

    # (backbone layers fused at this resolution, CRP name, adapt conv name or None for the last)
    levels = (((8, 7), "crp4", "conv_adapt4"), ((6, 5), "crp3", "conv_adapt3"), ((4,), "crp2", "conv_adapt2"),
              ((3,), "crp1", None))
    x = None
    for layers, crp_name, adapt_name in levels:
        y = reduce(layers[0])
        for layer in layers[1:]:
            y = y + reduce(layer)
        if x is not None:
            y = y + upsample_like(x, y)
        x = chained_residual_pooling(tf.nn.relu6(y), crp_name, 1, options)
        if adapt_name is not None:
            x = conv2d(x, adapt_name, CHANNELS, 1, options)
    return classifier(x, num_classes, options)
