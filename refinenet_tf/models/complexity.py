"""Parameter and multiply-add counts of a built graph."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def count_parameters(variables) -> int:
    """Learnable values (weights, biases, batch-norm scale and offset); moving statistics are not parameters."""
    return int(sum(np.prod(v.shape) for v in variables
                   if not v.op.name.endswith(("moving_mean", "moving_variance"))))


def count_multiply_adds(graph: tf.Graph) -> int:
    """Multiply-adds of all convolutions in ``graph`` (which must have static shapes)."""
    total = 0
    for op in graph.get_operations():
        if op.type not in ("Conv2D", "DepthwiseConv2dNative"):
            continue
        output_shape = op.outputs[0].shape
        kernel_shape = op.inputs[1].shape
        if not output_shape.is_fully_defined() or not kernel_shape.is_fully_defined():
            raise ValueError(f"{op.name}: multiply-adds need static shapes, got {output_shape}")
        height, width, in_channels = int(kernel_shape[0]), int(kernel_shape[1]), int(kernel_shape[2])
        per_output = height * width * (in_channels if op.type == "Conv2D" else 1)
        total += int(np.prod(output_shape.as_list())) * per_output
    return total
