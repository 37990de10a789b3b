"""MobileNet-v2 as used by Light-Weight RefineNet (no final 1280-channel convolution).

Scopes mirror the official module layout: the stem is ``layer1`` (``conv``, ``bn``); the inverted residual
stages are ``layer2`` .. ``layer8``, block ``i`` of a stage holding ``expand``, ``depthwise`` and ``project``
convolutions, each followed by its batch norm (``expand_bn``, ...). ReLU6 after expand and depthwise.
"""

from __future__ import annotations

import tensorflow as tf

from refinenet_tf.models.layers import LayerOptions, batch_norm, conv2d, depthwise_conv2d, he_initializer

# (expansion t, output channels c, blocks n, first stride s), stages layer2 .. layer8
INVERTED_RESIDUAL_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                              (6, 160, 3, 2), (6, 320, 1, 1))
STEM_CHANNELS = 32


def inverted_residual(x: tf.Tensor, name: str, expansion: int, out_channels: int, stride: int,
                      options: LayerOptions) -> tf.Tensor:
    """1x1 expand (kept even for t=1), 3x3 depthwise, 1x1 linear projection; residual when shapes allow."""
    in_channels = int(x.shape[-1])
    with tf.compat.v1.variable_scope(name):
        y = tf.nn.relu6(batch_norm(conv2d(x, "expand", in_channels * expansion, 1, options, initializer=he_initializer()), "expand_bn", options))
        y = depthwise_conv2d(y, "depthwise", 3, options, stride=stride)
        y = tf.nn.relu6(batch_norm(y, "depthwise_bn", options))
        y = batch_norm(conv2d(y, "project", out_channels, 1, options, initializer=he_initializer()), "project_bn", options)
    return x + y if (stride == 1 and in_channels == out_channels) else y


def mobilenet_v2(images: tf.Tensor, options: LayerOptions) -> dict[str, tf.Tensor]:
    """Build the backbone; end points layer1..layer8 (layer3: 24ch at stride 4, layer8: 320ch at stride 32)."""
    end_points = {}
    with tf.compat.v1.variable_scope("layer1"):
        x = tf.nn.relu6(batch_norm(conv2d(images, "conv", STEM_CHANNELS, 3, options, stride=2,
                                               initializer=he_initializer()), "bn", options))
    end_points["layer1"] = x
    for stage, (expansion, channels, blocks, stride) in enumerate(INVERTED_RESIDUAL_SETTINGS, start=2):
        with tf.compat.v1.variable_scope(f"layer{stage}"):
            for index in range(blocks):
                x = inverted_residual(x, f"block{index}", expansion, channels, stride if index == 0 else 1, options)
        end_points[f"layer{stage}"] = x
    end_points.update(l1=end_points["layer3"], l2=end_points["layer4"], l3=end_points["layer6"], l4=end_points["layer8"])
    return end_points
