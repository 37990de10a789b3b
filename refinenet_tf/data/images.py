"""Decode and validate one image or one mask with PIL, failing with a message that names the file."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image

from refinenet_tf.data.listfile import read_list_file, spread_over
from refinenet_tf.defaults import IMAGE_EXTENSIONS
from refinenet_tf.description import Preprocessing
from refinenet_tf.errors import DataError, parameter

# Modes PIL converts to RGB without losing meaning (alpha is dropped, palettes are expanded).
_COLOUR_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"}
_ALPHA_MODES = {"LA", "PA", "RGBA"}
_LOG = logging.getLogger(__name__)
_alpha_said = threading.Event()  # the alpha channel's fate is logged once per process
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_MAX_LISTED_VALUES = 10
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def is_image_file(path: str) -> bool:
    """True for a file whose name has one of :data:`~refinenet_tf.defaults.IMAGE_EXTENSIONS`."""
    return path.lower().endswith(IMAGE_EXTENSIONS)


def image_files(folder: str) -> list[str]:
    """The image files directly inside ``folder``, sorted, hidden files left out ([] when it does not exist)."""
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if is_image_file(name) and not name.startswith(".") and os.path.isfile(os.path.join(folder, name)))


def images_named_by(path: str, data_dir: str | None = None) -> list[str]:
    """The image files ``path`` names: the file itself, a folder's images, or a list file's images (relative
    to ``data_dir``, default the list's folder; a mask column is ignored)."""
    if os.path.isdir(path):
        images = image_files(path)
        if not images:
            raise DataError(f"{path}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return images
    if not os.path.isfile(path):
        raise DataError(f"{path}: image not found")
    if is_image_file(path):
        return [path]
    root = data_dir if data_dir is not None else os.path.dirname(os.path.abspath(path))
    return [sample.image_path for sample in read_list_file(root, path, require_masks=False)]


def load_image(path: str) -> np.ndarray:
    """Read an image file as a uint8 HxWx3 RGB array (grey, RGBA and palette images are converted)."""
    with _open(path, "image") as image:
        if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
            raise DataError(f"{path}: a {image.mode} (16/32-bit) image, but the model takes 8-bit RGB images; train a "
                            "model on such images (it records their type in model.json) or save them as 8-bit")
        if image.mode not in _COLOUR_MODES:
            raise DataError(
                f"{path}: image mode {image.mode!r} is not supported; save it as 8-bit RGB or grey"
            )
        _say_alpha_is_dropped(path, image.mode)
        if image.mode != "RGB":
            image = _to_rgb(image)
        return np.asarray(image, dtype=np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit image of any colour mode as RGB: palettes expanded, alpha dropped."""
    with warnings.catch_warnings():
        # PIL warns about palette transparency; dropping it is what we want.
        warnings.simplefilter("ignore")
        return image.convert("RGBA" if image.mode in ("P", "PA") else "RGB").convert("RGB")


def _say_alpha_is_dropped(path: str, mode: str) -> None:
    """Log once per process that alpha channels are dropped."""
    if mode in _ALPHA_MODES and not _alpha_said.is_set():
        _alpha_said.set()
        _LOG.warning("%s: has an alpha channel (%s); alpha is dropped, here and in every other such image (it is "
                     "not taken as a band: store extra bands as TIFF or .npy)", path, mode)


def read_bands(path: str) -> np.ndarray:
    """Read an image's bands as stored, HxWxB in the file's own type: ``.npy`` arrays, TIFF (any band count,
    band-last or planar, with tifffile when it is installed), and 8/16-bit grey or RGB images through PIL (alpha
    dropped, palettes expanded)."""
    name = path.lower()
    if name.endswith(".npy"):
        array = _load_array(path)
    elif name.endswith((".tif", ".tiff")) and _tifffile() is not None:
        array = _read_tiff(path)
    else:
        with _open(path, "image") as image:
            _say_alpha_is_dropped(path, image.mode)
            if image.mode in ("P", "PA", "RGBA", "RGBX", "CMYK", "YCbCr", "1"):
                image = _to_rgb(image)
            elif image.mode == "LA":
                image = image.convert("L")
            array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or not array.size or not (np.issubdtype(array.dtype, np.integer)
                                                 or np.issubdtype(array.dtype, np.floating)):
        raise DataError(f"{path}: expected an image of shape (height, width[, bands]) with numbers, got "
                        f"{array.dtype} {array.shape}")
    return array


def _tifffile():
    """The tifffile module, or None when the optional package is missing (PIL then reads what it can)."""
    try:
        import tifffile  # optional: N-band and float TIFF files
    except ImportError:
        return None
    return tifffile


def _read_tiff(path: str) -> np.ndarray:
    """A TIFF's pixels band-last (planar files, bands first, are transposed)."""
    try:
        array = _tifffile().imread(path)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except Exception as error:  # tifffile raises many types for broken files
        raise DataError(f"{path}: cannot decode the TIFF, the file is unreadable or truncated ({error})") from None
    if array.ndim == 3 and array.shape[0] < min(array.shape[1:]) and array.shape[-1] > array.shape[0]:
        array = np.moveaxis(array, 0, -1)
    return array


def load_model_image(path: str, preprocessing: Preprocessing) -> np.ndarray:
    """Read an image for a model whose input ``preprocessing`` describes: uint8 RGB for an RGB model
    (:func:`load_image`), else its bands in the model's type, checked against the model's band count and bit depth.
    """
    if preprocessing.is_rgb and not path.lower().endswith(".npy"):
        return load_image(path)
    return checked_bands(read_bands(path), preprocessing, path)


def checked_bands(array: np.ndarray, preprocessing: Preprocessing, source: str) -> np.ndarray:
    """``array`` (HxWxB) as the model's input type, or a DataError naming ``source``: band count and bit depth
    must be the model's (a float model takes any numbers)."""
    if array.ndim == 2 and preprocessing.channels == 1:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] != preprocessing.channels:
        bands = array.shape[-1] if array.ndim == 3 else 1
        raise DataError(f"{source}: {bands} bands (shape {array.shape}), but the model takes "
                        f"{preprocessing.channels}; give images with the model's bands or train a model on these")
    wanted = np.dtype(preprocessing.input_dtype)
    if wanted.kind == "f":
        return array.astype(np.float32, copy=False)
    if array.dtype != wanted:
        raise DataError(f"{source}: {_depth(array.dtype)} values, but the model description says "
                        f"{_depth(wanted)} images; give it {_depth(wanted)} images or train a model on these")
    return array


def _depth(dtype: np.dtype) -> str:
    return {"uint8": "8-bit", "uint16": "16-bit"}.get(np.dtype(dtype).name, np.dtype(dtype).name)


def display_rgb(image: np.ndarray) -> np.ndarray:
    """A uint8 RGB picture of an image for overlays and reports: RGB images as they are; other images show their
    first three bands (grey repeated), each stretched from its 2nd to its 98th percentile."""
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3:
        return image
    bands = image[..., :3] if image.shape[-1] >= 3 else np.repeat(image[..., :1], 3, axis=-1)
    bands = bands.astype(np.float32)
    low, high = np.percentile(bands, [2, 98], axis=(0, 1))
    stretched = (bands - low) / np.maximum(high - low, 1e-6)
    return np.round(np.clip(stretched, 0, 1) * 255).astype(np.uint8)


def image_size(path: str) -> tuple[int, int]:
    """(height, width) of an image file, from its header (the pixels are not decoded)."""
    if path.lower().endswith(".npy"):
        return _array_size(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except _DECODE_ERRORS as error:
        if path.lower().endswith((".tif", ".tiff")) and _tifffile() is not None:  # bands PIL does not read
            return read_bands(path).shape[:2]
        raise _decode_error(path, "image", error) from None
    return height, width


def load_mask(path: str) -> np.ndarray:
    """Read a mask as a uint8 HxW array of class indices; only single-channel 8-bit masks are accepted."""
    with _open(path, "mask") as mask:
        _check_mask_format(mask, path)
        return np.asarray(mask, dtype=np.uint8)


def check_labels(mask: np.ndarray, num_classes: int, ignore_label: int, path: str) -> None:
    """Refuse a mask holding values that are neither a class index (< num_classes) nor ignore_label."""
    counts = np.bincount(mask.ravel(), minlength=256)
    bad_values = [value for value in np.flatnonzero(counts) if value >= num_classes and value != ignore_label]
    if not bad_values:
        return
    listed = ", ".join(f"{value} ({counts[value]} px)" for value in bad_values[:_MAX_LISTED_VALUES])
    more = f" and {len(bad_values) - _MAX_LISTED_VALUES} more" if len(bad_values) > _MAX_LISTED_VALUES else ""
    raise DataError(
        f"{path}: label values {listed}{more} are not classes 0..{num_classes - 1} nor the ignore label "
        f"{ignore_label} (check {parameter('num_classes')} and {parameter('ignore_label')})"
    )


def check_masks_hold_classes(mask_paths: Sequence[str], ignore_label: int, source: str, sample: int = 32) -> None:
    """Refuse masks that hold nothing but 0 and the ignore label (looked for in up to ``sample`` masks spread over
    the list): binary masks stored as 0/255 with the ignore label 255, which would train on the background alone,
    every foreground pixel ignored."""
    if not mask_paths:
        return
    picked = spread_over(mask_paths, sample)
    found: set[int] = set()
    for path in picked:
        try:
            found.update(np.flatnonzero(np.bincount(load_mask(path).ravel(), minlength=256)).tolist())
        except DataError:
            continue  # the reader reports an unreadable mask in its own way (or skips it)
        if found - {0, ignore_label}:
            return
    if ignore_label in found:
        raise DataError(
            f"{source}: the masks hold only 0 and {ignore_label}, the ignore label ({len(picked)} of {len(mask_paths)} "
            f"read): binary masks stored as 0/{ignore_label}? Every foreground pixel would be ignored; make them "
            f"0/1 with convert_masks.py MASKS --format binary --output-dir OUT, or set {parameter('ignore_label')} "
            "if another value marks what to ignore")


def _load_array(path: str, mmap_mode: str | None = None) -> np.ndarray:
    """A ``.npy`` file's array (``mmap_mode='r'``: mapped, only its header read), or a DataError naming the file."""
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read the array ({error})") from None


def _array_size(path: str) -> tuple[int, int]:
    """(height, width) of a ``.npy`` image, read from its header."""
    shape = _load_array(path, mmap_mode="r").shape
    if len(shape) not in (2, 3):
        raise DataError(f"{path}: expected an image of shape (height, width[, bands]), got {shape}")
    return int(shape[0]), int(shape[1])


def load_pair(
    image_path: str, mask_path: str, num_classes: int, ignore_label: int, preprocessing: Preprocessing | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load an image (for a model of ``preprocessing``, default uint8 RGB) and its mask, checking the label values
    and that both have the same size."""
    image = load_image(image_path) if preprocessing is None else load_model_image(image_path, preprocessing)
    mask = load_mask(mask_path)
    if image.shape[:2] != mask.shape:
        raise DataError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} (width x height) but its image "
            f"{image_path} is {image.shape[1]}x{image.shape[0]}"
        )
    check_labels(mask, num_classes, ignore_label, mask_path)
    return image, mask


def _open(path: str, kind: str) -> Image.Image:
    """Open and fully decode a file, turning every PIL/OS failure into a DataError."""
    try:
        image = Image.open(path)
    except FileNotFoundError:
        raise DataError(f"{path}: {kind} file not found") from None
    except _DECODE_ERRORS as error:
        raise _decode_error(path, kind, error) from None
    try:
        image.load()
    except _DECODE_ERRORS as error:
        image.close()
        raise _decode_error(path, kind, error) from None
    return image


def _decode_error(path: str, kind: str, error: Exception) -> DataError:
    return DataError(
        f"{path}: cannot decode the {kind}, the file is unreadable, truncated or too large ({error})"
    )


def _check_mask_format(mask: Image.Image, path: str) -> None:
    if mask.mode == "L":
        if mask.format == "JPEG":
            raise DataError(
                f"{path}: mask is a JPEG; lossy compression changes label values, save masks as PNG"
            )
        return
    if mask.mode in ("P", "PA"):
        raise DataError(
            f"{path}: mask is a palette (colour-mapped) PNG, its colours are not class indices; "
            "convert the masks with: python convert_masks.py --format palette ..."
        )
    if mask.mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr"):
        raise DataError(
            f"{path}: mask is a colour ({mask.mode}) image, not a single-channel index mask; convert the "
            "masks with: python convert_masks.py --format rgb --class-dict class_dict.csv ..."
        )
    if mask.mode in _SIXTEEN_BIT_MODES:
        raise DataError(
            f"{path}: mask is a 16/32-bit ({mask.mode}) image; save it as an 8-bit single-channel "
            "index PNG (mode L) with values 0..num_classes-1 and the ignore label"
        )
    raise DataError(f"{path}: mask mode {mask.mode!r} is not a single-channel 8-bit index image (mode L)")


def open_image(path: str) -> Image.Image:
    """Open and decode an image, or raise a DataError naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: cannot read the image ({error})") from None
