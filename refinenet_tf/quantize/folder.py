"""The quantized model folder: quantize a checkpoint (guarded), write its model.json, open it for prediction or
make one for the length of a ``with`` block."""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence

from onnxruntime.quantization import quantize_static

from refinenet_tf.checkpoints import resolve_checkpoint
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.defaults import CALIBRATION_IMAGES, INT8_TOLERANCE, SENSITIVITY_IMAGES
from refinenet_tf.description import FILE_NAME, INT8_KEY, ModelDescription, description_path
from refinenet_tf.errors import ConfigError
from refinenet_tf.files import write_text_atomically
from refinenet_tf.hardware import CPU_FEATURES, cpu_flags
from refinenet_tf.predict.graph import PredictOptions
from refinenet_tf.predict.int8 import (
    FLOAT_FILE,
    INT8_FILE,
    OnnxPredictor,
    check_calibration,
    check_single_scale,
    is_quantized,
)
from refinenet_tf.quantize.calibration import ImageReader, calibration_paths
from refinenet_tf.quantize.guard import GuardResult, compare, guarded
from refinenet_tf.quantize.onnx_graph import write_batch_onnx
from refinenet_tf.quantize.sensitivity import rank_layers
from refinenet_tf.quantize.settings import VNNI_FLAGS, QuantSettings, settings_for_cpu

_LOG = logging.getLogger(__name__)


def quantize_checkpoint(checkpoint: str, description: ModelDescription, output_dir: str,
                        calibration: str | Sequence[str],
                        val_list: str | None = None, data_dir: str | None = None,
                        tolerance: float = INT8_TOLERANCE, calibration_images: int = CALIBRATION_IMAGES,
                        flags: Iterable[str] | None = None, settings: QuantSettings | None = None,
                        threads: int | None = None) -> dict:
    """Quantize ``checkpoint`` into ``output_dir`` and return model.json's ``int8`` section.

    ``calibration`` is a list file (relative to ``data_dir``), a folder of images or image paths, of which the first
    ``calibration_images`` are used. ``val_list`` (labelled, relative to ``data_dir``) turns on the accuracy guard
    (:mod:`refinenet_tf.quantize.guard`) with ``tolerance`` mean IoU points. ``settings`` default to
    :func:`~refinenet_tf.quantize.settings.settings_for_cpu` of ``flags`` (default: this CPU's).
    """
    prefix = resolve_checkpoint(checkpoint)
    flags = set(cpu_flags() if flags is None else flags)
    settings = settings if settings is not None else settings_for_cpu(flags)
    paths = (calibration_paths(calibration, data_dir, calibration_images) if isinstance(calibration, str)
             else list(calibration)[:calibration_images])
    samples = read_list_file(data_dir or os.path.dirname(os.path.abspath(val_list)), val_list) if val_list else None
    if glob.glob(os.path.join(glob.escape(output_dir), "*.index")):  # its model.json would turn the folder int8
        raise ConfigError(f"{output_dir}: holds checkpoints; write the int8 model folder elsewhere")
    os.makedirs(output_dir, exist_ok=True)
    float_path, int8_path = os.path.join(output_dir, FLOAT_FILE), os.path.join(output_dir, INT8_FILE)
    write_batch_onnx(description, prefix, float_path)
    float_model = OnnxPredictor(float_path, threads)
    reader = ImageReader(paths, float_model.input_name, description.preprocessing)

    def quantize(float_layers: list[str]) -> GuardResult:
        reader.rewind()
        root = logging.getLogger()
        root.addFilter(_without_preprocessing_advice)
        try:
            quantize_static(float_path, int8_path, reader, nodes_to_exclude=float_layers,
                            **settings.quantize_static_arguments())
        finally:
            root.removeFilter(_without_preprocessing_advice)
        if samples is None:
            return GuardResult(float("nan"), float("nan"), float("nan"), 0, float_layers)
        with OnnxPredictor(int8_path, threads) as int8_model:
            result = compare(float_model, int8_model, samples, description)
        result.float_layers = float_layers
        return result

    def rank() -> list[str]:
        with tempfile.TemporaryDirectory(dir=output_dir) as work_dir:
            return rank_layers(float_path, int8_path, ImageReader(paths[:SENSITIVITY_IMAGES], reader.input_name, description.preprocessing),
                               settings.op_types, work_dir)

    if samples is None:
        _LOG.warning("int8 quantized without a validation list: its accuracy against float32 is not checked")
        result = quantize([])
    else:
        result = guarded(quantize, rank, tolerance, val_list)
    section = {"model": INT8_FILE, "float_model": FLOAT_FILE, "checkpoint": prefix, "scales": [1.0], "flip": False,
               "calibration": calibration if isinstance(calibration, str) else None,
               "calibration_images": len(paths), "settings": settings.to_dict(),
               "cpu_flags": sorted(flags & {*CPU_FEATURES, *VNNI_FLAGS}),
               "guard": result.to_dict(tolerance) if samples is not None else None}
    data = {**description.to_dict(), INT8_KEY: section}
    write_text_atomically(os.path.join(output_dir, FILE_NAME), json.dumps(data, indent=2) + "\n")
    return section


def _without_preprocessing_advice(record: logging.LogRecord) -> bool:
    """Drops ONNX Runtime's advice to run its shape-inference pre-pass: the models have free image sizes, and the
    QDQ quantization of their convolutions needs no inferred shapes."""
    return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def quantized_folder(model: str, description: ModelDescription, calibration: str | Sequence[str] | None = None,
                     data_dir: str | None = None, threads: int | None = None, **quantize_options) -> Iterator[str]:
    """The quantized model folder of ``model`` for the ``with`` block: ``model``'s own folder when it is one, else a
    temporary folder, deleted afterwards, holding ``model`` quantized now on the ``calibration`` images by
    :func:`quantize_checkpoint` (``quantize_options``: its ``val_list``, ``tolerance``, ``calibration_images``...)."""
    if is_quantized(model):
        yield os.path.dirname(description_path(model))
        return
    check_calibration(model, calibration)
    with tempfile.TemporaryDirectory(prefix="refinenet_int8_", ignore_cleanup_errors=True) as folder:
        quantize_checkpoint(model, description, folder, calibration, data_dir=data_dir, threads=threads,
                            **quantize_options)
        yield folder


def int8_predictor(model: str, description: ModelDescription, options: PredictOptions, threads: int | None = None,
                   calibration: str | Sequence[str] | None = None, data_dir: str | None = None) -> OnnxPredictor:
    """The int8 runner of ``model``: a quantized folder's model, or a checkpoint quantized now on the
    ``calibration`` images (unguarded, in a temporary folder)."""
    check_single_scale(options)
    with quantized_folder(model, description, calibration, data_dir, threads) as folder:
        return OnnxPredictor(os.path.join(folder, INT8_FILE), threads)  # the session holds the model: no file needed
