"""The prediction graph every user-facing path runs: batch norm folded, optional bfloat16, weights kept once.

``build_inference_graph`` builds the prediction graph of :mod:`refinenet_tf.predict.graph` (uint8 RGB
``image`` of any size, preprocessing inside, scales, fusion and mirroring as asked) with a placeholder
standing in for every weight, checks the checkpoint against them, and folds every inference batch norm
that follows a convolution into it:

    w' = w * gamma / sqrt(var + eps)        b' = beta - mean * gamma / sqrt(var + eps)

The input takes a batch of same-size images ``[N,H,W,3]``. Outputs of the first image: ``labels`` [H,W] int32
(argmax after bilinear resize to the image size), ``probabilities`` [H,W,C] and ``logits_os`` at output stride 4;
of every image: ``batch_labels``, ``batch_probabilities``, ``batch_logits_os`` and ``fused_logits`` (stride 4,
fused over scales and mirroring, see :mod:`refinenet_tf.predict.graph`). ``precision='bfloat16'`` computes the network in bfloat16: the
convolutions, their bias adds, activations, sums, pads and pools take and give bfloat16, so activations
stay bfloat16 from one convolution to the next, with casts only where float32 work begins (bilinear
upsampling, the logits' resize, softmax and argmax stay float32); those weights are stored in bfloat16.

The weights are computed from the checkpoint one array at a time when the graph is used: into constants for
an export (:meth:`InferenceGraph.frozen`), or into variables loaded once for prediction in this process
(:meth:`InferenceGraph.import_into`). The second keeps a single copy of the weights: TensorFlow's graph
optimiser copies large constants while it prepares a graph, which measurably raises peak memory (see
docs/BENCHMARKS.md). :class:`GraphPredictor` runs either form in its own graph and session.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from refinenet_tf import checkpoints
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError, DataError, parameter
from refinenet_tf.predict.graph import SINGLE_SCALE, PredictOptions, build_predictor_graph
from refinenet_tf.sessions import new_session

v1 = tf.compat.v1

INPUT = "image"
OUTPUTS = ("labels", "probabilities", "logits_os", "batch_labels", "batch_probabilities", "batch_logits_os",
           "fused_logits")
PRECISIONS = ("float32", "bfloat16")
CONVOLUTIONS = ("Conv2D", "DepthwiseConv2dNative")
BATCH_NORMS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
# Ops computed in bfloat16, and which of their inputs carry floating-point data.
BFLOAT16_OPS = {"Conv2D": (0, 1), "DepthwiseConv2dNative": (0, 1), "BiasAdd": (0, 1), "Relu": (0,), "Relu6": (0,),
                "AddV2": (0, 1), "Add": (0, 1), "MaxPool": (0,), "Pad": (0,), "PadV2": (0, 2)}
CONVOLUTIONS_ONLY = {op: BFLOAT16_OPS[op] for op in CONVOLUTIONS}  # casts around each convolution


@dataclass(frozen=True)
class Weight:
    """How to compute one weight of the inference graph from the checkpoint.

    ``source`` is a checkpoint variable; a folded convolution or bias also names the batch norm's
    ``(gamma, beta, moving_mean, moving_variance)`` and its ``epsilon``.
    """

    source: str
    shape: tuple[int, ...]
    dtype: tf.DType = tf.float32
    batch_norm: tuple[str, str, str, str] | None = None
    epsilon: float = 0.0
    role: str = "weights"  # or 'biases' (a folded bias), 'depthwise' (folded depthwise weights)

    def value(self, reader) -> np.ndarray:
        """The array, in this weight's dtype."""
        if self.batch_norm is None:
            value = np.asarray(reader.get_tensor(self.source), np.float32)
        else:
            gamma, beta, mean, variance = (np.asarray(reader.get_tensor(name), np.float64) for name in self.batch_norm)
            factor = gamma / np.sqrt(variance + self.epsilon)
            if self.role == "biases":
                value = beta - mean * factor
            else:  # HWIO for Conv2D; (k, k, C, 1) for depthwise, whose output channels are its input channels
                weights = np.asarray(reader.get_tensor(self.source), np.float64)
                value = weights * (factor[None, None, :, None] if self.role == "depthwise" else factor)
        return np.asarray(value, self.dtype.as_numpy_dtype)


