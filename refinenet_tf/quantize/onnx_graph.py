"""A frozen inference graph as an ONNX model (tf2onnx), with the batch outputs int8 prediction runs."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import tensorflow as tf

from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError
from refinenet_tf.predict.inference_graph import INPUT, build_inference_graph
from refinenet_tf.predict.int8 import BATCH_OUTPUTS

ONNX_OPSET = 17


def graph_to_onnx(graph_def: tf.compat.v1.GraphDef, path: str, outputs: Sequence[str],
                  input_shape: Sequence[int | None] | None = None) -> str:
    """Convert ``graph_def`` (input ``image``) to an ONNX model at ``path`` computing the nodes ``outputs``."""
    try:
        from tf2onnx import convert  # optional: only ONNX export and int8 need it
    except ImportError:
        raise ConfigError('ONNX needs tf2onnx and onnxruntime: pip install "refinenet_tf[onnx]"') from None
    shapes = {INPUT + ":0": list(input_shape)} if input_shape is not None else None
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # its INFO lines narrate each optimisation pass
    convert.from_graph_def(graph_def, input_names=[INPUT + ":0"], output_names=[name + ":0" for name in outputs],
                           opset=ONNX_OPSET, output_path=path, shape_override=shapes)
    return path


def write_batch_onnx(description: ModelDescription, checkpoint: str, path: str) -> str:
    """The float32 ONNX model of ``checkpoint`` at single scale: uint8 ``image`` [N,H,W,3] (any N, H, W) ->
    :data:`~refinenet_tf.predict.int8.BATCH_OUTPUTS`, from the frozen, batch-norm-folded inference graph."""
    graph_def = build_inference_graph(description, checkpoint).frozen()
    return graph_to_onnx(graph_def, path, BATCH_OUTPUTS)
