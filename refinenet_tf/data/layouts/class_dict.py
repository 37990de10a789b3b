"""The ``class_dict.csv`` layout: ``training|validation|testing/{images,labels}`` with colour masks."""

from __future__ import annotations

import os

from refinenet_tf.data.class_table import FILE_NAME as CLASS_DICT
from refinenet_tf.data.class_table import read_class_table
from refinenet_tf.data.images import image_files
from refinenet_tf.data.layouts.common import (
    ConversionOptions,
    Pair,
    PreparedDataset,
    base_name,
    converted_pairs,
    finish,
    pair_by_stem,
    refuse_output_inside_inputs,
)
from refinenet_tf.data.masks import MaskConverter, convert_mask_files
from refinenet_tf.errors import DataError

# class_dict layout folder -> list name
CLASS_DICT_SPLITS = {"training": "train", "validation": "val", "testing": "test"}


def prepare_class_dict_dataset(root: str, name: str | None = None, lists_dir: str = "dataset",
                               output_dir: str | None = None,
                               options: ConversionOptions | None = None) -> PreparedDataset:
    """``root/class_dict.csv`` + ``root/{training,validation,testing}/{images,labels}`` (RGB masks).

    Masks are converted into ``output_dir`` (default ``root/labels_index``), one subfolder per split.
    A split without labels gets an image-only list.
    """
    options = options or ConversionOptions()
    table = read_class_table(os.path.join(root, CLASS_DICT))
    output_dir = output_dir or os.path.join(root, "labels_index")
    converter = MaskConverter("rgb", table, options.ignore_label, options.unknown)
    splits: dict[str, list[Pair]] = {}
    jobs: list[tuple[str, str]] = []
    unmatched: list[str] = []
    for folder, split in CLASS_DICT_SPLITS.items():
        images = image_files(os.path.join(root, folder, "images"))
        masks = image_files(os.path.join(root, folder, "labels"))
        if not images and not masks:
            continue
        if not masks:
            splits[split] = [(image, None) for image in images]
            continue
        pairing = pair_by_stem(images, masks)
        unmatched += pairing.unmatched
        splits[split], split_jobs = converted_pairs(pairing.pairs, os.path.join(output_dir, folder))
        jobs += split_jobs
    if not splits:
        raise DataError(f"{root}: no images under {'|'.join(CLASS_DICT_SPLITS)}/images")
    refuse_output_inside_inputs(output_dir, [os.path.join(root, f, "labels") for f in CLASS_DICT_SPLITS])
    convert_mask_files(jobs, converter, options.workers, options.progress)
    return finish(name or base_name(root), lists_dir, splits, table, unmatched)
