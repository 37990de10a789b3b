"""Two folders, images and masks, paired by file stem; the class table given or inferred from the masks."""

from __future__ import annotations

import os

from refinenet_tf.data.class_table import ClassTable, infer_class_table
from refinenet_tf.data.images import image_files
from refinenet_tf.data.layouts.common import (
    ConversionOptions,
    PreparedDataset,
    check_val_fraction,
    converted_pairs,
    finish,
    guess_mask_format,
    pair_by_stem,
    refuse_output_inside_inputs,
    split_pairs,
)
from refinenet_tf.data.masks import MaskConverter, convert_mask_files
from refinenet_tf.errors import DataError

MASK_FOLDER_NAMES = ("labels", "masks", "annotations")


def prepare_folder_dataset(images_dir: str, masks_dir: str, name: str, lists_dir: str = "dataset",
                           mask_format: str = "auto", table: ClassTable | None = None,
                           output_dir: str | None = None, val_fraction: float = 0.0, seed: int = 1234,
                           options: ConversionOptions | None = None) -> PreparedDataset:
    """Two folders of images and masks paired by stem -> ``train.txt`` (and ``val.txt`` for ``val_fraction``).

    ``mask_format``: ``index`` (used as they are), ``rgb`` (needs ``table``), ``palette``, ``cityscapes``,
    or ``auto`` (grey masks are index masks, palette PNGs palette masks, colour masks rgb).
    Converted masks go to ``output_dir`` (default: ``<masks_dir>_index`` beside the masks folder).
    Index and palette masks are read for the class indices they hold: ``table`` (if given) must list
    them all, else a table is made from them (see the module docstring).
    """
    options = options or ConversionOptions()
    check_val_fraction(val_fraction)
    pairing = pair_by_stem(image_files(images_dir), image_files(masks_dir))
    if not pairing.pairs:
        raise DataError(f"{images_dir}, {masks_dir}: no image and mask share a file stem")
    if mask_format == "auto":
        mask_format = guess_mask_format(pairing.pairs[0][1], table)
    if mask_format in ("index", "palette"):
        table = infer_class_table([mask for _, mask in pairing.pairs], mask_format, table, options.ignore_label,
                                  options.workers, options.progress)
    if mask_format == "index":
        pairs = list(pairing.pairs)
    else:
        target = output_dir or os.path.normpath(masks_dir) + "_index"
        refuse_output_inside_inputs(target, [masks_dir])
        converter = MaskConverter(mask_format, table, options.ignore_label, options.unknown)
        pairs, jobs = converted_pairs(pairing.pairs, target)
        convert_mask_files(jobs, converter, options.workers, options.progress)
        table = converter.classes()
    return finish(name, lists_dir, split_pairs(pairs, val_fraction, seed), table, pairing.unmatched)


def mask_folder(path: str) -> str | None:
    """The first of :data:`MASK_FOLDER_NAMES` found in ``path``."""
    return next((os.path.join(path, name) for name in MASK_FOLDER_NAMES if os.path.isdir(os.path.join(path, name))), None)
