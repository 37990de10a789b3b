"""Start a model of other input bands (grey, RGB+NIR, multispectral) from RGB weights: adapt its first convolution.

A 3-band checkpoint's first kernel ``[k, k, 3, filters]`` becomes ``[k, k, bands, filters]``:

- each RGB filter is put in RGB order (a BGR model's are reversed) and multiplied by the spread its input had in
  the source model: ImageNet's pixel standard deviation in the source's units (about 58 for DeepLab's
  mean-subtracted pixels, 1 for torchvision's normalised ones). The new model's bands are normalised to unit
  spread (their own mean and standard deviation, see :mod:`refinenet_tf.data.band_statistics`), so a filter gives
  the response it gave to natural RGB images;
- a model of 3 or more bands keeps these filters for its first three bands (taken as R, G, B), and each further
  band starts from their mean;
- a grey model's one band takes their sum (a grey image is R = G = B), and a two-band model's second band their
  mean.
"""

from __future__ import annotations

import numpy as np

from refinenet_tf.description import IMAGENET_STD_RGB, Preprocessing

RGB_BANDS = 3


def is_rgb_input_kernel(saved_shape, model_shape) -> bool:
    """True for a checkpoint kernel of 3 input bands whose model kernel differs at most in its input bands: the
    first convolution, which a model of other bands adapts."""
    saved_shape, model_shape = list(saved_shape), list(model_shape)
    return (len(saved_shape) == len(model_shape) == 4 and saved_shape[2] == RGB_BANDS and
            saved_shape[:2] == model_shape[:2] and saved_shape[3] == model_shape[3])


def adapt_input_kernel(kernel: np.ndarray, source: Preprocessing, bands: int) -> np.ndarray:
    """The RGB ``kernel`` ``[k, k, 3, filters]`` of a model preprocessed by ``source``, for ``bands`` unit-spread
    input bands (see the module's docstring)."""
    kernel = np.asarray(kernel, np.float64)
    rgb = kernel[:, :, ::-1] if source.channel_order == "BGR" else kernel
    source_std_rgb = np.asarray(source.std[::-1] if source.channel_order == "BGR" else source.std, np.float64)
    spread = np.asarray(IMAGENET_STD_RGB) * 255.0 * source.scale / source_std_rgb
    rgb = rgb * spread[None, None, :, None]
    mean = rgb.mean(axis=2)
    if bands == 1:
        columns = [rgb.sum(axis=2)]
    elif bands == 2:
        columns = [rgb.sum(axis=2), mean]
    else:
        columns = [rgb[:, :, band] for band in range(RGB_BANDS)] + [mean] * (bands - RGB_BANDS)
    return np.stack(columns, axis=2).astype(np.float32)
