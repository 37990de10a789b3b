"""int8 prediction: a quantized ONNX model run by ONNX Runtime behind the :class:`GraphPredictor` contract.

A quantized model folder (``python -m refinenet_tf quantize``) holds ``model.int8.onnx`` (int8 convolutions,
float softmax, argmax and final resize), the float ``model.onnx`` it was made from, and ``model.json`` with an
``int8`` section saying how it was quantized and what the accuracy guard measured. :class:`OnnxPredictor`
runs either ONNX model with :meth:`run_batch` as :class:`~refinenet_tf.predict.inference_graph.GraphPredictor`
does, so :class:`~refinenet_tf.predict.predictor.Predictor` (and every command built on it) uses it unchanged.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from refinenet_tf.description import INT8_KEY, description_path, read_description_json
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.predict.graph import SINGLE_SCALE, PredictOptions
from refinenet_tf.predict.inference_graph import OUTPUTS, ClosesOnExit, InputSpec, checked_images

INT8_FILE = "model.int8.onnx"
FLOAT_FILE = "model.onnx"
BATCH_OUTPUTS = OUTPUTS[3:]  # what the ONNX models compute: every image's labels, probabilities and logits
_LOG = logging.getLogger(__name__)


def require_onnxruntime():
    """The ``onnxruntime`` module, or a one-line ConfigError saying how to install it."""
    try:
        import onnxruntime  # optional: only int8 prediction and quantization need it
    except ImportError:
        raise ConfigError('int8 needs ONNX Runtime: pip install "refinenet_tf[onnx]"') from None
    return onnxruntime


def int8_section(path: str) -> dict | None:
    """The ``int8`` section of the model.json of ``path`` (a model folder or file in it), or None."""
    json_path = description_path(path)
    if not os.path.isfile(json_path):
        return None
    data = read_description_json(json_path)
    return data.get(INT8_KEY) if isinstance(data, dict) else None


def is_quantized(path: str) -> bool:
    """True when ``path`` is a quantized model folder (its model.json has an ``int8`` section)."""
    return int8_section(path) is not None


def check_calibration(model: str, calibration) -> None:
    """A plain checkpoint needs calibration images to run in int8; without them, a ConfigError naming both ways out."""
    if not calibration and not is_quantized(model):
        raise ConfigError(f"{model}: int8 needs a quantized model folder (python -m refinenet_tf quantize) or "
                          f"calibration images ({parameter('calibration')})")


def check_single_scale(options: PredictOptions) -> None:
    """int8 models are made for single-scale prediction without mirroring; anything else is a ConfigError."""
    if options != SINGLE_SCALE:
        raise ConfigError(f"int8 predicts at a single scale without flipping; drop {parameter('scales')} "
                          f"{','.join(f'{scale:g}' for scale in options.scales)}/{parameter('flip')} or use float32")


class OnnxPredictor(ClosesOnExit):
    """An ONNX model of the batch outputs (``image`` [N,H,W,bands] -> :data:`BATCH_OUTPUTS`) in ONNX Runtime.

    >>> with OnnxPredictor("quantized/model.int8.onnx", threads=2) as runner:
    ...     labels = runner.run_batch(images_rgb, ("batch_labels",))["batch_labels"]  # [N,H,W]
    """

    def __init__(self, path: str, threads: int | None = None):
        onnxruntime = require_onnxruntime()
        if not os.path.isfile(path):
            raise ConfigError(f"{path}: ONNX model not found (make a quantized folder with "
                              "python -m refinenet_tf quantize)")
        options = onnxruntime.SessionOptions()
        # Idle pool threads sleep instead of spinning: TensorFlow (data, float32 models) shares the cores; measured
        # 2-3x faster here with other work running (docs/INT8.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.path = path
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.output_names = {output.name.split(":")[0]: output.name for output in self.session.get_outputs()}
        image = self.session.get_inputs()[0]
        self.input_name = image.name
        self.input_spec = InputSpec(image.type.removeprefix("tensor(").removesuffix(")"), int(image.shape[-1]))

    def predict(self, image_rgb: np.ndarray, outputs: tuple[str, ...] = BATCH_OUTPUTS[:2]) -> dict[str, np.ndarray]:
        """Run one image (H, W, bands); the batch outputs asked for, each of one image."""
        return self.run_batch(checked_images(image_rgb, self.input_spec)[None], outputs)

    def run_batch(self, images_rgb: np.ndarray, outputs: tuple[str, ...] = BATCH_OUTPUTS) -> dict[str, np.ndarray]:
        """Run images of one size (N, H, W, bands) together and return the requested outputs by name."""
        images = checked_images(images_rgb, self.input_spec, batch=True)
        unknown = sorted(set(outputs) - set(self.output_names))
        if unknown:
            raise ConfigError(f"unknown outputs {unknown} of the int8 model; choose from: {', '.join(self.output_names)}")
        arrays = self.session.run([self.output_names[name] for name in outputs], {self.input_name: images})
        return dict(zip(outputs, arrays, strict=True))

    def close(self) -> None:
        """Release the ONNX Runtime session."""
        self.session = None
