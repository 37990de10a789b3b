"""The model description saved beside every checkpoint (``model.json``).

It records everything needed to rebuild the graph and feed it correctly: architecture, class count,
where the ResNet stride sits, how stride-2 layers pad, the batch-norm epsilon of the weight source,
input preprocessing, the ignore label and the class table. Scripts that restore a checkpoint read it,
so ``inference.py IMAGE CKPT`` needs no other flag.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from refinenet_tf.architectures import check_arch
from refinenet_tf.defaults import DEFAULT_ARCH, IGNORE_LABEL, NUM_CLASSES
from refinenet_tf.errors import DescriptionError, parameter
from refinenet_tf.files import write_text_atomically
from refinenet_tf.palette import voc_palette
from refinenet_tf.version import __version__

FILE_NAME = "model.json"
WRITER_KEY = "refinenet_tf_version"  # the version of refinenet-tf that wrote a model.json
INT8_KEY = "int8"  # a quantized model folder's section: how it was quantized (read by refinenet_tf.predict.int8)
_LOG = logging.getLogger(__name__)
FORMAT = "refinenet-tf model description"
FORMAT_VERSION = 1

# DeepLab-ResNet-TF's mean, in BGR order.
IMG_MEAN = (104.00698793, 116.66876762, 122.67891434)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
KERAS_RESNET_MEAN_BGR = (103.939, 116.779, 123.68)

INPUT_DTYPES = ("uint8", "uint16", "float32")  # what the model's images hold: 8-bit, 16-bit, or any numbers
STRIDE_PLACEMENTS = ("1x1", "3x3")
PADDINGS = ("same", "symmetric")
CHANNEL_ORDERS = ("RGB", "BGR")


@dataclass
class Preprocessing:
    """How an image becomes network input: ``(reorder(image) * scale - mean) / std``.

    An RGB model's images are uint8 RGB (``channel_order`` says whether the network sees them as RGB or BGR).
    Other models take ``channels`` bands (one ``mean`` and ``std`` per band, in the file's band order,
    ``channel_order`` RGB: no reordering) of ``input_dtype`` values: grey, 16-bit, RGB+NIR, multispectral.
    """

    channel_order: str = "BGR"
    scale: float = 1.0
    mean: tuple[float, ...] = IMG_MEAN
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    input_dtype: str = "uint8"

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS:
            raise DescriptionError(f"preprocessing.channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")
        if self.input_dtype not in INPUT_DTYPES:
            raise DescriptionError(f"preprocessing.input_dtype must be one of {INPUT_DTYPES}, got {self.input_dtype!r}")
        self.mean = _per_band(self.mean, "preprocessing.mean")
        self.std = _per_band(self.std, "preprocessing.std", len(self.mean))
        if self.channel_order == "BGR" and len(self.mean) != 3:
            raise DescriptionError(f"preprocessing.channel_order BGR needs 3 bands, the mean has {len(self.mean)}")
        if any(value <= 0 for value in self.std):
            raise DescriptionError(f"preprocessing.std must be positive, got {list(self.std)}")
        self.scale = float(self.scale)

    @property
    def channels(self) -> int:
        """How many bands the model's images have (3 for RGB)."""
        return len(self.mean)

    @property
    def is_rgb(self) -> bool:
        """True for a model of uint8 RGB images (every model before N-band support)."""
        return self.channels == 3 and self.input_dtype == "uint8"

    def apply(self, images_rgb):
        """Graph op: NHWC images (``channels`` bands, any numeric type) -> network input."""
        import tensorflow as tf  # deferred: reading and writing descriptions needs no TensorFlow

        images = tf.cast(images_rgb, tf.float32)
        if self.channel_order == "BGR":
            images = tf.reverse(images, axis=[-1])
        return (images * self.scale - tf.constant(self.mean, tf.float32)) / tf.constant(self.std, tf.float32)

    def apply_numpy(self, images_rgb: np.ndarray) -> np.ndarray:
        """The same as :meth:`apply` on a NumPy array (..., channels)."""
        images = np.asarray(images_rgb, dtype=np.float32)
        if self.channel_order == "BGR":
            images = images[..., ::-1]
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        return ((images * np.float32(self.scale) - mean) / std).astype(np.float32)

    def fill_value(self) -> tuple[float, ...]:
        """The pixel value, one per band in the image's order, that preprocesses to zero (the padding of crops)."""
        mean_in_order = np.asarray(self.mean) / self.scale
        rgb = mean_in_order[::-1] if self.channel_order == "BGR" else mean_in_order
        return tuple(float(v) for v in rgb)

    @classmethod
    def deeplab(cls) -> Preprocessing:
        """BGR minus IMG_MEAN (DeepLab-ResNet-TF, Caffe ResNets)."""
        return cls("BGR", 1.0, IMG_MEAN, (1.0, 1.0, 1.0))

    @classmethod
    def torch(cls) -> Preprocessing:
        """RGB / 255, ImageNet mean and std (torchvision, Light-Weight RefineNet, refinenet-pytorch)."""
        return cls("RGB", 1.0 / 255.0, IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)

    @classmethod
    def keras(cls) -> Preprocessing:
        """BGR minus the Keras ResNet mean ('caffe' mode of keras.applications.resnet)."""
        return cls("BGR", 1.0, KERAS_RESNET_MEAN_BGR, (1.0, 1.0, 1.0))


