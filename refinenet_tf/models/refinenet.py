"""RefineNet decoders on a ResNet: the full model (3x3 convs, RCUs) and Light-Weight RefineNet (1x1, no RCUs).

Paths are numbered as in the reference code: path 1 starts from the stride-32 features (``l4``), path 4
from the stride-4 features (``l1``) and ends in the classifier ``clf_conv`` at stride 4.
"""

from __future__ import annotations

import tensorflow as tf

from refinenet_tf.architectures import CLASSIFIER_SCOPE
from refinenet_tf.models.blocks import chained_residual_pooling, residual_conv_units
from refinenet_tf.models.layers import LayerOptions, conv2d, dropout, upsample_like

DROPOUT_RATE = 0.5
TOP_CHANNELS = 512
PATH_CHANNELS = 256
CLASSIFIER_STDDEV = 0.01  # DeepLab's initialisation of its classifier


def classifier(x: tf.Tensor, num_classes: int, options: LayerOptions) -> tf.Tensor:
    """The 3x3 classifier with bias, ``clf_conv``, shared by every decoder."""
    initializer = tf.compat.v1.random_normal_initializer(stddev=CLASSIFIER_STDDEV)
    return conv2d(x, CLASSIFIER_SCOPE, num_classes, 3, options, bias=True, initializer=initializer)


def refinenet_decoder(end_points: dict[str, tf.Tensor], num_classes: int, options: LayerOptions,
                      light_weight: bool) -> tf.Tensor:
    """Fuse l4..l1 into logits at stride 4 (full RefineNet or its light-weight variant)."""
    kernel = 1 if light_weight else 3
    l4 = dropout(end_points["l4"], DROPOUT_RATE, options, site=1)
    l3 = dropout(end_points["l3"], DROPOUT_RATE, options, site=2)
    inputs = {1: l4, 2: l3, 3: end_points["l2"], 4: end_points["l1"]}

    x = None
    for path in range(1, 5):
        y = conv2d(inputs[path], f"p_ims1d2_outl{path}_dimred", TOP_CHANNELS if path == 1 else PATH_CHANNELS,
                   kernel, options)
        if not light_weight:
            y = residual_conv_units(y, f"adapt_stage{path}_b", 2, options)
        if x is not None:
            y = conv2d(y, f"adapt_stage{path}_b2_joint_varout_dimred", PATH_CHANNELS, kernel, options)
            y = y + upsample_like(x, y)
        y = chained_residual_pooling(tf.nn.relu(y), f"mflow_conv_g{path}_pool", kernel, options)
        if not light_weight:
            y = residual_conv_units(y, f"mflow_conv_g{path}_b", 3, options)
        if path < 4:
            y = conv2d(y, f"mflow_conv_g{path}_b3_joint_varout_dimred", PATH_CHANNELS, kernel, options)
        x = y
    if not light_weight:
        x = dropout(x, DROPOUT_RATE, options, site=3)
    return classifier(x, num_classes, options)
