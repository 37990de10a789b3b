"""The user's images as ONNX Runtime calibration data: a list file's or a folder's images, one at a time."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from refinenet_tf.data.images import images_named_by, load_model_image
from refinenet_tf.data.listfile import spread_over
from refinenet_tf.defaults import CALIBRATION_IMAGES
from refinenet_tf.description import Preprocessing
from refinenet_tf.errors import ConfigError, parameter


def calibration_paths(source: str, data_dir: str | None = None, count: int = CALIBRATION_IMAGES) -> list[str]:
    """Up to ``count`` images of ``source``, spread over it: a list file (paths relative to ``data_dir``, masks
    ignored), a folder of images, or one image."""
    if count < 1:
        raise ConfigError(f"{parameter('calibration_images')} must be at least 1, got {count}")
    return spread_over(images_named_by(source, data_dir), count)


class ImageReader(CalibrationDataReader):
    """Feeds each image as a batch of one (``{input_name: [1,H,W,bands]}``, uint8 RGB for an RGB model, as
    ``preprocessing`` takes them), read when asked for."""

    def __init__(self, paths: Sequence[str], input_name: str, preprocessing: Preprocessing):
        self.paths = list(paths)
        self.input_name = input_name
        self.preprocessing = preprocessing
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next image's input, or None after the last."""
        if self.position >= len(self.paths):
            return None
        self.position += 1
        return {self.input_name: load_model_image(self.paths[self.position - 1], self.preprocessing)[None]}

    def rewind(self) -> None:
        """Start again from the first image."""
        self.position = 0
