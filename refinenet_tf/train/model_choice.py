"""Which model a training run trains: the description of the run being resumed or the checkpoint it starts
from, then the caller's changes.

What the weights mean (stride placement, padding, batch-norm epsilon, preprocessing) travels with them: a
run that starts from a converted checkpoint keeps its ``model.json`` unless told otherwise, even for
another decoder on the same backbone family. A checkpoint without ``model.json`` (DeepLab's) gets the
architecture's defaults, which are DeepLab's conventions for ResNets.
"""

from __future__ import annotations

from collections.abc import Sequence

from refinenet_tf.architectures import check_arch
from refinenet_tf.data.class_table import ClassTable
from refinenet_tf.defaults import DEFAULT_ARCH, NUM_CLASSES
from refinenet_tf.description import (
    ModelDescription,
    Preprocessing,
    default_description,
    has_description,
    load_description,
)
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.train.run_folder import continued_snapshot


def source_description(snapshot_dir: str, restore_from: str | None,
                       not_restore_last: bool = False) -> ModelDescription | None:
    """The description of the snapshots the command continues, else of the ``restore_from`` checkpoint, if any."""
    if continued_snapshot(snapshot_dir, restore_from, not_restore_last)[0] is not None:
        return load_description(snapshot_dir) if has_description(snapshot_dir) else None
    if restore_from and has_description(restore_from):
        return load_description(restore_from)
    return None


def description_to_train(snapshot_dir: str, restore_from: str | None = None, arch: str | None = None,
                         num_classes: int | None = None, class_table: ClassTable | None = None,
                         stride_on: str | None = None, padding: str | None = None,
                         img_mean: Sequence[float] | None = None, ignore_label: int | None = None,
                         not_restore_last: bool = False, img_std: Sequence[float] | None = None) -> ModelDescription:
    """The model a run trains: the given values first, then the source's description, then the defaults.

    ``class_table`` sets the class names and colours (and the class count, unless ``num_classes`` is given,
    which must then agree with it). ``img_mean`` of 3 values changes an RGB model's mean; with ``img_std`` (or
    another count) they describe a model of bands, one value per band (else measured on the training images,
    see :mod:`refinenet_tf.data.band_statistics`).
    """
    source = source_description(snapshot_dir, restore_from, not_restore_last)
    arch = arch or (source.arch if source else DEFAULT_ARCH)
    base = default_description(arch)
    if source is not None and check_arch(source.arch).backbone == check_arch(arch).backbone:
        base = source if source.arch == arch else base.replace(
            stride_on=source.stride_on, padding=source.padding, batch_norm_epsilon=source.batch_norm_epsilon,
            preprocessing=source.preprocessing, ignore_label=source.ignore_label)
    num_classes = num_classes or (class_table.num_classes if class_table else None) or \
        (source.num_classes if source else NUM_CLASSES)
    changes: dict = {"num_classes": num_classes}
    if class_table is not None:
        if class_table.num_classes != num_classes:
            raise ConfigError(f"{parameter('class_dict')} lists {class_table.num_classes} classes but "
                              f"{parameter('num_classes')} is {num_classes}")
        changes.update(class_names=list(class_table.names), colours=[list(c) for c in class_table.colours])
    elif num_classes != base.num_classes:
        changes.update(class_names=None, colours=None)
    if stride_on:
        changes["stride_on"] = stride_on
    if padding:
        changes["padding"] = padding
    if img_std or (img_mean and len(img_mean) != 3):
        if not (img_mean and img_std):
            raise ConfigError(f"a model of bands needs both {parameter('img_mean')} and {parameter('img_std')}, one "
                              "value per band (or neither: they are measured on the training images)")
        changes["preprocessing"] = Preprocessing("RGB", 1.0, tuple(img_mean), tuple(img_std), "float32")
    elif img_mean:
        old = base.preprocessing
        changes["preprocessing"] = Preprocessing(old.channel_order, old.scale, tuple(img_mean), old.std)
    if ignore_label is not None:
        changes["ignore_label"] = ignore_label
    return base.replace(**changes)
