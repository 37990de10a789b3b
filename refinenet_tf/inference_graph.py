"""A frozen inference graph: weights as constants, batch norm folded into the convolutions.

``build_inference_graph`` builds the single-scale prediction graph of ``refinenet_tf.evaluate.predict``
(uint8 RGB ``image`` of any size, preprocessing inside), loads the weights, turns variables into
constants and rewrites every inference batch norm that follows a convolution into a bias add with

    w' = w * gamma / sqrt(var + eps)        b' = beta - mean * gamma / sqrt(var + eps)

Outputs: ``labels`` [H,W] int32 (argmax after bilinear resize to the image size), ``probabilities``
[H,W,C] and ``logits`` at output stride 4. ``precision='bfloat16'`` additionally runs every convolution
in bfloat16 (inputs and weights rounded, results cast back to float32); everything else stays float32.
:class:`FrozenPredictor` runs such a GraphDef in its own graph and session.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from refinenet_tf import checkpoints
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError, DataError
from refinenet_tf.evaluate.predict import build_predictor_graph
from refinenet_tf.sessions import new_session

v1 = tf.compat.v1

INPUT = "image"
OUTPUTS = ("labels", "probabilities", "logits")
PRECISIONS = ("float32", "bfloat16")
CONVOLUTIONS = ("Conv2D", "DepthwiseConv2dNative")
BATCH_NORMS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")


def build_inference_graph(description: ModelDescription, checkpoint_path: str | None = None,
                          precision: str = "float32", seed: int = 0) -> v1.GraphDef:
    """The frozen, batch-norm-folded GraphDef of ``description`` with weights from ``checkpoint_path``.

    Without a checkpoint the weights are the random initialisation drawn with ``seed`` (for benchmarks).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        tensors = build_predictor_graph(description)
        for name, tensor in zip(OUTPUTS, (tensors.labels, tensors.probabilities, tensors.logits_os), strict=True):
            if tf.identity(tensor, name=name).op.name != name:
                raise RuntimeError(f"graph node name {name!r} is already taken")
        variables = v1.global_variables()
        with v1.Session(graph=graph) as session:
            session.run(v1.variables_initializer(variables))
            if checkpoint_path is not None:
                checkpoints.restore_trained_model(session, checkpoint_path, variables)
            frozen = v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), list(OUTPUTS))
    frozen = fold_batch_norms(frozen)
    if precision == "bfloat16":
        frozen = convolutions_to_bfloat16(frozen)
    return v1.graph_util.extract_sub_graph(frozen, list(OUTPUTS))


class _Nodes:
    """Name lookup and constant values of a GraphDef being rewritten."""

    def __init__(self, graph_def: v1.GraphDef):
        self.graph_def = graph_def
        self.by_name = {node.name: node for node in graph_def.node}
        self.consumers: dict[str, int] = {}
        for node in graph_def.node:
            for name in node.input:
                producer = name.lstrip("^").split(":")[0]
                self.consumers[producer] = self.consumers.get(producer, 0) + 1

    def producer(self, name: str) -> v1.NodeDef:
        return self.by_name[name.lstrip("^").split(":")[0]]

    def constant(self, name: str) -> np.ndarray | None:
        """The value of a tensor that is a Const (possibly behind Identity nodes), else None."""
        node = self.producer(name)
        while node.op == "Identity":
            node = self.producer(node.input[0])
        if node.op != "Const":
            return None
        return tf.make_ndarray(node.attr["value"].tensor)

    def add_constant(self, name: str, value: np.ndarray, dtype: tf.DType = tf.float32) -> str:
        node = self.graph_def.node.add()
        node.name, node.op = name, "Const"
        node.attr["dtype"].type = dtype.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
        self.by_name[name] = node
        return name


