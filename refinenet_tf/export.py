"""Export a checkpoint for serving: TF SavedModel, frozen GraphDef, TFLite or ONNX.

Every format is made from the frozen, batch-norm-folded graph of :mod:`refinenet_tf.predict.inference_graph`,
so preprocessing, the bilinear resize to the image size, softmax and argmax are inside the model and
the outputs equal the checkpoint's single-scale predictions. Each export is a folder holding the model
file(s) and ``model.json`` (class names, colours and preprocessing, for reference):

========================  ===============================  ==============================================
format                    file                             input -> outputs
========================  ===============================  ==============================================
``saved_model``           the folder itself                signature ``serving_default``: ``image`` uint8
                                                           [H,W,3] -> ``labels`` int32 [H,W],
                                                           ``probabilities`` float32 [H,W,C]
``frozen``                ``model.pb`` (binary GraphDef)   node ``image`` uint8 [N,H,W,3] -> nodes
                                                           ``labels``, ``probabilities``, ``logits_os``
                                                           (stride-4 logits [ceil(H/4),ceil(W/4),C]) of
                                                           the first image; ``batch_labels``,
                                                           ``batch_probabilities``, ``batch_logits_os``,
                                                           ``fused_logits`` of every image
``tflite``                ``model.tflite``                 ``image`` uint8 [H,W,3] -> ``labels``,
                                                           ``probabilities``
``onnx``                  ``model.onnx``                   ``image`` uint8 [1,H,W,3] -> ``labels``,
                                                           ``probabilities``
========================  ===============================  ==============================================

A model of other bands (grey, 16-bit, RGB+NIR, ...) takes its own bands and type where the table says uint8 and 3
(its model.json records them). H and W are free unless ``input_size`` fixes them. A TFLite model with free sizes needs
``interpreter.resize_tensor_input(index, [H, W, 3])`` and ``allocate_tensors()`` before each new size.
ONNX needs the optional packages ``tf2onnx`` and ``onnxruntime`` (``pip install refinenet_tf[onnx]``).
"""

from __future__ import annotations

import glob
import os

import tensorflow as tf

from refinenet_tf.checkpoints import resolve_checkpoint
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.hardware import choose_precision
from refinenet_tf.predict.inference_graph import INPUT, InputSpec, build_inference_graph
from refinenet_tf.predict.predictor import description_for_checkpoint
from refinenet_tf.quantize.onnx_graph import graph_to_onnx

v1 = tf.compat.v1

FORMATS = ("saved_model", "frozen", "tflite", "onnx")
BFLOAT16_FORMATS = ("saved_model", "frozen")  # the converters of the others have no bfloat16 convolutions
FILE_NAMES = {"frozen": "model.pb", "tflite": "model.tflite", "onnx": "model.onnx"}
SIGNATURE = "serving_default"
SERVED_OUTPUTS = ("labels", "probabilities")


