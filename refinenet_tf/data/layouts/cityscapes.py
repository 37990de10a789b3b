"""Cityscapes fine annotations: ``leftImg8bit`` and ``gtFine`` label ids, converted to train ids."""

from __future__ import annotations

import os

from refinenet_tf.data.layouts.common import (
    ConversionOptions,
    Pair,
    PreparedDataset,
    finish,
    refuse_output_inside_inputs,
)
from refinenet_tf.data.masks import MaskConverter, convert_mask_files
from refinenet_tf.errors import DataError

CITYSCAPES_SPLITS = ("train", "val", "test")


def prepare_cityscapes_dataset(root: str, name: str = "cityscapes", lists_dir: str = "dataset",
                               output_dir: str | None = None,
                               options: ConversionOptions | None = None) -> PreparedDataset:
    """Cityscapes fine annotations: labelIds -> train ids in ``output_dir`` (default ``root/gtFine_trainIds``).

    The test split's public masks are placeholders, so ``test.txt`` lists images only.
    """
    options = options or ConversionOptions()
    output_dir = output_dir or os.path.join(root, "gtFine_trainIds")
    refuse_output_inside_inputs(output_dir, [os.path.join(root, "gtFine"), os.path.join(root, "leftImg8bit")])
    converter = MaskConverter("cityscapes", None, options.ignore_label, options.unknown)
    splits: dict[str, list[Pair]] = {}
    jobs: list[tuple[str, str]] = []
    unmatched: list[str] = []
    for split in CITYSCAPES_SPLITS:
        images = _cityscapes_files(os.path.join(root, "leftImg8bit", split), "_leftImg8bit.png")
        if split == "test":
            if images:
                splits[split] = [(image, None) for image in sorted(images.values())]
            continue
        labels = _cityscapes_files(os.path.join(root, "gtFine", split), "_gtFine_labelIds.png")
        unmatched += sorted(images[key] for key in images.keys() - labels.keys())
        unmatched += sorted(labels[key] for key in labels.keys() - images.keys())
        pairs: list[Pair] = []
        for key in sorted(images.keys() & labels.keys()):
            output = os.path.join(output_dir, split, key + "_gtFine_trainIds.png")
            jobs.append((labels[key], output))
            pairs.append((images[key], output))
        if pairs:
            splits[split] = pairs
    if not splits:
        raise DataError(f"{root}: no Cityscapes images under leftImg8bit/{{{','.join(CITYSCAPES_SPLITS)}}}")
    convert_mask_files(jobs, converter, options.workers, options.progress)
    return finish(name, lists_dir, splits, converter.classes(), unmatched)


def _cityscapes_files(folder: str, suffix: str) -> dict[str, str]:
    """``city/prefix`` -> path for every ``folder/<city>/<prefix><suffix>``."""
    found: dict[str, str] = {}
    if not os.path.isdir(folder):
        return found
    for city in sorted(os.listdir(folder)):
        city_folder = os.path.join(folder, city)
        if os.path.isdir(city_folder):
            for file_name in os.listdir(city_folder):
                if file_name.endswith(suffix):
                    found[f"{city}/{file_name[: -len(suffix)]}"] = os.path.join(city_folder, file_name)
    return found
