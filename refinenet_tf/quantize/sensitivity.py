"""Which quantized layers hurt most: float32 against int8 activations, layer by layer, on a few images.

Both ONNX models run with every intermediate tensor as an extra output. A tensor's signal-to-quantization-noise
ratio (SQNR, dB) compares its int8-model value with its float-model value, so it carries the error of every
layer before it; a layer's sensitivity is how many dB it loses: the lowest SQNR of its inputs minus the SQNR of
its output. The layers that lose most go back to float first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import onnx
from onnxruntime.quantization.qdq_loss_debug import (
    collect_activations,
    modify_model_output_intermediate_tensors,
)

from refinenet_tf.quantize.calibration import ImageReader

MAX_SQNR_DB = 100.0  # a tensor the int8 model computes exactly (the input, say)
_LOG = logging.getLogger(__name__)


def rank_layers(float_model: str, int8_model: str, images: ImageReader, op_types: Sequence[str],
                work_dir: str) -> list[str]:
    """The names of the ``float_model`` nodes of ``op_types``, most sensitive to int8 first (see module doc)."""
    float_values = _activations(float_model, images, os.path.join(work_dir, "float_all_tensors.onnx"))
    int8_values = _activations(int8_model, images, os.path.join(work_dir, "int8_all_tensors.onnx"))
    sqnr = {name: signal_to_noise(values, int8_values[name]) for name, values in float_values.items()
            if name in int8_values}
    losses = {}
    for node in onnx.load(float_model).graph.node:
        inputs = [sqnr[name] for name in node.input if name in sqnr]
        if node.op_type in op_types and inputs and node.output[0] in sqnr:
            losses[node.name] = min(inputs) - sqnr[node.output[0]]
    ranked = sorted(losses, key=losses.get, reverse=True)
    _LOG.debug("most sensitive layers: %s", ", ".join(f"{name} ({losses[name]:.1f} dB)" for name in ranked[:5]))
    return ranked


def signal_to_noise(reference: Sequence[np.ndarray], noisy: Sequence[np.ndarray]) -> float:
    """SQNR in dB of ``noisy`` against ``reference`` (lists of arrays, summed over all), at most MAX_SQNR_DB."""
    signal = sum(float(np.sum(np.square(array, dtype=np.float64))) for array in reference)
    noise = sum(float(np.sum(np.square(np.asarray(a, np.float64) - b))) for a, b in zip(reference, noisy, strict=True))
    if noise == 0.0:
        return MAX_SQNR_DB
    return min(MAX_SQNR_DB, 10.0 * np.log10(max(signal, 1e-30) / noise))


def _activations(model: str, images: ImageReader, augmented: str) -> dict[str, list[np.ndarray]]:
    """Every float tensor of ``model`` for each of ``images``, by name."""
    modify_model_output_intermediate_tensors(model, augmented)
    images.rewind()
    try:
        return collect_activations(augmented, images)
    finally:
        os.remove(augmented)
