"""Cityscapes fine annotations: ``leftImg8bit`` and ``gtFine`` label ids, converted to train ids.

Where a ``*_gtFine_labelIds.png`` is missing, its ``*_gtFine_polygons.json`` is painted instead, as cityscapesScripts'
``json2labelImg`` paints it: label ids, polygons filled in file order (the later wins), deleted objects left out,
a ``<label>group`` name read as ``<label>`` when only that is a label, the licence plate (no label id) not painted,
``unlabeled`` (0) where no polygon is; then the label ids become train ids like the PNGs'.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from refinenet_tf.data.class_table import CITYSCAPES_LABEL_IDS
from refinenet_tf.data.layouts.common import (
    ConversionOptions,
    Pair,
    PreparedDataset,
    finish,
    read_json,
    refuse_output_inside_inputs,
)
from refinenet_tf.data.masks import (
    MaskConverter,
    cityscapes_to_train_ids,
    convert_mask_files,
    save_index_mask,
)
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
    painted: list[tuple[str, str]] = []
    unmatched: list[str] = []
    for split in CITYSCAPES_SPLITS:
        images = _cityscapes_files(os.path.join(root, "leftImg8bit", split), "_leftImg8bit.png")
        if split == "test":
            if images:
                splits[split] = [(image, None) for image in sorted(images.values())]
            continue
        labels = _cityscapes_files(os.path.join(root, "gtFine", split), "_gtFine_labelIds.png")
        polygons = {key: path for key, path in
                    _cityscapes_files(os.path.join(root, "gtFine", split), "_gtFine_polygons.json").items()
                    if key not in labels}
        annotated = {**polygons, **labels}
        unmatched += sorted(images[key] for key in images.keys() - annotated.keys())
        unmatched += sorted(annotated[key] for key in annotated.keys() - images.keys())
        pairs: list[Pair] = []
        for key in sorted(images.keys() & annotated.keys()):
            output = os.path.join(output_dir, split, key + "_gtFine_trainIds.png")
            (jobs if key in labels else painted).append((annotated[key], output))
            pairs.append((images[key], output))
        if pairs:
            splits[split] = pairs
    if not splits:
        raise DataError(f"{root}: no Cityscapes images under leftImg8bit/{{{','.join(CITYSCAPES_SPLITS)}}}")
    convert_mask_files(jobs, converter, options.workers, options.progress)
    for source, output in painted:
        save_index_mask(output, cityscapes_to_train_ids(paint_cityscapes_polygons(source), options.ignore_label))
    return finish(name, lists_dir, splits, converter.classes(), unmatched)


def paint_cityscapes_polygons(path: str) -> np.ndarray:
    """The uint8 label-id mask of one ``*_gtFine_polygons.json`` (see the module docstring); a DataError names the
    file and the object for what cannot be painted."""
    content = read_json(path)
    try:
        height, width = int(content["imgHeight"]), int(content["imgWidth"])
        objects = list(content["objects"])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: not a Cityscapes polygon file (needs imgHeight, imgWidth and objects)") from None
    canvas = Image.new("L", (width, height), CITYSCAPES_LABEL_IDS["unlabeled"])
    draw = ImageDraw.Draw(canvas)
    for number, entry in enumerate(objects, start=1):
        if entry.get("deleted"):
            continue
        label = str(entry.get("label", ""))
        if label not in CITYSCAPES_LABEL_IDS and label.endswith("group"):
            label = label[: -len("group")]
        if label not in CITYSCAPES_LABEL_IDS:
            raise DataError(f"{path}: object {number} has the label {entry.get('label')!r}, not a Cityscapes label")
        points = [(float(x), float(y)) for x, y in entry.get("polygon", [])]
        if len(points) < 3:
            raise DataError(f"{path}: object {number} ({label!r}) has {len(points)} points; a polygon needs 3")
        if CITYSCAPES_LABEL_IDS[label] >= 0:
            draw.polygon(points, fill=CITYSCAPES_LABEL_IDS[label])
    return np.asarray(canvas, dtype=np.uint8)


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
