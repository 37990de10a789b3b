"""Data set layouts -> converted index masks, DeepLab list files and a class table, in one call.

Each ``prepare_*`` function converts masks into a new folder (inputs are never touched), writes
``<lists_dir>/<name>/{train,val,...}.txt`` with lines ``/image /mask`` relative to the data set's
``data_dir`` and ``<lists_dir>/<name>/class_dict.csv``, and returns what it wrote, including files it
could not pair (they are logged too, never silently dropped).

Every layout writes a class table. Palette and index masks without a given table get one made from
the masks: classes 0..(highest index present, the ignore label aside), named ``class_<i>``, coloured
by the masks' palette (palette PNGs) or the VOC palette (index masks).
"""

from __future__ import annotations

import os

from refinenet_tf.data.class_table import FILE_NAME as CLASS_DICT
from refinenet_tf.data.class_table import read_class_table
from refinenet_tf.data.layouts.ade20k import is_ade20k_release, prepare_ade20k_dataset
from refinenet_tf.data.layouts.cityscapes import prepare_cityscapes_dataset
from refinenet_tf.data.layouts.class_dict import CLASS_DICT_SPLITS, prepare_class_dict_dataset
from refinenet_tf.data.layouts.coco import prepare_coco_dataset
from refinenet_tf.data.layouts.common import (
    ConversionOptions,
    Pairing,
    PreparedDataset,
    base_name,
    pair_by_stem,
    write_list,
)
from refinenet_tf.data.layouts.cvat import is_cvat_export, prepare_cvat_dataset
from refinenet_tf.data.layouts.folders import MASK_FOLDER_NAMES, mask_folder, prepare_folder_dataset
from refinenet_tf.data.layouts.labelme import is_labelme_folder, prepare_labelme_dataset
from refinenet_tf.data.layouts.voc import find_voc_root, prepare_voc_dataset
from refinenet_tf.errors import DataError

__all__ = ["LAYOUTS", "ConversionOptions", "Pairing", "PreparedDataset", "detect_layout", "pair_by_stem",
           "prepare_ade20k_dataset",
           "prepare_cityscapes_dataset", "prepare_class_dict_dataset", "prepare_coco_dataset", "prepare_cvat_dataset", "prepare_dataset", "prepare_folder_dataset",
           "prepare_labelme_dataset", "prepare_voc_dataset", "write_list"]

LAYOUTS = ("class-dict", "voc", "cityscapes", "ade20k", "folders", "labelme", "coco", "cvat")


def detect_layout(path: str) -> str:
    """Which layout of :data:`LAYOUTS` the folder ``path`` holds (COCO's, a file and a folder, is never detected);
    a DataError says what was expected."""
    if not os.path.isdir(path):
        raise DataError(f"{path}: not a folder")
    if os.path.isfile(os.path.join(path, CLASS_DICT)) and any(
            os.path.isdir(os.path.join(path, folder)) for folder in CLASS_DICT_SPLITS):
        return "class-dict"
    if is_cvat_export(path):  # before VOC: a CVAT export has VOC's ImageSets too
        return "cvat"
    if find_voc_root(path) is not None:
        return "voc"
    if os.path.isdir(os.path.join(path, "leftImg8bit")) and os.path.isdir(os.path.join(path, "gtFine")):
        return "cityscapes"
    if is_ade20k_release(path):  # before the folders layout, whose mask folder may be called annotations
        return "ade20k"
    if os.path.isdir(os.path.join(path, "images")) and mask_folder(path) is not None:
        return "folders"
    if is_labelme_folder(path):
        return "labelme"
    raise DataError(
        f"{path}: not a known data set layout; expected class_dict.csv + training|validation|testing/"
        "{images,labels}, VOC2012 (ImageSets/Segmentation, JPEGImages), Cityscapes (leftImg8bit, gtFine), "
        "ADEChallengeData2016 (images/training, annotations/training), "
        f"images/ + one of {'|'.join(MASK_FOLDER_NAMES)}/, a CVAT mask export (labelmap.txt, SegmentationClass) "
        "or LabelMe .json files"
    )


def prepare_dataset(path: str, name: str | None = None, lists_dir: str = "dataset", output_dir: str | None = None,
                    options: ConversionOptions | None = None) -> PreparedDataset:
    """Detect the layout of ``path`` and prepare it with the matching ``prepare_*`` function."""
    options = options or ConversionOptions()
    layout = detect_layout(path)
    if layout == "class-dict":
        return prepare_class_dict_dataset(path, name, lists_dir, output_dir, options)
    if layout == "voc":
        return prepare_voc_dataset(path, name or "voc", lists_dir, output_dir=output_dir, options=options)
    if layout == "cityscapes":
        return prepare_cityscapes_dataset(path, name or "cityscapes", lists_dir, output_dir, options)
    if layout == "cvat":
        return prepare_cvat_dataset(path, name, lists_dir, output_dir, options)
    if layout == "ade20k":
        return prepare_ade20k_dataset(path, name or "ade20k", lists_dir, output_dir, options)
    table_path = os.path.join(path, CLASS_DICT)
    table = read_class_table(table_path) if os.path.isfile(table_path) else None
    if layout == "labelme":
        return prepare_labelme_dataset(path, name, lists_dir, output_dir, table, options=options)
    return prepare_folder_dataset(os.path.join(path, "images"), mask_folder(path), name or base_name(path),
                                  lists_dir, table=table, output_dir=output_dir, options=options)
