"""ResNet-50/101/152 with DeepLab-ResNet-TF (Caffe) variable names.

Stage ``res2`` .. ``res5``; blocks ``a, b, c, ...`` or, where a stage is long (ResNet-101/152 res3/res4),
``a, b1, b2, ...``. Each block has ``res{block}_branch2{a,b,c}`` convolutions with ``bn{block}_branch2{a,b,c}``
batch norms and, in the first block of a stage, the projection shortcut ``res{block}_branch1``.
"""

from __future__ import annotations

import tensorflow as tf

from refinenet_tf.architectures import RESNET_STAGE_BLOCKS, resnet_block_names
from refinenet_tf.models.layers import LayerOptions, batch_norm, conv2d, he_initializer, max_pool

STAGE_WIDTHS = (64, 128, 256, 512)  # bottleneck width; output is 4x


def _conv_bn(x, conv_name, bn_name, filters, kernel_size, stride, options, relu=True):
    x = conv2d(x, conv_name, filters, kernel_size, options, stride=stride, initializer=he_initializer())
    x = batch_norm(x, bn_name, options)
    return tf.nn.relu(x) if relu else x


def bottleneck(x: tf.Tensor, block: str, width: int, stride: int, stride_on: str, options: LayerOptions,
               project: bool) -> tf.Tensor:
    """One bottleneck: 1x1 reduce, 3x3, 1x1 expand, plus the (projected) shortcut, then ReLU."""
    if project:
        shortcut = _conv_bn(x, f"res{block}_branch1", f"bn{block}_branch1", 4 * width, 1, stride, options, relu=False)
    else:
        shortcut = x
    reduce_stride, middle_stride = (stride, 1) if stride_on == "1x1" else (1, stride)
    y = _conv_bn(x, f"res{block}_branch2a", f"bn{block}_branch2a", width, 1, reduce_stride, options)
    y = _conv_bn(y, f"res{block}_branch2b", f"bn{block}_branch2b", width, 3, middle_stride, options)
    y = _conv_bn(y, f"res{block}_branch2c", f"bn{block}_branch2c", 4 * width, 1, 1, options, relu=False)
    return tf.nn.relu(y + shortcut)


def resnet(images: tf.Tensor, depth: int, stride_on: str, options: LayerOptions) -> dict[str, tf.Tensor]:
    """Build the backbone; returns end points conv1, pool1, res2..res5 and the aliases l1..l4 (strides 4..32)."""
    if depth not in RESNET_STAGE_BLOCKS:
        raise ValueError(f"ResNet depth must be one of {sorted(RESNET_STAGE_BLOCKS)}, got {depth}")
    end_points = {}
    x = _conv_bn(images, "conv1", "bn_conv1", 64, 7, 2, options)
    end_points["conv1"] = x
    x = max_pool(x, 3, 2, options)
    end_points["pool1"] = x
    for stage, width in zip(range(2, 6), STAGE_WIDTHS, strict=True):
        for index, name in enumerate(resnet_block_names(depth, stage)):
            stride = 2 if (index == 0 and stage > 2) else 1
            x = bottleneck(x, f"{stage}{name}", width, stride, stride_on, options, project=index == 0)
        end_points[f"res{stage}"] = x
        end_points[f"l{stage - 1}"] = x
    return end_points