def export_model(checkpoint: str, output_dir: str, format: str = "saved_model",
                 description: ModelDescription | None = None,
                 input_size: tuple[int, int] | None = None, precision: str = "float32") -> str:
    """Export ``checkpoint`` (file or directory; its model.json unless ``description`` is given) to ``output_dir``.

    ``input_size`` (height, width) fixes the image size of SavedModel, TFLite and ONNX exports (the
    frozen graph always takes any size). ``precision`` (float32, bfloat16 or auto) applies to SavedModel and
    frozen exports. Returns the path of the exported model (folder or file).
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    precision = choose_precision(precision).precision
    if precision == "int8":
        raise ConfigError(f"{parameter('precision')} int8: make an int8 model folder with python -m refinenet_tf "
                          "quantize (ONNX Runtime), or export in float32 or bfloat16")
    if precision != "float32" and format not in BFLOAT16_FORMATS:
        raise ConfigError(f"{parameter('precision')} {precision} applies to {' and '.join(BFLOAT16_FORMATS)} "
                          f"exports; export {format} in float32")
    if input_size is not None:
        input_size = _checked_size(input_size)
        if format == "frozen":
            raise ConfigError("input_size does not apply to the frozen format (its graph takes any size)")
    prefix = resolve_checkpoint(checkpoint)
    description = description if description is not None else description_for_checkpoint(checkpoint)
    _prepare_folder(output_dir)
    graph_def = build_inference_graph(description, prefix, precision=precision).frozen()
    writers = {"saved_model": _write_saved_model, "frozen": _write_frozen, "tflite": _write_tflite,
               "onnx": _write_onnx}
    path = writers[format](graph_def, output_dir, input_size)
    description.save(output_dir)
    return path


def serving_function(graph_def: v1.GraphDef, input_size: tuple[int, int] | None = None) -> tf.types.experimental.ConcreteFunction:
    """A TF2 function ``image [H,W,bands] -> {labels, probabilities}`` running the frozen ``graph_def`` (uint8 RGB, or
    the bands and type of a model of other bands)."""
    imported = v1.wrap_function(lambda: tf.graph_util.import_graph_def(graph_def, name=""), [])
    graph = imported.graph
    model = imported.prune(feeds=[graph.get_tensor_by_name(INPUT + ":0")],
                           fetches={name: graph.get_tensor_by_name(name + ":0") for name in SERVED_OUTPUTS})
    height, width = input_size if input_size is not None else (None, None)
    spec = InputSpec.of_graph(graph_def)

    @tf.function(input_signature=[tf.TensorSpec([height, width, spec.channels], tf.as_dtype(spec.dtype), name=INPUT)])
    def serve(image):
        return model(image[tf.newaxis])

    return serve.get_concrete_function()


def _write_saved_model(graph_def: v1.GraphDef, output_dir: str, input_size: tuple[int, int] | None) -> str:
    module = tf.Module()
    module.serve = serving_function(graph_def, input_size)
    tf.saved_model.save(module, output_dir, signatures={SIGNATURE: module.serve})
    return output_dir


def _write_frozen(graph_def: v1.GraphDef, output_dir: str, input_size: tuple[int, int] | None) -> str:
    path = os.path.join(output_dir, FILE_NAMES["frozen"])
    with open(path, "wb") as handle:
        handle.write(graph_def.SerializeToString())
    return path


def _write_tflite(graph_def: v1.GraphDef, output_dir: str, input_size: tuple[int, int] | None) -> str:
    module = tf.Module()
    module.serve = serving_function(graph_def, input_size)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve], module)
    try:
        model = converter.convert()
    except Exception as error:  # the converter raises several unrelated types (ConverterError, ValueError...)
        raise ConfigError(f"TFLite conversion failed: {str(error).strip().splitlines()[0]}") from None
    path = os.path.join(output_dir, FILE_NAMES["tflite"])
    with open(path, "wb") as handle:
        handle.write(model)
    return path


def _write_onnx(graph_def: v1.GraphDef, output_dir: str, input_size: tuple[int, int] | None) -> str:
    shape = [1, *input_size, InputSpec.of_graph(graph_def).channels] if input_size is not None else None
    return graph_to_onnx(graph_def, os.path.join(output_dir, FILE_NAMES["onnx"]), SERVED_OUTPUTS, shape)


def _prepare_folder(output_dir: str) -> None:
    """Create ``output_dir``, refusing a file or a checkpoint folder (whose model.json would be replaced)."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ConfigError(f"{output_dir}: is a file; the export goes into a folder")
    if glob.glob(os.path.join(glob.escape(output_dir), "*.index")):
        raise ConfigError(f"{output_dir}: holds checkpoints; export into another folder")
    os.makedirs(output_dir, exist_ok=True)


def _checked_size(size) -> tuple[int, int]:
    try:
        height, width = (int(value) for value in size)
    except (TypeError, ValueError):
        raise ConfigError(f"input_size must be (height, width), got {size!r}") from None
    if height < 1 or width < 1:
        raise ConfigError(f"input_size must be positive, got {size!r}")
    return height, width

