"""tf.data pipelines from list-file samples to training batches and full-size evaluation examples.

Images and masks are decoded by PIL inside ``tf.numpy_function``. A bad sample either stops the
pipeline (``on_bad_sample='fail'``) or is logged and skipped (``'skip'``, counted by a
:class:`SkipCounter`). Errors raised inside the pipeline reach ``session.run`` as TensorFlow
errors; wrap ``session.run`` in :func:`reader_errors` to get the reader's one-line
:class:`DataError` back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from refinenet_tf.data import augment
from refinenet_tf.data.images import load_model_image, load_pair
from refinenet_tf.data.listfile import Sample
from refinenet_tf.description import Preprocessing
from refinenet_tf.errors import ConfigError, DataError

ON_BAD_SAMPLE = ("fail", "skip")
NO_LABEL = -1  # label value of evaluation examples listed without a mask

_LOG = logging.getLogger(__name__)
_MARK_START = "<<refinenet-tf reader: "
_MARK_END = " :reader>>"
_MARKED_MESSAGE = re.compile(re.escape(_MARK_START) + "(.*?)" + re.escape(_MARK_END), re.DOTALL)


class SkipCounter:
    """Records the samples skipped with ``on_bad_sample='skip'`` (each sample once, thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reasons: dict[str, str] = {}

    @property
    def count(self) -> int:
        """How many distinct samples were skipped so far."""
        with self._lock:
            return len(self._reasons)

    @property
    def reasons(self) -> dict[str, str]:
        """``{'list.txt:12': 'one-line reason'}`` for every skipped sample."""
        with self._lock:
            return dict(self._reasons)

    def record(self, sample: Sample, reason: str) -> bool:
        """Note a skipped sample; True the first time this sample is seen."""
        with self._lock:
            first = sample.origin not in self._reasons
            self._reasons.setdefault(sample.origin, reason)
            return first


@contextlib.contextmanager
def reader_errors() -> Iterator[None]:
    """Around ``session.run``: turn a TensorFlow error raised by the reader into its :class:`DataError`."""
    try:
        yield
    except tf.errors.OpError as error:
        found = _MARKED_MESSAGE.search(error.message or "")
        if found is None:
            raise
        raise DataError(found.group(1)) from None


def _as_written(function):
    """A tf.data function traced as written, without AutoGraph's rewrite of its source (which tf.data applies by
    default, and which took about a fifth of the Python time of building a small training graph): these functions
    branch with ``tf.cond`` where a branch depends on a tensor."""
    return tf.autograph.experimental.do_not_convert(function)


def train_dataset(
    samples: Sequence[Sample],
    preprocessing: Preprocessing,
    crop_size: tuple[int, int],
    batch_size: int,
    num_classes: int,
    ignore_label: int,
    random_scale: bool = False,
    random_mirror: bool = False,
    min_scale: float = 0.5,
    max_scale: float = 1.5,
    seed: int | None = None,
    on_bad_sample: str = "fail",
    shuffle: bool = True,
    repeat: bool = True,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    skip_counter: SkipCounter | None = None,
    start_example: int = 0,
) -> tf.data.Dataset:
    """Batches ``(images float32 [B,h,w,bands] preprocessed, labels int32 [B,h,w,1])`` with static shapes.

    ``crop_size`` is (h, w). Each example is optionally scaled and mirrored, padded bottom/right to
    the crop size (image with the mean colour, label with ``ignore_label``) and randomly cropped.
    The same ``seed`` gives the same batches; ``None`` draws a fresh one. ``start_example`` k starts the
    stream at its k-th example (a resumed run passes the examples already used): the skipped examples
    are not decoded, and the rest, augmentation included, are exactly those of a stream started at 0.
    """
    crop_h, crop_w = _check_train_arguments(samples, crop_size, batch_size, min_scale, max_scale, repeat)
    if start_example < 0:
        raise ConfigError(f"start_example must not be negative, got {start_example}")
    for sample in samples:
        if sample.mask_path is None:
            raise DataError(f"{sample.origin}: training needs a mask for every image, this line has none")
    base_seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    loader = _SampleLoader(samples, preprocessing, num_classes, ignore_label, on_bad_sample, skip_counter)

    indices = tf.data.Dataset.range(len(samples))
    if shuffle:
        indices = indices.shuffle(len(samples), seed=base_seed, reshuffle_each_iteration=True)
    if repeat:
        indices = indices.repeat()

    @_as_written
    def prepare(position, index):
        image, mask, usable = loader.load(index)
        return preprocessing.apply(image), mask[..., tf.newaxis], usable, position

    @_as_written
    def transform(image, mask, position):
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(base_seed, tf.int64), position]), 3
        )
        if random_scale:
            image, mask = augment.random_scale(image, mask, min_scale, max_scale, seeds[0])
        if random_mirror:
            image, mask = augment.random_mirror(image, mask, seeds[1])
        return augment.pad_and_random_crop(image, mask, crop_h, crop_w, ignore_label, seeds[2])

    dataset = indices.enumerate().skip(start_example)
    dataset = dataset.map(prepare, num_parallel_calls=num_parallel_calls, deterministic=True)
    dataset = _drop_unusable(dataset, on_bad_sample)
    dataset = dataset.map(transform, num_parallel_calls=num_parallel_calls, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return dataset.with_options(_without_autotune_model())


def _without_autotune_model() -> tf.data.Options:
    """tf.data's options with its autotuning model off. Its optimisation thread sometimes kept a finished training
    run from closing for 14-40 s (the iterator's destructor waits for it), and the reader keeps ahead of every
    network's step without it: 193 against 150 training images/s (321x321 crops, two parallel calls; median of
    three). ``tf.data.AUTOTUNE`` parallelism then takes the number of cores."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def eval_dataset(
    samples: Sequence[Sample],
    preprocessing: Preprocessing,
    num_classes: int,
    ignore_label: int,
    on_bad_sample: str = "fail",
    skip_counter: SkipCounter | None = None,
) -> tf.data.Dataset:
    """Full-size examples in list order, one at a time, as a dict.

    ``image`` float32 [1,H,W,bands] preprocessed, ``raw`` [1,H,W,bands] as read (uint8 RGB for an RGB model),
    ``label`` int32 [1,H,W]
    (filled with ``NO_LABEL`` = -1 when the list has no masks) and ``path`` (the image path, string).
    """
    if not samples:
        raise ConfigError("no samples to evaluate")
    loader = _SampleLoader(samples, preprocessing, num_classes, ignore_label, on_bad_sample, skip_counter)
    paths = tf.constant([os.fsencode(sample.image_path) for sample in samples])

    @_as_written
    def prepare(index):
        image, mask, usable = loader.load(index)
        return image, mask, usable, index

    @_as_written
    def to_example(image, mask, index):
        return {
            "image": preprocessing.apply(image[tf.newaxis]),
            "raw": image[tf.newaxis],
            "label": mask[tf.newaxis],
            "path": tf.gather(paths, index),
        }

    dataset = tf.data.Dataset.range(len(samples))
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = _drop_unusable(dataset, on_bad_sample)
    return dataset.map(to_example).prefetch(1)


class _ReaderFailure(Exception):
    """Raised inside tf.numpy_function; its marked message is recovered by reader_errors()."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{_MARK_START}{message}{_MARK_END}")