def fold_batch_norms(graph_def: v1.GraphDef) -> v1.GraphDef:
    """A copy of ``graph_def`` with each inference batch norm after a convolution folded into it.

    Batch norms whose input is not a convolution used by them alone, or whose statistics are not
    constants, are left as they are.
    """
    graph_def = _copy(graph_def)
    nodes = _Nodes(graph_def)
    for node in list(graph_def.node):
        if node.op not in BATCH_NORMS or node.attr["is_training"].b:
            continue
        conv = nodes.producer(node.input[0])
        if conv.op not in CONVOLUTIONS or nodes.consumers.get(conv.name) != 1:
            continue
        values = [nodes.constant(name) for name in (conv.input[1], *node.input[1:5])]
        if any(value is None for value in values):
            continue
        weights, gamma, beta, mean, variance = (value.astype(np.float64) for value in values)
        factor = gamma / np.sqrt(variance + node.attr["epsilon"].f)
        # HWIO for Conv2D; (k, k, C, 1) for depthwise, whose output channels are its input channels
        weights = weights * (factor[None, None, None, :] if conv.op == "Conv2D" else factor[None, None, :, None])
        conv.input[1] = nodes.add_constant(conv.name + "/folded_weights", weights.astype(np.float32))
        bias = nodes.add_constant(node.name + "/folded_biases", (beta - mean * factor).astype(np.float32))
        data_format = node.attr["data_format"].s
        node.op = "BiasAdd"
        del node.input[1:]
        node.input.append(bias)
        node.attr.clear()
        node.attr["T"].type = tf.float32.as_datatype_enum
        node.attr["data_format"].s = data_format
    return graph_def


def convolutions_to_bfloat16(graph_def: v1.GraphDef) -> v1.GraphDef:
    """A copy of ``graph_def`` whose convolutions compute in bfloat16 between float32 casts."""
    graph_def = _copy(graph_def)
    nodes = _Nodes(graph_def)
    for conv in [node for node in graph_def.node if node.op in CONVOLUTIONS]:
        weights = nodes.constant(conv.input[1])
        if weights is None:
            continue
        name = conv.name
        conv.name = name + "/bfloat16"
        cast_in = _cast(graph_def, name + "/input_bfloat16", conv.input[0], tf.float32, tf.bfloat16)
        conv.input[0] = cast_in
        conv.input[1] = nodes.add_constant(name + "/weights_bfloat16", weights, tf.bfloat16)
        conv.attr["T"].type = tf.bfloat16.as_datatype_enum
        _cast(graph_def, name, conv.name, tf.bfloat16, tf.float32)  # consumers keep using the old name
    return graph_def


def _cast(graph_def: v1.GraphDef, name: str, source: str, from_type: tf.DType, to_type: tf.DType) -> str:
    node = graph_def.node.add()
    node.name, node.op = name, "Cast"
    node.input.append(source)
    node.attr["SrcT"].type = from_type.as_datatype_enum
    node.attr["DstT"].type = to_type.as_datatype_enum
    node.attr["Truncate"].b = False
    return name


def _copy(graph_def: v1.GraphDef) -> v1.GraphDef:
    copy = v1.GraphDef()
    copy.CopyFrom(graph_def)
    return copy


class FrozenPredictor:
    """Runs a GraphDef from :func:`build_inference_graph` in its own graph and session.

    >>> with FrozenPredictor(build_inference_graph(description, "snapshots/"), threads=2) as predictor:
    ...     labels = predictor.predict(image_rgb)["labels"]
    """

    def __init__(self, graph_def: v1.GraphDef, threads: int | None = None, inter_op_threads: int | None = None,
                 xla: bool = False):
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.import_graph_def(graph_def, name="")
        self.image = self.graph.get_tensor_by_name(INPUT + ":0")
        self.outputs = {name: self.graph.get_tensor_by_name(name + ":0") for name in OUTPUTS}
        self.session = new_session(self.graph, threads, inter_op_threads, xla)

    def predict(self, image_rgb: np.ndarray, outputs: tuple[str, ...] = OUTPUTS) -> dict[str, np.ndarray]:
        """Run one uint8 RGB image (H, W, 3) and return the requested outputs by name."""
        image = np.asarray(image_rgb)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"expected a uint8 RGB image of shape (H, W, 3), got {image.dtype} {image.shape}")
        unknown = sorted(set(outputs) - set(self.outputs))
        if unknown:
            raise ConfigError(f"unknown outputs {unknown}; choose from: {', '.join(OUTPUTS)}")
        results = self.session.run({name: self.outputs[name] for name in outputs}, {self.image: image[None]})
        return results

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> FrozenPredictor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
