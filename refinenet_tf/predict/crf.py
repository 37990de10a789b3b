"""Fully connected CRF post-processing (Krähenbühl & Koltun) with pydensecrf, in-process or in workers.

The unary term is ``-log`` of the network's softmax probabilities; a Gaussian (smoothness) kernel and
a bilateral (appearance) kernel on the RGB uint8 image form the pairwise terms. The defaults are the
DeepLab ones: Gaussian sxy=1 compat=4, bilateral sxy=49 srgb=13 compat=5, 10 mean-field iterations.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from refinenet_tf.errors import ConfigError, DataError, parameter

INSTALL_HINT = 'pip install "refinenet_tf[crf]" (or: pip install pydensecrf2)'
# Probabilities are floored before the log so a confident-but-wrong zero stays correctable.
PROBABILITY_FLOOR = 1e-5


@dataclass(frozen=True)
class CRFParams:
    """Dense CRF settings; the defaults are DeepLab's."""

    iterations: int = 10
    gaussian_sxy: float = 1.0
    gaussian_compat: float = 4.0
    bilateral_sxy: float = 49.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 5.0

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ConfigError(f"{parameter('iterations')} must be at least 1, got {self.iterations}")
        for name in ("gaussian_sxy", "bilateral_sxy", "bilateral_srgb"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{parameter(name)} must be positive, got {getattr(self, name)}")
        for name in ("gaussian_compat", "bilateral_compat"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{parameter(name)} must not be negative, got {getattr(self, name)}")


def _densecrf_module():
    try:
        import pydensecrf.densecrf as densecrf  # optional: only the CRF needs it
    except ImportError:
        raise ConfigError(f"dense CRF needs the pydensecrf package, which is not installed: {INSTALL_HINT}") from None
    return densecrf


def require_pydensecrf() -> None:
    """Raise a ConfigError naming the install command when pydensecrf is missing."""
    _densecrf_module()


def check_crf_applies(preprocessing) -> None:
    """Refuse, in one line, a dense CRF for a model whose images are not 8-bit RGB (its pairwise terms compare RGB
    colours)."""
    if not preprocessing.is_rgb:
        raise ConfigError(f"{parameter('crf')} needs a model of 8-bit RGB images (the dense CRF compares RGB colours); "
                          f"this model takes {preprocessing.channels}-band {preprocessing.input_dtype} images")


def _check_inputs(probabilities: np.ndarray, image_rgb: np.ndarray) -> None:
    if probabilities.ndim != 3:
        raise DataError(f"CRF probabilities must be (height, width, classes), got shape {probabilities.shape}")
    if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise DataError(f"CRF image must be uint8 (height, width, 3), got {image_rgb.dtype} {image_rgb.shape}")
    if image_rgb.shape[:2] != probabilities.shape[:2]:
        raise DataError(f"CRF image is {image_rgb.shape[:2]} but the probabilities are {probabilities.shape[:2]}")


def dense_crf(probabilities: np.ndarray, image_rgb: np.ndarray, params: CRFParams | None = None) -> np.ndarray:
    """Refine softmax probabilities (H, W, C) with a dense CRF on ``image_rgb`` (H, W, 3) uint8.

    Returns the CRF's marginals, float32 (H, W, C). Any number of classes works.
    """
    densecrf = _densecrf_module()
    params = params if params is not None else CRFParams()
    probabilities = np.asarray(probabilities, dtype=np.float32)
    image_rgb = np.asarray(image_rgb)
    _check_inputs(probabilities, image_rgb)
    height, width, num_classes = probabilities.shape
    unary = -np.log(np.maximum(probabilities, PROBABILITY_FLOOR))
    unary = np.ascontiguousarray(unary.reshape(-1, num_classes).T, dtype=np.float32)
    crf = densecrf.DenseCRF2D(width, height, num_classes)
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(sxy=params.bilateral_sxy, srgb=params.bilateral_srgb,
                             rgbim=np.array(image_rgb, dtype=np.uint8, order="C"), compat=params.bilateral_compat)
    marginals = np.asarray(crf.inference(params.iterations), dtype=np.float32)
    return marginals.reshape(num_classes, height, width).transpose(1, 2, 0).copy()


class CRFPool:
    """Runs :func:`dense_crf` in worker processes as an ordered, streaming map.

    At most ``max_pending`` items are in flight, so a fast producer cannot fill memory with
    probability maps. Workers are spawned (not forked) so a parent that runs TensorFlow is safe.
    With one process everything runs in the calling process. Use it as a context manager.
    """

    def __init__(self, params: CRFParams | None = None, processes: int | None = None,
                 max_pending: int | None = None):
        require_pydensecrf()
        self.params = params if params is not None else CRFParams()
        self.processes = processes if processes is not None else (os.cpu_count() or 1)
        if self.processes < 1:
            raise ConfigError(f"CRF worker count must be at least 1, got {self.processes}")
        self.max_pending = max_pending if max_pending is not None else 2 * self.processes
        if self.max_pending < 1:
            raise ConfigError(f"max_pending must be at least 1, got {self.max_pending}")
        self._pool = None
        if self.processes > 1:
            self._pool = multiprocessing.get_context("spawn").Pool(self.processes)

    def map_tagged(self, items: Iterable[tuple[Any, np.ndarray, np.ndarray]]) -> Iterator[tuple[Any, np.ndarray]]:
        """``(tag, probabilities, image_rgb)`` items -> ``(tag, refined probabilities)``, in order.

        The tag (e.g. the ground-truth mask or a file name) never leaves this process.
        """
        if self._pool is None:
            for tag, probabilities, image_rgb in items:
                yield tag, dense_crf(probabilities, image_rgb, self.params)
            return
        pending: deque = deque()
        for tag, probabilities, image_rgb in items:
            pending.append((tag, self._pool.apply_async(dense_crf, (probabilities, image_rgb, self.params))))
            if len(pending) >= self.max_pending:
                tag, result = pending.popleft()
                yield tag, result.get()
        while pending:
            tag, result = pending.popleft()
            yield tag, result.get()

    def map(self, items: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[np.ndarray]:
        """``(probabilities, image_rgb)`` items -> refined probabilities, in order."""
        for _, refined in self.map_tagged((None, probabilities, image) for probabilities, image in items):
            yield refined

    def close(self) -> None:
        """Stop the workers (pending work is abandoned)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> CRFPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