@dataclass
class InferenceGraph:
    """The prediction graph with stand-in placeholders where its weights go, and how to compute each.

    :meth:`frozen` turns it into a self-contained GraphDef (constants: export); :meth:`import_into` into
    a graph whose weights are loaded once into variables (prediction in this process), one array at a time.
    """

    graph_def: v1.GraphDef
    weights: dict[str, Weight]  # stand-in node name -> its weight
    checkpoint: str

    def frozen(self) -> v1.GraphDef:
        """A GraphDef with every weight as a constant."""
        reader = checkpoints.open_checkpoint(self.checkpoint)
        graph_def = v1.GraphDef()
        graph_def.CopyFrom(self.graph_def)
        for node in graph_def.node:
            weight = self.weights.get(node.name)
            if weight is not None:
                node.op = "Const"
                node.attr.clear()
                node.attr["dtype"].type = weight.dtype.as_datatype_enum
                node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weight.value(reader), dtype=weight.dtype))
        return graph_def

    def import_into(self, inputs: dict[str, tf.Tensor]) -> tuple[dict[str, tf.Tensor], Callable[[v1.Session], None]]:
        """Import into the default graph, ``inputs`` mapped by name (e.g. ``{"image": tensor}``); returns the
        output tensors by name and ``load(session)``, which fills the weights."""
        variables = {name: tf.Variable(v1.placeholder(weight.dtype, weight.shape), trainable=False,
                                       name=name.replace("/", "_"), collections=[])
                     for name, weight in self.weights.items()}
        mapped = {**{f"{name}:0": tensor for name, tensor in inputs.items()},
                  **{f"{name}:0": variable.read_value() for name, variable in variables.items()}}
        tensors = tf.import_graph_def(self.graph_def, mapped, [f"{name}:0" for name in OUTPUTS], name="model")

        def load(session: v1.Session) -> None:
            # one run for every weight: each run with other feeds and fetches makes an executor of its own, which
            # took 47 ms a weight (14 s for RefineNet ResNet-101's 297)
            reader = checkpoints.open_checkpoint(self.checkpoint)
            session.run([variable.initializer for variable in variables.values()],
                        {variable.initializer.inputs[1]: self.weights[name].value(reader)
                         for name, variable in variables.items()})

        return dict(zip(OUTPUTS, tensors, strict=True)), load


