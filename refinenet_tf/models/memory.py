"""How much memory a graph's activations take, and how much this machine has: training refuses a graph that
cannot fit, prediction tiles an image that would not (``tile='auto'``)."""

from __future__ import annotations

import os

import tensorflow as tf

from refinenet_tf.description import ModelDescription
from refinenet_tf.models.prediction import PredictOptions, build_predictor_graph

# Ops whose outputs are weights, constants or views rather than activations of the batch.
_NOT_ACTIVATIONS = {"Const", "VariableV2", "VarHandleOp", "ReadVariableOp", "Identity", "Placeholder",
                    "PlaceholderWithDefault", "Assign", "AssignVariableOp"}
_GRADIENT_SCOPE = "gradients"
REFERENCE_SIDE = 256  # the square image the prediction estimate is measured on


def physical_memory_bytes() -> int | None:
    """This machine's RAM in bytes (``SC_PHYS_PAGES`` x page size), or None where it cannot be asked."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def forward_activation_bytes(graph: tf.Graph) -> int:
    """Bytes of every float tensor the forward pass computes (static shapes only, gradients excluded).

    Back-propagation keeps most of them alive at once, so this is about the least a training step needs;
    prediction frees most of them early, so for it this is a generous bound.
    """
    total = 0
    for op in graph.get_operations():
        if op.type in _NOT_ACTIVATIONS or op.name.split("/", 1)[0].startswith(_GRADIENT_SCOPE):
            continue
        for output in op.outputs:
            if output.dtype.is_floating and output.shape.is_fully_defined():
                total += output.shape.num_elements() * output.dtype.size
    return total


def prediction_bytes_per_pixel(description: ModelDescription, options: PredictOptions) -> float:
    """:func:`forward_activation_bytes` of the prediction graph per image pixel, measured on a
    :data:`REFERENCE_SIDE` square image (activations grow with the pixel count)."""
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.uint8, [1, REFERENCE_SIDE, REFERENCE_SIDE, 3])
        build_predictor_graph(description, options, image=image)
    return forward_activation_bytes(graph) / REFERENCE_SIDE**2