class _SampleLoader:
    """Decodes sample ``index`` in Python; called through tf.numpy_function."""

    def __init__(
        self,
        samples: Sequence[Sample],
        preprocessing: Preprocessing,
        num_classes: int,
        ignore_label: int,
        on_bad_sample: str,
        skip_counter: SkipCounter | None,
    ) -> None:
        if on_bad_sample not in ON_BAD_SAMPLE:
            raise ConfigError(f"on_bad_sample must be one of {ON_BAD_SAMPLE}, got {on_bad_sample!r}")
        self._samples = list(samples)
        self._preprocessing = preprocessing
        self._dtype = np.dtype(preprocessing.input_dtype)
        self._num_classes = num_classes
        self._ignore_label = ignore_label
        self._skip = on_bad_sample == "skip"
        self._own_skips = SkipCounter()
        self._skip_counter = skip_counter

    def load(self, index: tf.Tensor):
        """Graph op: (image [H,W,bands] in the model's input type, mask int32 [H,W], usable bool)."""
        image, mask, usable = tf.numpy_function(self, [index], [tf.as_dtype(self._dtype), tf.int32, tf.bool])
        image.set_shape([None, None, self._preprocessing.channels])
        mask.set_shape([None, None])
        usable.set_shape([])
        return image, mask, usable

    def __call__(self, index: np.int64) -> tuple[np.ndarray, np.ndarray, np.bool_]:
        sample = self._samples[int(index)]
        try:
            image, mask = self._read(sample)
        except DataError as error:
            if not self._skip:
                # the unrendered message, so that the command line can still name its flags
                raise _ReaderFailure(f"{error.args[0]} (listed at {sample.origin})") from None
            self._note_skipped(sample, str(error))
            empty = np.zeros((0, 0, self._preprocessing.channels), self._dtype)
            return empty, np.zeros((0, 0), np.int32), np.bool_(False)
        return image, mask, np.bool_(True)

    def _read(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        if sample.mask_path is None:
            image = load_model_image(sample.image_path, self._preprocessing)
            return image, np.full(image.shape[:2], NO_LABEL, np.int32)
        image, mask = load_pair(sample.image_path, sample.mask_path, self._num_classes, self._ignore_label,
                                self._preprocessing)
        return image, mask.astype(np.int32)

    def _note_skipped(self, sample: Sample, reason: str) -> None:
        if self._skip_counter is not None:
            self._skip_counter.record(sample, reason)
        if self._own_skips.record(sample, reason):
            _LOG.warning("skipping %s: %s", sample.origin, reason)
        if self._own_skips.count == len(self._samples):
            message = f"every one of the {len(self._samples)} samples of {sample.list_path} is unusable; last: {reason}"
            raise _ReaderFailure(message)


def _drop_unusable(dataset: tf.data.Dataset, on_bad_sample: str) -> tf.data.Dataset:
    """Remove the 'usable' flag, filtering out skipped samples first when skipping is on."""
    if on_bad_sample == "skip":
        dataset = dataset.filter(_as_written(lambda image, mask, usable, extra: usable))
    return dataset.map(_as_written(lambda image, mask, usable, extra: (image, mask, extra)))


def _check_train_arguments(
    samples: Sequence[Sample],
    crop_size: tuple[int, int],
    batch_size: int,
    min_scale: float,
    max_scale: float,
    repeat: bool,
) -> tuple[int, int]:
    if not samples:
        raise ConfigError("no samples to train on")
    if len(crop_size) != 2 or any(int(side) != side or side < 1 for side in crop_size):
        raise ConfigError(f"the input size must be two positive integers h,w, got {tuple(crop_size)}")
    if batch_size < 1:
        raise ConfigError(f"the batch size must be at least 1, got {batch_size}")
    if not 0 < min_scale <= max_scale:
        raise ConfigError(f"random scale range must satisfy 0 < min <= max, got [{min_scale}, {max_scale}]")
    if not repeat and batch_size > len(samples):
        raise ConfigError(
            f"batch size {batch_size} exceeds the {len(samples)} samples, no full batch can be formed"
        )
    return int(crop_size[0]), int(crop_size[1])