def build_inference_graph(description: ModelDescription, checkpoint: str, options: PredictOptions = SINGLE_SCALE,
                          precision: str = "float32", bfloat16_ops: dict | None = None) -> InferenceGraph:
    """The batch-norm-folded prediction graph of ``description``, its weights to come from ``checkpoint``.

    The checkpoint is checked strictly (every variable, with its shape) before anything is computed.
    ``bfloat16_ops`` chooses which ops compute in bfloat16 (default :data:`BFLOAT16_OPS`; the benchmarks
    compare :data:`CONVOLUTIONS_ONLY`).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"{parameter('precision')} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    graph_def, weights = _stand_in_graph(description, options)
    prefix = checkpoints.check_trained_model(checkpoint, {weight.source: list(weight.shape)
                                                          for weight in weights.values()})
    fold_batch_norms(graph_def, weights)
    if precision == "bfloat16":
        to_bfloat16(graph_def, weights, BFLOAT16_OPS if bfloat16_ops is None else bfloat16_ops)
    _prune(graph_def, OUTPUTS)
    needed = {node.name for node in graph_def.node}
    return InferenceGraph(graph_def, {name: weight for name, weight in weights.items() if name in needed}, prefix)


def _stand_in_graph(description: ModelDescription, options: PredictOptions) -> tuple[v1.GraphDef, dict[str, Weight]]:
    """The prediction graph with a placeholder standing in for each model variable (the same for every scale)."""
    stand_ins: dict[str, tf.Tensor] = {}
    weights: dict[str, Weight] = {}

    def stand_in(getter, name, *args, shape=None, dtype=tf.float32, **kwargs):
        if name not in stand_ins:
            stand_ins[name] = v1.placeholder(dtype, shape, name="weight")
            weights[stand_ins[name].op.name] = Weight(name, tuple(shape))
        return stand_ins[name]

    graph = tf.Graph()
    with graph.as_default(), v1.variable_scope(v1.get_variable_scope(), custom_getter=stand_in):
        tensors = build_predictor_graph(description, options)
        for name, tensor in zip(OUTPUTS, (tensors.labels, tensors.probabilities, tensors.logits_os,
                                          tensors.batch_labels, tensors.batch_probabilities,
                                          tensors.batch_logits_os, tensors.fused_logits), strict=True):
            tf.identity(tensor, name=name)
    return graph.as_graph_def(), weights


class _Nodes:
    """Name lookup of a GraphDef being rewritten."""

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

    def add_stand_in(self, name: str, weights: dict[str, Weight], weight: Weight) -> str:
        """A new placeholder node for a computed weight."""
        node = self.graph_def.node.add()
        node.name, node.op = name, "Placeholder"
        node.attr["dtype"].type = weight.dtype.as_datatype_enum
        node.attr["shape"].shape.CopyFrom(tf.TensorShape(weight.shape).as_proto())
        self.by_name[name] = node
        weights[name] = weight
        return name


def fold_batch_norms(graph_def: v1.GraphDef, weights: dict[str, Weight]) -> None:
    """Fold each inference batch norm that follows a convolution into it, in place.

    The convolution reads folded weights and the batch norm becomes a bias add of folded biases, both new
    stand-ins computed at load time. Batch norms whose input is not a convolution used by them alone stay.
    A convolution whose weights serve several scales gets one folded copy, shared again.
    """
    nodes = _Nodes(graph_def)
    folded: dict[tuple[str, ...], tuple[str, str]] = {}
    for node in list(graph_def.node):
        if node.op not in BATCH_NORMS or node.attr["is_training"].b:
            continue
        conv = nodes.producer(node.input[0])
        if conv.op not in CONVOLUTIONS or nodes.consumers.get(conv.name) != 1:
            continue
        sources = [nodes.producer(name).name for name in (conv.input[1], *node.input[1:5])]
        if any(source not in weights for source in sources):
            continue
        key = tuple(sources)
        if key not in folded:
            kernel, statistics = weights[sources[0]], tuple(weights[source].source for source in sources[1:])
            epsilon = node.attr["epsilon"].f
            role = "weights" if conv.op == "Conv2D" else "depthwise"
            folded[key] = (
                nodes.add_stand_in(f"{conv.name}/folded_weights", weights,
                                   Weight(kernel.source, kernel.shape, batch_norm=statistics, epsilon=epsilon,
                                          role=role)),
                nodes.add_stand_in(f"{node.name}/folded_biases", weights,
                                   Weight(kernel.source, weights[sources[1]].shape, batch_norm=statistics,
                                          epsilon=epsilon, role="biases")))
        conv.input[1], bias = folded[key]
        data_format = node.attr["data_format"].s
        node.op = "BiasAdd"
        del node.input[1:]
        node.input.append(bias)
        node.attr.clear()
        node.attr["T"].type = tf.float32.as_datatype_enum
        node.attr["data_format"].s = data_format


def to_bfloat16(graph_def: v1.GraphDef, weights: dict[str, Weight], ops: dict[str, tuple[int, ...]] = BFLOAT16_OPS
                ) -> None:
    """Compute the float32 ops named in ``ops`` in bfloat16, in place.

    Weights read only by such ops are stored as bfloat16; a float32 tensor entering one of them is cast once,
    and a bfloat16 result leaving for other ops is cast back once, so chains of such ops run without casts.
    """
    nodes = _Nodes(graph_def)
    chosen = {node.name for node in graph_def.node
              if node.op in ops and node.attr["T"].type == tf.float32.as_datatype_enum}
    bfloat16_inputs = [(node, index) for node in graph_def.node if node.name in chosen for index in ops[node.op]]
    uses: dict[str, int] = {}  # how often each weight is read as a bfloat16 input
    for node, index in bfloat16_inputs:
        producer = nodes.producer(node.input[index]).name
        if producer in weights:
            uses[producer] = uses.get(producer, 0) + 1
    stored = {name for name, count in uses.items() if count == nodes.consumers[name]}  # read by chosen ops only
    casts: dict[tuple[str, int], str] = {}

    def cast(tensor: str, to_type: tf.DType) -> str:
        key = (tensor, to_type.as_datatype_enum)
        if key not in casts:
            node = graph_def.node.add()
            node.name, node.op = f"{tensor.replace(':', '_')}/to_{to_type.name}", "Cast"
            node.input.append(tensor)
            node.attr["SrcT"].type = (tf.float32 if to_type == tf.bfloat16 else tf.bfloat16).as_datatype_enum
            node.attr["DstT"].type = to_type.as_datatype_enum
            node.attr["Truncate"].b = False
            casts[key] = node.name
        return casts[key]

    for name in stored:
        weights[name] = dataclasses.replace(weights[name], dtype=tf.bfloat16)
        nodes.by_name[name].attr["dtype"].type = tf.bfloat16.as_datatype_enum
    for node, index in bfloat16_inputs:
        producer = nodes.producer(node.input[index]).name
        if producer not in chosen and producer not in stored:
            node.input[index] = cast(node.input[index], tf.bfloat16)
    for node in list(graph_def.node):
        if node.name in chosen:
            node.attr["T"].type = tf.bfloat16.as_datatype_enum
        else:
            for index, tensor in enumerate(node.input):
                if not tensor.startswith("^") and nodes.producer(tensor).name in chosen:
                    node.input[index] = cast(tensor, tf.float32)


def _prune(graph_def: v1.GraphDef, outputs: tuple[str, ...]) -> None:
    """Remove, in place, every node the outputs do not need."""
    by_name = {node.name: node for node in graph_def.node}
    needed, todo = set(outputs), list(outputs)
    while todo:
        for name in by_name[todo.pop()].input:
            producer = name.lstrip("^").split(":")[0]
            if producer not in needed:
                needed.add(producer)
                todo.append(producer)
    for index in reversed(range(len(graph_def.node))):
        if graph_def.node[index].name not in needed:
            del graph_def.node[index]


@dataclass(frozen=True)
class InputSpec:
    """What a prediction graph's ``image`` input takes: the pixel type and the number of bands."""

    dtype: str = "uint8"
    channels: int = 3

    @classmethod
    def of_graph(cls, graph_def: v1.GraphDef) -> InputSpec:
        """The spec of the ``image`` placeholder of a prediction GraphDef."""
        node = next(node for node in graph_def.node if node.name == INPUT)
        return cls(tf.as_dtype(node.attr["dtype"].type).name, int(node.attr["shape"].shape.dim[-1].size))

    def describe(self, batch: bool) -> str:
        """How the expected input reads in an error message."""
        kind = "RGB" if self.channels == 3 and self.dtype == "uint8" else f"{self.channels}-band"
        return (f"{self.dtype} {kind} images of shape (N, H, W, {self.channels})" if batch
                else f"a {self.dtype} {kind} image of shape (H, W, {self.channels})")


