"""Export a checkpoint for serving: TF SavedModel, frozen GraphDef, TFLite or ONNX (float or int8).

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
``onnx``, int8            ``model.onnx``: ONNX Runtime's   the same as ``onnx``
                          static int8 (QDQ) model
========================  ===============================  ==============================================

An int8 export (``precision='int8'``, ONNX only) is the int8 model of a quantized model folder (``python -m
refinenet_tf quantize``), or of the checkpoint quantized now on ``calibration`` images (with the accuracy guard when
``val_list`` is given) by :func:`refinenet_tf.quantize.folder.quantize_checkpoint`: int8 convolutions, additions and
max pooling; preprocessing, the resize, softmax and argmax in float (docs/INT8.md). Its labels are those of the
Predictor running the same quantized model. A quantized folder exports only this way, whatever ``precision`` says.
The export's ``model.json`` is the model description, as for every format: the record of the quantization
(settings, the guard's numbers) is kept only in a quantized folder's ``model.json``, so make one with ``quantize``
first to keep it.

A model of other bands (grey, 16-bit, RGB+NIR, ...) takes its own bands and type where the table says uint8 and 3
(its model.json records them). H and W are free unless ``input_size`` fixes them. A TFLite model with free sizes needs
``interpreter.resize_tensor_input(index, [H, W, 3])`` and ``allocate_tensors()`` before each new size.
ONNX needs the optional packages ``tf2onnx`` and ``onnxruntime`` (``pip install refinenet_tf[onnx]``); other formats
import neither.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import tensorflow as tf

from refinenet_tf.checkpoints import resolve_checkpoint
from refinenet_tf.defaults import CALIBRATION_IMAGES, INT8_TOLERANCE
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.hardware import choose_precision
from refinenet_tf.predict.inference_graph import INPUT, InputSpec, build_inference_graph
from refinenet_tf.predict.int8 import INT8_FILE, check_calibration, is_quantized, require_onnxruntime
from refinenet_tf.predict.predictor import description_for_checkpoint
from refinenet_tf.quantize.onnx_graph import first_image_onnx, graph_to_onnx

v1 = tf.compat.v1

FORMATS = ("saved_model", "frozen", "tflite", "onnx")
BFLOAT16_FORMATS = ("saved_model", "frozen")  # the converters of the others have no bfloat16 convolutions
FILE_NAMES = {"frozen": "model.pb", "tflite": "model.tflite", "onnx": "model.onnx"}
SIGNATURE = "serving_default"
SERVED_OUTPUTS = ("labels", "probabilities")


def export_model(checkpoint: str, output_dir: str, format: str = "saved_model",
                 description: ModelDescription | None = None,
                 input_size: tuple[int, int] | None = None, precision: str = "float32",
                 calibration: str | Sequence[str] | None = None, calibration_images: int = CALIBRATION_IMAGES,
                 val_list: str | None = None, data_dir: str | None = None,
                 tolerance: float = INT8_TOLERANCE) -> str:
    """Export ``checkpoint`` (file or directory; its model.json unless ``description`` is given) to ``output_dir``.

    ``input_size`` (height, width) fixes the image size of SavedModel, TFLite and ONNX exports (the
    frozen graph always takes any size). ``precision`` (float32, bfloat16 or auto) applies to SavedModel and
    frozen exports; int8 to ONNX, from a quantized model folder or from a checkpoint quantized on the
    ``calibration`` images (list file relative to ``data_dir``, folder or paths; ``calibration_images`` of them),
    guarded on the labelled ``val_list`` within ``tolerance`` mean IoU points when given. Returns the path of the
    exported model (folder or file).
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    quantized = is_quantized(checkpoint)
    precision = choose_precision(precision).precision
    precision = "int8" if quantized else precision  # a quantized folder is int8 whatever precision says
    if precision == "int8":
        _check_int8_request(checkpoint, format, quantized, calibration, val_list)
    elif calibration or val_list:
        raise ConfigError(f"{parameter('calibration')} and {parameter('val_list')} apply to {parameter('precision')} "
                          "int8: add it or drop them")
    if precision not in ("float32", "int8") and format not in BFLOAT16_FORMATS:
        raise ConfigError(f"{parameter('precision')} {precision} applies to {' and '.join(BFLOAT16_FORMATS)} "
                          f"exports; export {format} in float32")
    if input_size is not None:
        input_size = _checked_size(input_size)
        if format == "frozen":
            raise ConfigError("input_size does not apply to the frozen format (its graph takes any size)")
    prefix = checkpoint if quantized else resolve_checkpoint(checkpoint)
    description = description if description is not None else description_for_checkpoint(checkpoint)
    _prepare_folder(output_dir)
    if precision == "int8":
        path = _write_int8_onnx(prefix, description, output_dir, input_size, calibration=calibration,
                                calibration_images=calibration_images, val_list=val_list, data_dir=data_dir,
                                tolerance=tolerance)
    else:
        graph_def = build_inference_graph(description, prefix, precision=precision).frozen()
        writers = {"saved_model": _write_saved_model, "frozen": _write_frozen, "tflite": _write_tflite,
                   "onnx": _write_onnx}
        path = writers[format](graph_def, output_dir, input_size)
    description.save(output_dir)
    return path


