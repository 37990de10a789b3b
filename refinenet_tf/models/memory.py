"""How much memory a graph's activations take, and how much this machine has: training refuses a graph that
cannot fit, prediction tiles an image that would not (``tile='auto'``)."""

from __future__ import annotations

import os

import tensorflow as tf

from refinenet_tf.description import ModelDescription
from refinenet_tf.predict.graph import PredictOptions, build_predictor_graph

# Ops whose outputs are weights, constants or views rather than activations of the batch.
_NOT_ACTIVATIONS = {"Const", "VariableV2", "VarHandleOp", "ReadVariableOp", "Identity", "Placeholder",
                    "PlaceholderWithDefault", "Assign", "AssignVariableOp"}
_VIEWS = {"Identity", "Reshape", "Squeeze", "ExpandDims", "StopGradient"}  # outputs share the input's buffer
_GRADIENT_SCOPE = "gradients"
REFERENCE_SIDE = 256  # the square image the prediction estimate is measured on
# What a prediction process really adds per pixel over the graph's peak of live activations: kernels' scratch
# buffers, branches run in parallel, copies of the fetched arrays. Measured 1.8-2.9x (one scale) and 2.3-3.5x
# (three scales and flip) for three architectures, 1-4 Mpx, oneDNN on and off (docs/BENCHMARKS.md, section
# "Memory estimate of --tile auto").
PREDICTION_OVERHEAD = 4.0


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


def peak_live_activation_bytes(graph: tf.Graph) -> int:
    """The largest number of bytes of activations alive at once when ``graph`` runs its ops one after another in
    creation order, each tensor freed after its last consumer (fetched tensors, with no consumer, stay alive).

    This is how a forward pass without gradients uses memory: far less than :func:`forward_activation_bytes`,
    which counts every tensor as if all were alive together. Views (``Identity``, ``Reshape``, ...) share their
    input's buffer and keep it alive for their own consumers.
    """
    on_data_path = _downstream_of_placeholders(graph)  # weights and their initialisers are no activations
    owner: dict[str, str] = {}  # tensor name -> the name of the tensor whose buffer it uses
    pending: dict[str, int] = {}  # buffer -> consumers not yet run
    size: dict[str, int] = {}
    live = peak = 0
    for op in graph.get_operations():
        for output in op.outputs:
            if op.type in _VIEWS and op.inputs:
                owner[output.name] = owner.get(op.inputs[0].name, op.inputs[0].name)
            else:
                owner[output.name] = output.name
                size[output.name] = _activation_bytes(op, output) if op in on_data_path else 0
                live += size[output.name]
            # an output nobody reads is fetched: one consumer that never runs keeps it alive
            pending[owner[output.name]] = pending.get(owner[output.name], 0) + (len(output.consumers()) or 1)
        peak = max(peak, live)
        for tensor in op.inputs:
            buffer = owner.get(tensor.name, tensor.name)
            if buffer in pending:
                pending[buffer] -= 1
                if pending[buffer] == 0:
                    live -= size.get(buffer, 0)
    return peak


def _downstream_of_placeholders(graph: tf.Graph) -> set[tf.Operation]:
    """The ops that read, directly or through others, an input fed to the graph."""
    reached: set[tf.Operation] = set()
    for op in graph.get_operations():  # creation order: an op's inputs come before it
        if op.type in ("Placeholder", "PlaceholderWithDefault") or any(t.op in reached for t in op.inputs):
            reached.add(op)
    return reached


def _activation_bytes(op: tf.Operation, output: tf.Tensor) -> int:
    """Bytes of one op output counted as an activation: 0 for weights, constants and unknown shapes."""
    if op.type in _NOT_ACTIVATIONS or not output.shape.is_fully_defined() or output.dtype.size is None:
        return 0
    return output.shape.num_elements() * output.dtype.size


def reference_prediction_graph(description: ModelDescription, options: PredictOptions) -> tf.Graph:
    """The prediction graph of one :data:`REFERENCE_SIDE` square image, the one the estimates are measured on."""
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.uint8, [1, REFERENCE_SIDE, REFERENCE_SIDE, 3])
        build_predictor_graph(description, options, image=image)
    return graph


def prediction_bytes_per_pixel(description: ModelDescription, options: PredictOptions) -> float:
    """The memory one image pixel costs a prediction: :func:`peak_live_activation_bytes` of the
    :func:`reference_prediction_graph`, per pixel, times :data:`PREDICTION_OVERHEAD`."""
    graph = reference_prediction_graph(description, options)
    return PREDICTION_OVERHEAD * peak_live_activation_bytes(graph) / REFERENCE_SIDE**2
