"""COCO instance annotations (one JSON file for a folder of images) painted into semantic index masks.

Segmentations are decoded by pycocotools (the ``coco`` extra): polygons, uncompressed RLE (``counts`` a list) and
compressed RLE (``counts`` a string). The classes are ``background`` (class 0, every pixel no annotation covers)
and the file's categories in the order of their ids. Where annotations overlap, the smaller object is painted on
top (larger areas first, ties in annotation order), the usual rule for turning instances into semantic masks.
Crowd regions (``iscrowd`` 1) cover several objects with an imprecise outline: they are painted with the ignore
label, under any single object that overlaps them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from refinenet_tf.data.class_table import ClassTable, table_with_background
from refinenet_tf.data.images import image_size
from refinenet_tf.data.layouts.common import (
    ConversionOptions,
    Pair,
    PreparedDataset,
    base_name,
    check_val_fraction,
    file_stem,
    finish,
    read_json,
    refuse_output_inside_inputs,
    split_pairs,
)
from refinenet_tf.data.masks import save_index_mask
from refinenet_tf.errors import ConfigError, DataError, parameter

INSTALL_HINT = 'pip install "refinenet_tf[coco]"'


@dataclass(frozen=True)
class CocoImage:
    """One entry of ``images``: its id, file name and the size the file states."""

    id: int
    file_name: str
    size: tuple[int, int]  # (height, width)


@dataclass(frozen=True)
class CocoAnnotation:
    """One entry of ``annotations``."""

    id: int
    image_id: int
    category_id: int
    segmentation: object
    crowd: bool


@dataclass(frozen=True)
class CocoFile:
    """An instances file: images, annotations and the category names by id."""

    path: str
    images: tuple[CocoImage, ...]
    annotations: tuple[CocoAnnotation, ...]
    categories: dict[int, str]


def read_coco(path: str) -> CocoFile:
    """Parse a COCO instances file; a DataError names the file (and the entry) for what cannot be used."""
    content = read_json(path)
    if not isinstance(content, dict) or not all(isinstance(content.get(key), list)
                                                for key in ("images", "annotations", "categories")):
        raise DataError(f"{path}: not a COCO instances file (needs 'images', 'annotations' and 'categories' lists)")
    try:
        images = tuple(CocoImage(int(entry["id"]), str(entry["file_name"]), (int(entry["height"]), int(entry["width"])))
                       for entry in content["images"])
        annotations = tuple(CocoAnnotation(int(entry["id"]), int(entry["image_id"]), int(entry["category_id"]),
                                           entry["segmentation"], bool(entry.get("iscrowd", 0)))
                            for entry in content["annotations"])
        categories = {int(entry["id"]): str(entry["name"]) for entry in content["categories"]}
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: an entry lacks a field or has a wrong type ({error!r})") from None
    known = {image.id for image in images}
    for annotation in annotations:
        if annotation.image_id not in known:
            raise DataError(f"{path}: annotation {annotation.id} names image {annotation.image_id}, which is not listed")
        if annotation.category_id not in categories:
            raise DataError(f"{path}: annotation {annotation.id} names category {annotation.category_id}, "
                            "which is not listed")
    return CocoFile(path, images, annotations, categories)


def decode_segmentation(annotation: CocoAnnotation, size: tuple[int, int], where: str) -> np.ndarray:
    """The annotation's pixels as a bool (height, width) array, decoded by pycocotools."""
    mask_api = _pycocotools_mask()
    height, width = size
    segmentation = annotation.segmentation
    if isinstance(segmentation, list):
        polygons = [[float(v) for v in polygon] for polygon in segmentation]
        for polygon in polygons:
            if len(polygon) < 6 or len(polygon) % 2:
                raise DataError(f"{where}: a polygon needs at least 3 (x, y) points, this one has {len(polygon)} "
                                "numbers")
            xs, ys = polygon[0::2], polygon[1::2]
            if min(xs) < 0 or min(ys) < 0 or max(xs) > width or max(ys) > height:
                raise DataError(f"{where}: a polygon reaches outside the {width}x{height} image "
                                f"(x {min(xs):g}..{max(xs):g}, y {min(ys):g}..{max(ys):g})")
        rle = mask_api.merge(mask_api.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if [int(v) for v in segmentation["size"]] != [height, width]:
            raise DataError(f"{where}: its RLE is {segmentation['size'][1]}x{segmentation['size'][0]}, the image "
                            f"{width}x{height}")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if sum(int(c) for c in counts) != height * width:
                raise DataError(f"{where}: its RLE counts sum to {sum(int(c) for c in counts)}, not the image's "
                                f"{height * width} pixels")
            rle = mask_api.frPyObjects(segmentation, height, width)
        else:
            rle = {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise DataError(f"{where}: segmentation is neither polygons nor RLE")
    try:
        decoded = mask_api.decode(rle)
    except (ValueError, TypeError) as error:
        raise DataError(f"{where}: its RLE cannot be decoded ({error})") from None
    return np.asarray(decoded, dtype=bool).reshape(height, width)


def paint_coco_image(annotations: Sequence[CocoAnnotation], size: tuple[int, int], class_of: dict[int, int],
                     ignore_label: int, where: str) -> np.ndarray:
    """The uint8 index mask of one image: background 0, larger objects under smaller ones, crowds as ignore."""
    decoded = [(annotation, decode_segmentation(annotation, size, f"{where}: annotation {annotation.id}"))
               for annotation in annotations]
    decoded.sort(key=lambda item: -int(item[1].sum()))  # stable: ties keep the file's order
    mask = np.zeros(size, np.uint8)
    for annotation, pixels in decoded:
        mask[pixels] = ignore_label if annotation.crowd else class_of[annotation.category_id]
    return mask


def prepare_coco_dataset(annotations_file: str, images_dir: str, name: str | None = None,
                         lists_dir: str = "dataset", output_dir: str | None = None, table: ClassTable | None = None,
                         val_fraction: float = 0.0, seed: int = 1234,
                         options: ConversionOptions | None = None) -> PreparedDataset:
    """A COCO instances file and its images -> index masks in ``output_dir`` (default ``<images_dir>_masks``) and
    ``train.txt`` (and ``val.txt`` for ``val_fraction``); images without annotations get a background mask.

    Without ``table`` the classes are ``background`` and the file's categories by id. With ``table``, categories it
    does not list are one DataError naming them, or the ignore label with ``options.unknown == 'ignore'``.
    """
    options = options or ConversionOptions()
    check_val_fraction(val_fraction)
    _pycocotools_mask()
    coco = read_coco(annotations_file)
    if not coco.images:
        raise DataError(f"{annotations_file}: lists no images")
    output_dir = output_dir or os.path.normpath(images_dir) + "_masks"
    refuse_output_inside_inputs(output_dir, [images_dir])
    table, class_of = _classes(coco, table, options)
    by_image: dict[int, list[CocoAnnotation]] = {image.id: [] for image in coco.images}
    for annotation in coco.annotations:
        by_image[annotation.image_id].append(annotation)
    pairs: list[Pair] = []
    for image in coco.images:
        image_path = os.path.join(images_dir, image.file_name)
        height, width = image_size(image_path)
        where = f"{annotations_file}: image {image.id} ({image.file_name})"
        if (height, width) != image.size:
            raise DataError(f"{where}: the file states {image.size[1]}x{image.size[0]}, but {image_path} is "
                            f"{width}x{height}")
        mask_path = os.path.join(output_dir, os.path.dirname(image.file_name), file_stem(image.file_name) + ".png")
        save_index_mask(mask_path, paint_coco_image(by_image[image.id], image.size, class_of, options.ignore_label,
                                                    where))
        pairs.append((image_path, mask_path))
    return finish(name or base_name(images_dir), lists_dir, split_pairs(pairs, val_fraction, seed), table, [])


def _classes(coco: CocoFile, table: ClassTable | None,
             options: ConversionOptions) -> tuple[ClassTable, dict[int, int]]:
    """The class table and each category id's index."""
    if table is None:
        table = table_with_background([coco.categories[key] for key in sorted(coco.categories)])
    index_of = {class_name: index for index, class_name in enumerate(table.names)}
    unknown = sorted({name for name in coco.categories.values() if name not in index_of})
    if unknown and options.unknown != "ignore":
        raise DataError(f"{coco.path}: categories missing from the class table ({', '.join(table.names)}): "
                        f"{', '.join(repr(name) for name in unknown)}; add them to {parameter('class_dict')} or pass "
                        f"{parameter('unknown')} ignore to paint them as ignore")
    return table, {key: index_of.get(name, options.ignore_label) for key, name in coco.categories.items()}


def _pycocotools_mask():
    try:
        from pycocotools import mask  # optional: the coco extra
    except ImportError:
        raise ConfigError(f"COCO annotations need pycocotools: {INSTALL_HINT}") from None
    return mask