def _check_int8_request(checkpoint: str, format: str, quantized: bool, calibration, val_list: str | None) -> None:
    """Refuse, before any work, an int8 export that cannot be made: another format than ONNX, calibration for a
    folder already quantized, a checkpoint without calibration images, or no ONNX Runtime."""
    if quantized and format != "onnx":
        raise ConfigError(f"{checkpoint}: a quantized model folder exports only as onnx (its int8 model); export "
                          f"the checkpoint it was quantized from as {format}")
    if format != "onnx":
        raise ConfigError(f"{parameter('precision')} int8 exports the onnx format only (ONNX Runtime's int8 "
                          f"model); use {parameter('format')} onnx, or export {format} in float32")
    if quantized and (calibration or val_list):
        raise ConfigError(f"{checkpoint} is quantized already: drop {parameter('calibration')} and "
                          f"{parameter('val_list')}")
    check_calibration(checkpoint, calibration)
    require_onnxruntime()


def _write_int8_onnx(checkpoint: str, description: ModelDescription, output_dir: str,
                     input_size: tuple[int, int] | None, **quantize_options) -> str:
    """The int8 model of a quantized folder, or of ``checkpoint`` quantized now, as the ONNX export's model.onnx."""
    from refinenet_tf.quantize.folder import quantized_folder  # deferred: ONNX Runtime, int8 exports only

    with quantized_folder(checkpoint, description, **quantize_options) as folder:
        return first_image_onnx(os.path.join(folder, INT8_FILE), os.path.join(output_dir, FILE_NAMES["onnx"]),
                                SERVED_OUTPUTS, input_size)


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
    """Create ``output_dir``, refusing a file, a checkpoint folder or a quantized model folder (whose model.json
    would be replaced)."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ConfigError(f"{output_dir}: is a file; the export goes into a folder")
    if glob.glob(os.path.join(glob.escape(output_dir), "*.index")):
        raise ConfigError(f"{output_dir}: holds checkpoints; export into another folder")
    if os.path.isdir(output_dir) and is_quantized(output_dir):
        raise ConfigError(f"{output_dir}: is a quantized model folder; export into another folder")
    os.makedirs(output_dir, exist_ok=True)


def _checked_size(size) -> tuple[int, int]:
    try:
        height, width = (int(value) for value in size)
    except (TypeError, ValueError):
        raise ConfigError(f"input_size must be (height, width), got {size!r}") from None
    if height < 1 or width < 1:
        raise ConfigError(f"input_size must be positive, got {size!r}")
    return height, width

