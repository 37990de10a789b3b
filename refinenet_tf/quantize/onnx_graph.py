"""A frozen inference graph as an ONNX model (tf2onnx), with the batch outputs int8 prediction runs, and a batch
model cut down to the ONNX export's outputs of the first image."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError
from refinenet_tf.predict.inference_graph import INPUT, build_inference_graph
from refinenet_tf.predict.int8 import BATCH_OUTPUTS

ONNX_OPSET = 17
_FIRST = "first_image"  # the scalar index 0 that picks the first image out of a batch output
_CATCH_ERRORS = "TF2ONNX_CATCH_ERRORS"  # tf2onnx's switch for its optimizer passes' error handling


def graph_to_onnx(graph_def: tf.compat.v1.GraphDef, path: str, outputs: Sequence[str],
                  input_shape: Sequence[int | None] | None = None) -> str:
    """Convert ``graph_def`` (input ``image``) to an ONNX model at ``path`` computing the nodes ``outputs``."""
    try:
        from tf2onnx import convert  # optional: only ONNX export and int8 need it
    except ImportError:
        raise ConfigError('ONNX needs tf2onnx and onnxruntime: pip install "refinenet_tf[onnx]"') from None
    shapes = {INPUT + ":0": list(input_shape)} if input_shape is not None else None
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # its INFO lines narrate each optimisation pass

    def convert_graph() -> None:
        convert.from_graph_def(graph_def, input_names=[INPUT + ":0"], output_names=[name + ":0" for name in outputs],
                               opset=ONNX_OPSET, output_path=path, shape_override=shapes)

    try:
        with _optimizer_passes_uncopied():
            convert_graph()
    except Exception:  # noqa: BLE001 - a pass failed; tf2onnx's default skips it, on copies of the graph
        convert_graph()
    return path


@contextlib.contextmanager
def _optimizer_passes_uncopied() -> Iterator[None]:
    """Have tf2onnx run its optimizer passes on the graph itself. By default it deep-copies the whole graph, weights
    included, before each pass, to fall back on the copy if the pass fails: for Light-Weight RefineNet ResNet-50 that
    was 13 of 17 s and 9 GB of memory (5.9 GB without). A user's own setting of the variable is left as it is."""
    if _CATCH_ERRORS in os.environ:
        yield
        return
    os.environ[_CATCH_ERRORS] = "FALSE"
    try:
        yield
    finally:
        os.environ.pop(_CATCH_ERRORS, None)


def write_batch_onnx(description: ModelDescription, checkpoint: str, path: str) -> str:
    """The float32 ONNX model of ``checkpoint`` at single scale: uint8 ``image`` [N,H,W,3] (any N, H, W) ->
    :data:`~refinenet_tf.predict.int8.BATCH_OUTPUTS`, from the frozen, batch-norm-folded inference graph."""
    graph_def = build_inference_graph(description, checkpoint).frozen()
    return graph_to_onnx(graph_def, path, BATCH_OUTPUTS)


def first_image_onnx(batch_path: str, path: str, outputs: Sequence[str],
                     input_size: tuple[int, int] | None = None) -> str:
    """Save the batch model at ``batch_path`` (``image`` [N,H,W,bands] -> ``batch_<name>`` for each of ``outputs``,
    e.g. a quantized folder's int8 model) at ``path`` with the ONNX export's interface: ``image`` -> ``outputs`` of
    the first image, named as the frozen graph's nodes; everything else is dropped. ``input_size`` (H, W) fixes the
    input to ``[1,H,W,bands]``."""
    try:
        import onnx  # optional: installed with tf2onnx, which ONNX export needs
    except ImportError:
        raise ConfigError('ONNX needs tf2onnx and onnxruntime: pip install "refinenet_tf[onnx]"') from None
    model = onnx.load(batch_path)
    graph = model.graph
    graph.initializer.append(onnx.numpy_helper.from_array(np.array(0, np.int64), _FIRST))
    batch = {output.name: output.type.tensor_type for output in graph.output}
    for name in outputs:
        graph.node.append(onnx.helper.make_node("Gather", [f"batch_{name}:0", _FIRST], [f"{name}:0"], axis=0,
                                                name=f"{name}_of_first_image"))
        tensor = batch[f"batch_{name}:0"]
        graph.output.append(onnx.helper.make_tensor_value_info(f"{name}:0", tensor.elem_type,
                                                               [None] * (len(tensor.shape.dim) - 1)))
    image = graph.input[0]
    if input_size is not None:
        dims = image.type.tensor_type.shape.dim
        dims[0].dim_value, dims[1].dim_value, dims[2].dim_value = 1, *input_size
    served = onnx.utils.Extractor(model).extract_model([image.name], [f"{name}:0" for name in outputs])
    onnx.save(served, path)
    return path
