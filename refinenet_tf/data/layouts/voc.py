"""PASCAL VOC 2012: ``ImageSets/Segmentation`` splits, palette masks, and SegmentationClassAug."""

from __future__ import annotations

import os

from refinenet_tf.data.class_table import voc_table
from refinenet_tf.data.images import image_files, open_image
from refinenet_tf.data.layouts.common import (
    ConversionOptions,
    Pair,
    PreparedDataset,
    file_stem,
    finish,
    read_ids,
    refuse_output_inside_inputs,
)
from refinenet_tf.data.masks import MaskConverter, convert_mask_files
from refinenet_tf.errors import ConfigError, DataError

VOC_SPLITS = ("train", "val", "trainval")


def prepare_voc_dataset(path: str, name: str = "voc", lists_dir: str = "dataset", masks: str = "auto",
                        output_dir: str | None = None,
                        options: ConversionOptions | None = None) -> PreparedDataset:
    """PASCAL VOC 2012 (``path`` is VOC2012, VOCdevkit or their parent); lists for the ImageSets splits.

    ``masks``: ``class`` converts the palette PNGs of SegmentationClass into SegmentationClassIndex;
    ``aug`` uses SegmentationClassAug (converted likewise if it holds palette PNGs) and adds
    ``train_aug`` (every Aug mask not in val: DeepLab's 10582 training images); ``auto`` picks ``aug``
    when that folder exists.
    """
    options = options or ConversionOptions()
    voc = find_voc_root(path)
    if voc is None:
        raise DataError(f"{path}: no VOC2012 folder with ImageSets/Segmentation found")
    if masks == "auto":
        masks = "aug" if os.path.isdir(os.path.join(voc, "SegmentationClassAug")) else "class"
    if masks not in ("class", "aug"):
        raise ConfigError(f"VOC masks must be 'auto', 'class' or 'aug', got {masks!r}")
    source = os.path.join(voc, "SegmentationClassAug" if masks == "aug" else "SegmentationClass")
    if not os.path.isdir(source):
        raise DataError(f"{source}: mask folder not found")
    ids = {split: read_ids(os.path.join(voc, "ImageSets", "Segmentation", f"{split}.txt")) for split in VOC_SPLITS}
    ids = {split: values for split, values in ids.items() if values is not None}
    if masks == "aug":
        val = set(ids.get("val", []))
        ids["train_aug"] = sorted(file_stem(mask) for mask in image_files(source) if file_stem(mask) not in val)
    needs_conversion = masks == "class" or _first_mask_mode(source) != "L"
    target = (output_dir or source + "Index") if needs_conversion else source
    if needs_conversion:
        refuse_output_inside_inputs(target, [source])
    splits: dict[str, list[Pair]] = {}
    unmatched: set[str] = set()
    jobs: dict[str, str] = {}
    for split, split_ids in ids.items():
        pairs: list[Pair] = []
        for image_id in split_ids:
            image = os.path.join(voc, "JPEGImages", image_id + ".jpg")
            mask = os.path.join(source, image_id + ".png")
            missing = [p for p in (image, mask) if not os.path.isfile(p)]
            if missing:
                unmatched.update(missing)
                continue
            output = os.path.join(target, image_id + ".png")
            jobs[mask] = output
            pairs.append((image, output))
        splits[split] = pairs
    if needs_conversion:
        converter = MaskConverter("palette", None, options.ignore_label, options.unknown)
        convert_mask_files(sorted(jobs.items()), converter, options.workers, options.progress)
    return finish(name, lists_dir, splits, voc_table(), sorted(unmatched))


def find_voc_root(path: str) -> str | None:
    """The VOC2012 folder at ``path``, under it, or under its VOCdevkit; None when there is none."""
    for candidate in (path, os.path.join(path, "VOC2012"), os.path.join(path, "VOCdevkit", "VOC2012")):
        if os.path.isdir(os.path.join(candidate, "ImageSets", "Segmentation")):
            return candidate
    return None



def _first_mask_mode(folder: str) -> str:
    masks = image_files(folder)
    if not masks:
        raise DataError(f"{folder}: no mask files")
    return open_image(masks[0]).mode