@dataclass
class ModelDescription:
    """Everything that defines a trained model apart from its weights."""

    arch: str
    num_classes: int
    stride_on: str = "1x1"
    padding: str = "same"
    batch_norm_epsilon: float = 1e-3
    preprocessing: Preprocessing = field(default_factory=Preprocessing.deeplab)
    ignore_label: int = IGNORE_LABEL
    class_names: list[str] | None = None
    colours: list[list[int]] | None = None

    def __post_init__(self) -> None:
        check_arch(self.arch)
        if isinstance(self.preprocessing, dict):
            self.preprocessing = Preprocessing(**self.preprocessing)
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise DescriptionError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        if self.stride_on not in STRIDE_PLACEMENTS:
            raise DescriptionError(f"stride_on must be one of {STRIDE_PLACEMENTS}, got {self.stride_on!r}")
        if self.padding not in PADDINGS:
            raise DescriptionError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise DescriptionError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if self.colours is not None:
            if len(self.colours) != self.num_classes or any(len(c) != 3 for c in self.colours):
                raise DescriptionError(f"colours must hold {self.num_classes} RGB triples")
            self.colours = [[int(v) for v in c] for c in self.colours]

    def names(self) -> list[str]:
        """Class names, or ``class_<i>`` where none were given."""
        return list(self.class_names) if self.class_names else [f"class_{i}" for i in range(self.num_classes)]

    def palette(self) -> np.ndarray:
        """One RGB colour per class: the description's own colours or the VOC palette."""
        if self.colours:
            return np.asarray(self.colours, dtype=np.uint8)
        return voc_palette(256)[: self.num_classes]

    def replace(self, **changes) -> ModelDescription:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["preprocessing"]["mean"] = list(self.preprocessing.mean)
        data["preprocessing"]["std"] = list(self.preprocessing.std)
        if self.preprocessing.input_dtype == "uint8":  # as before N-band support: older versions read it
            del data["preprocessing"]["input_dtype"]
        return {"format": FORMAT, "version": FORMAT_VERSION, WRITER_KEY: __version__, **data}

    @classmethod
    def from_dict(cls, data: dict, source: str = "model description") -> ModelDescription:
        data = dict(data)
        if data.pop("format", FORMAT) != FORMAT:
            raise DescriptionError(f"{source}: not a refinenet-tf model description")
        version = data.pop("version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise DescriptionError(f"{source}: description version {version} is newer than this refinenet-tf reads")
        warn_if_newer_major(data.pop(WRITER_KEY, None), source)
        data.pop(INT8_KEY, None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DescriptionError(f"{source}: unknown fields {unknown}")
        try:
            return cls(**data)
        except DescriptionError as error:
            raise DescriptionError(f"{source}: {error}") from None
        except TypeError as error:
            raise DescriptionError(f"{source}: {error}") from None

    def save(self, directory: str) -> str:
        """Write ``model.json`` into ``directory`` atomically; returns its path."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, FILE_NAME)
        write_text_atomically(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def warn_if_newer_major(written_by: str | None, source: str) -> None:
    """One warning line when ``source`` was written by a refinenet-tf of a newer major version than this one."""
    if not written_by:
        return
    try:
        newer = int(str(written_by).split(".")[0]) > int(__version__.split(".")[0])
    except ValueError:
        return
    if newer:
        _LOG.warning("%s: written by refinenet-tf %s, a newer major version than this %s; it may hold what this "
                     "version does not know (pip install -U refinenet_tf)", source, written_by, __version__)


def default_description(arch: str = DEFAULT_ARCH, num_classes: int = NUM_CLASSES, **overrides) -> ModelDescription:
    """A description with the usual settings for the architecture.

    ResNets default to DeepLab-ResNet-TF's conventions (stride on the 1x1, TF padding, BGR minus IMG_MEAN,
    epsilon 1e-3) so its ImageNet checkpoint restores as is; MobileNet-v2 to the official PyTorch ones.
    """
    if check_arch(arch).backbone == "mobilenetv2":
        settings = dict(stride_on="3x3", padding="symmetric", batch_norm_epsilon=1e-5,
                        preprocessing=Preprocessing.torch())
    else:
        settings = dict(stride_on="1x1", padding="same", batch_norm_epsilon=1e-3,
                        preprocessing=Preprocessing.deeplab())
    settings.update(overrides)
    return ModelDescription(arch=arch, num_classes=num_classes, **settings)


def description_path(path: str) -> str:
    """Where the description of a checkpoint lives: ``DIR/model.json`` for ``DIR`` or ``DIR/model.ckpt-N``."""
    if path.endswith(".json"):
        return path
    directory = path if os.path.isdir(path) else os.path.dirname(path) or "."
    return os.path.join(directory, FILE_NAME)


def has_description(path: str) -> bool:
    """True when a checkpoint (file prefix or directory) has a model.json beside it."""
    return os.path.isfile(description_path(path))


def load_description(path: str) -> ModelDescription:
    """Read the description of a checkpoint file, checkpoint directory or a model.json path."""
    json_path = description_path(path)
    if not os.path.isfile(json_path):
        raise DescriptionError(f"{json_path}: no model description found for {path} (give {parameter('arch')} and "
                               f"{parameter('num_classes')})")
    data = read_description_json(json_path)
    if not isinstance(data, dict):
        raise DescriptionError(f"{json_path}: expected a JSON object")
    return ModelDescription.from_dict(data, source=json_path)


def read_description_json(json_path: str):
    """The parsed content of a model.json file, or a DescriptionError naming it when it cannot be read."""
    try:
        with open(json_path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DescriptionError(f"{json_path}: cannot read the model description ({error})") from None


def _per_band(values, name: str, bands: int | None = None) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if not values or (bands is not None and len(values) != bands):
        raise DescriptionError(f"{name} must have {bands or 'at least 1'} values (one per band), got {len(values)}")
    return values
