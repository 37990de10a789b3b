"""ADE20K's scene-parsing release (ADEChallengeData2016): ``images/{training,validation}/*.jpg`` and
``annotations/{training,validation}/*.png`` whose value 0 means "other" and 1..150 the classes.

The annotations become index masks with "other" as the ignore label and the classes shifted to 0..149
(``--format ade20k``), named as in ``objectInfo150.txt``.
"""

from __future__ import annotations

import os

from refinenet_tf.data.images import image_files
from refinenet_tf.data.layouts.common import (
    ConversionOptions,
    Pair,
    PreparedDataset,
    converted_pairs,
    finish,
    pair_by_stem,
    refuse_output_inside_inputs,
)
from refinenet_tf.data.masks import MaskConverter, convert_mask_files
from refinenet_tf.errors import DataError

ADE20K_SPLITS = {"training": "train", "validation": "val"}


def is_ade20k_release(path: str) -> bool:
    """Whether ``path`` holds ADEChallengeData2016's images/training and annotations/training folders."""
    return all(os.path.isdir(os.path.join(path, kind, "training")) for kind in ("images", "annotations"))


def prepare_ade20k_dataset(root: str, name: str = "ade20k", lists_dir: str = "dataset",
                           output_dir: str | None = None,
                           options: ConversionOptions | None = None) -> PreparedDataset:
    """ADEChallengeData2016 -> index masks in ``output_dir`` (default ``root/annotations_index``), ``train.txt``
    and ``val.txt``, and the 150-class table."""
    options = options or ConversionOptions()
    output_dir = output_dir or os.path.join(root, "annotations_index")
    refuse_output_inside_inputs(output_dir, [os.path.join(root, "annotations"), os.path.join(root, "images")])
    converter = MaskConverter("ade20k", None, options.ignore_label, options.unknown)
    splits: dict[str, list[Pair]] = {}
    jobs: list[tuple[str, str]] = []
    unmatched: list[str] = []
    for folder, split in ADE20K_SPLITS.items():
        pairing = pair_by_stem(image_files(os.path.join(root, "images", folder)),
                               image_files(os.path.join(root, "annotations", folder)))
        unmatched += pairing.unmatched
        pairs, split_jobs = converted_pairs(pairing.pairs, os.path.join(output_dir, folder))
        jobs += split_jobs
        if pairs:
            splits[split] = pairs
    if not splits:
        raise DataError(f"{root}: no image of images/{{training,validation}} has its annotation")
    convert_mask_files(jobs, converter, options.workers, options.progress)
    return finish(name, lists_dir, splits, converter.classes(), unmatched)