RGB = InputSpec()


def checked_images(images, spec: InputSpec = RGB, batch: bool = False, also: str = "") -> np.ndarray:
    """``images`` as an array the graph takes: one image (H, W, bands), or with ``batch`` at least one
    (N, H, W, bands), of ``spec``'s type and band count (uint8 RGB by default); else a DataError saying what was
    expected (``also`` names other accepted forms) and what came."""
    array = np.asarray(images)
    fits = array.dtype == np.dtype(spec.dtype) and array.ndim == (4 if batch else 3) and array.shape[-1] == spec.channels
    if not fits or (batch and not array.shape[0]):
        raise DataError(f"expected {spec.describe(batch)}{also}, got {array.dtype} {array.shape}")
    return array


def checked_rgb(images, batch: bool = False, also: str = "") -> np.ndarray:
    """:func:`checked_images` for uint8 RGB images (an RGB model's input)."""
    return checked_images(images, RGB, batch, also)


class ClosesOnExit(abc.ABC):
    """``with`` support for an object holding a session: leaving the block calls its ``close()``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the object holds."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class GraphPredictor(ClosesOnExit):
    """Runs an :class:`InferenceGraph` (weights loaded once into variables) or a frozen GraphDef (constants,
    e.g. an export) in its own graph and session.

    >>> with GraphPredictor(build_inference_graph(description, "snapshots/"), threads=2) as predictor:
    ...     labels = predictor.predict(image_rgb, ("labels",))["labels"]
    ...     batch = predictor.run_batch(images_rgb, ("batch_labels",))["batch_labels"]  # [N,H,W]
    """

    def __init__(self, model: InferenceGraph | v1.GraphDef, threads: int | None = None,
                 inter_op_threads: int | None = None, xla: bool = False):
        self.graph = tf.Graph()
        load = None
        with self.graph.as_default():
            self.input_spec = InputSpec.of_graph(model.graph_def if isinstance(model, InferenceGraph) else model)
            self.image = v1.placeholder(tf.as_dtype(self.input_spec.dtype), [None, None, None, self.input_spec.channels],
                                        name=INPUT)
            if isinstance(model, InferenceGraph):
                self.outputs, load = model.import_into({INPUT: self.image})
            else:
                tensors = tf.import_graph_def(model, {INPUT: self.image}, [f"{name}:0" for name in OUTPUTS],
                                              name="model")
                self.outputs = dict(zip(OUTPUTS, tensors, strict=True))
        self.graph.finalize()
        self.session = new_session(self.graph, threads, inter_op_threads, xla)
        if load is not None:
            load(self.session)

    def predict(self, image_rgb: np.ndarray, outputs: tuple[str, ...] = OUTPUTS[:3]) -> dict[str, np.ndarray]:
        """Run one image (H, W, bands) and return the requested outputs by name."""
        return self.run_batch(checked_images(image_rgb, self.input_spec)[None], outputs)

    def run_batch(self, images_rgb: np.ndarray, outputs: tuple[str, ...] = OUTPUTS[3:]) -> dict[str, np.ndarray]:
        """Run images of one size (N, H, W, bands) together and return the requested outputs by name."""
        images = checked_images(images_rgb, self.input_spec, batch=True)
        unknown = sorted(set(outputs) - set(self.outputs))
        if unknown:
            raise ConfigError(f"unknown outputs {unknown}; choose from: {', '.join(OUTPUTS)}")
        return self.session.run({name: self.outputs[name] for name in outputs}, {self.image: images})

    def close(self) -> None:
        """Release the session (the predictor is unusable afterwards)."""
        self.session.close()
