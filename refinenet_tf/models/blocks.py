"""RefineNet building blocks: residual conv units and chained residual pooling."""

from __future__ import annotations

import tensorflow as tf

from refinenet_tf.models.layers import LayerOptions, conv2d

CRP_STAGES = 4
CRP_POOL_SIZE = 5


def residual_conv_units(x: tf.Tensor, name: str, units: int, options: LayerOptions) -> tf.Tensor:
    """``units`` RCUs: x + conv3x3(relu(conv3x3(relu(x)))), first conv with bias, second without.

    Variables ``{name}/{i}_conv`` and ``{name}/{i}_conv_relu_varout_dimred`` (i from 1), as refinenet-pytorch.
    """
    channels = int(x.shape[-1])
    with tf.compat.v1.variable_scope(name):
        for unit in range(1, units + 1):
            y = conv2d(tf.nn.relu(x), f"{unit}_conv", channels, 3, options, bias=True)
            y = conv2d(tf.nn.relu(y), f"{unit}_conv_relu_varout_dimred", channels, 3, options)
            x = x + y
    return x


def chained_residual_pooling(x: tf.Tensor, name: str, kernel_size: int, options: LayerOptions) -> tf.Tensor:
    """Four stages of top = conv(maxpool5x5/1(top)); x += top. Variables ``{name}/{i}_outvar_dimred``."""
    channels = int(x.shape[-1])
    top = x
    with tf.compat.v1.variable_scope(name):
        for stage in range(1, CRP_STAGES + 1):
            top = tf.nn.max_pool2d(top, ksize=CRP_POOL_SIZE, strides=1, padding="SAME")
            top = conv2d(top, f"{stage}_outvar_dimred", channels, kernel_size, options)
            x = x + top
    return x
