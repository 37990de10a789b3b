"""CVAT's "Segmentation mask 1.1" export: ``labelmap.txt`` (the class table), colour masks in
``SegmentationClass/``, the images in ``JPEGImages/`` and the image names in ``ImageSets/Segmentation/*.txt``.

``labelmap.txt`` lines read ``name:r,g,b:parts:actions`` (a first ``# label:color_rgb:...`` line is the header);
each label is a class in file order, ``background`` (black) included. The colour masks become index masks in
``output_dir``; colours the label map does not list are one error, or the ignore label with ``--unknown ignore``.
"""

from __future__ import annotations

import os

from refinenet_tf.data.class_table import ClassTable
from refinenet_tf.data.images import image_files
from refinenet_tf.data.layouts.common import (
    ConversionOptions,
    Pair,
    PreparedDataset,
    base_name,
    file_stem,
    finish,
    read_ids,
    refuse_output_inside_inputs,
)
from refinenet_tf.data.masks import MaskConverter, convert_mask_files
from refinenet_tf.errors import DataError

LABEL_MAP = "labelmap.txt"


def is_cvat_export(path: str) -> bool:
    """Whether ``path`` holds a CVAT segmentation-mask export (a label map and SegmentationClass/)."""
    return os.path.isfile(os.path.join(path, LABEL_MAP)) and os.path.isdir(os.path.join(path, "SegmentationClass"))


def read_label_map(path: str) -> ClassTable:
    """The classes of a CVAT ``labelmap.txt``, in file order; a DataError names the file and the line."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise DataError(f"{path}: cannot read the label map ({error.strerror})") from None
    names, colours = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(":")
        try:
            colour = tuple(int(value) for value in fields[1].split(","))
        except (IndexError, ValueError):
            colour = ()
        if len(fields) < 2 or not fields[0].strip() or len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
            raise DataError(f"{path}:{number}: expected 'name:r,g,b:parts:actions', got {line!r}")
        names.append(fields[0].strip())
        colours.append(colour)
    if not names:
        raise DataError(f"{path}: lists no labels")
    if len(set(colours)) != len(colours):
        raise DataError(f"{path}: two labels share a colour, so the masks cannot tell them apart")
    return ClassTable(tuple(names), tuple(colours))


def prepare_cvat_dataset(root: str, name: str | None = None, lists_dir: str = "dataset",
                         output_dir: str | None = None,
                         options: ConversionOptions | None = None) -> PreparedDataset:
    """A CVAT segmentation-mask export -> index masks in ``output_dir`` (default ``root/SegmentationClassIndex``)
    and one list per ``ImageSets/Segmentation/<split>.txt`` (all masks in ``default.txt`` when there is none)."""
    options = options or ConversionOptions()
    table = read_label_map(os.path.join(root, LABEL_MAP))
    masks_dir = os.path.join(root, "SegmentationClass")
    output_dir = output_dir or os.path.join(root, "SegmentationClassIndex")
    refuse_output_inside_inputs(output_dir, [masks_dir])
    images = {file_stem(path): path for path in image_files(os.path.join(root, "JPEGImages"))}
    masks = {file_stem(path): path for path in image_files(masks_dir)}
    if not images:
        raise DataError(f"{root}: no images in JPEGImages/ (export with 'Save images' checked)")
    splits_dir = os.path.join(root, "ImageSets", "Segmentation")
    split_files = sorted(f for f in os.listdir(splits_dir) if f.endswith(".txt")) if os.path.isdir(splits_dir) else []
    names = {os.path.splitext(f)[0]: read_ids(os.path.join(splits_dir, f)) for f in split_files} or {"default": sorted(masks)}
    splits: dict[str, list[Pair]] = {}
    unmatched: set[str] = set()
    jobs: dict[str, str] = {}
    for split, ids in names.items():
        pairs: list[Pair] = []
        for image_id in ids:
            if image_id not in images or image_id not in masks:
                unmatched.update(p for p in (images.get(image_id), masks.get(image_id)) if p)
                continue
            output = os.path.join(output_dir, image_id + ".png")
            jobs[masks[image_id]] = output
            pairs.append((images[image_id], output))
        if pairs:
            splits[split] = pairs
    converter = MaskConverter("rgb", table, options.ignore_label, options.unknown)
    convert_mask_files(sorted(jobs.items()), converter, options.workers, options.progress)
    return finish(name or base_name(root), lists_dir, splits, table, sorted(unmatched))
