"""LabelMe annotations: one JSON file per image, painted into index masks.

Every shape LabelMe writes is painted as LabelMe's own ``shape_to_mask`` does, with PIL's drawing (polygons and
rectangles filled with their outline, circles from the centre through the second point, lines and line strips
:data:`LINE_WIDTH` pixels wide, points as discs of radius :data:`POINT_RADIUS`), in file order: where shapes
overlap, the later shape wins. Pixels no shape covers are background: class 0 of a table built from the labels, or
of a given table its class named ``background`` (or ``_background_``), else the ignore label. A shape labelled
``__ignore__`` paints the ignore label.

The image is the file ``imagePath`` names, relative to the JSON file; when it is missing, the image embedded as
``imageData`` is written beside the masks, under the JSON file's name.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from refinenet_tf.data.class_table import ClassTable, table_with_background
from refinenet_tf.data.images import open_image
from refinenet_tf.data.layouts.common import (
    ConversionOptions,
    Pair,
    PreparedDataset,
    base_name,
    check_val_fraction,
    finish,
    read_json,
    refuse_output_inside_inputs,
    split_pairs,
)
from refinenet_tf.data.masks import save_index_mask
from refinenet_tf.errors import DataError, parameter

SHAPE_KINDS = ("polygon", "rectangle", "circle", "line", "linestrip", "point")
LINE_WIDTH = 10  # LabelMe's shape_to_mask default for lines and line strips
POINT_RADIUS = 5  # LabelMe's shape_to_mask default for points
BACKGROUND_NAMES = ("background", "_background_", "__background__")
IGNORE_NAME = "__ignore__"
_FEWEST_POINTS = {"polygon": 3, "rectangle": 2, "circle": 2, "line": 2, "linestrip": 2, "point": 1}


@dataclass(frozen=True)
class LabelMeShape:
    """One shape: its label, kind, points (x, y) and position in its file (from 1, as people count)."""

    label: str
    kind: str
    points: tuple[tuple[float, float], ...]
    number: int


@dataclass(frozen=True)
class LabelMeFile:
    """One annotation file: its shapes in file order, the image it names, the embedded image, the size it states."""

    path: str
    shapes: tuple[LabelMeShape, ...]
    image_path: str | None
    image_data: bytes | None
    size: tuple[int, int] | None  # (height, width) as the file states it

    def where(self, shape: LabelMeShape) -> str:
        """``file: shape N ('label')``, for messages."""
        return f"{self.path}: shape {shape.number} ({shape.label!r})"


def is_labelme_folder(path: str) -> bool:
    """Whether ``path`` holds LabelMe JSON files (the first JSON file found has ``shapes`` and ``imagePath``)."""
    files = labelme_files(path)
    if not files:
        return False
    try:
        with open(files[0], encoding="utf-8") as handle:
            content = json.load(handle)
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and "shapes" in content and "imagePath" in content


def labelme_files(folder: str) -> list[str]:
    """The ``.json`` files under ``folder``, sorted."""
    return sorted(os.path.join(directory, name) for directory, _, names in os.walk(folder)
                  for name in names if name.lower().endswith(".json"))


def read_labelme(path: str) -> LabelMeFile:
    """Parse one LabelMe file; a DataError names the file (and the shape) for anything that cannot be painted."""
    content = read_json(path)
    if not isinstance(content, dict) or not isinstance(content.get("shapes"), list):
        raise DataError(f"{path}: not a LabelMe annotation (no 'shapes' list)")
    shapes = tuple(_shape(path, number, raw) for number, raw in enumerate(content["shapes"], start=1))
    height, width = content.get("imageHeight"), content.get("imageWidth")
    size = (int(height), int(width)) if isinstance(height, int) and isinstance(width, int) else None
    return LabelMeFile(path, shapes, content.get("imagePath") or None, _image_data(path, content.get("imageData")),
                       size)


def paint_labelme(annotation: LabelMeFile, size: tuple[int, int], class_of: dict[str, int],
                  unlabelled: int) -> np.ndarray:
    """The uint8 index mask of ``size`` (height, width): ``unlabelled`` where no shape is, each shape's class
    (``class_of[label]``) where it is, later shapes over earlier ones. Points must lie within the image."""
    height, width = size
    canvas = Image.new("L", (width, height), unlabelled)
    draw = ImageDraw.Draw(canvas)
    for shape in annotation.shapes:
        outside = [point for point in shape.points if not (0 <= point[0] <= width and 0 <= point[1] <= height)]
        if outside:
            x, y = outside[0]
            raise DataError(f"{annotation.where(shape)}: point ({x:g}, {y:g}) lies outside the {width}x{height} "
                            "image; fix the shape in LabelMe")
        _draw(draw, shape, class_of[shape.label])
    return np.asarray(canvas, dtype=np.uint8)


def prepare_labelme_dataset(folder: str, name: str | None = None, lists_dir: str = "dataset",
                            output_dir: str | None = None, table: ClassTable | None = None,
                            val_fraction: float = 0.0, seed: int = 1234,
                            options: ConversionOptions | None = None) -> PreparedDataset:
    """Every LabelMe JSON file under ``folder`` -> index masks in ``output_dir`` (default ``<folder>_masks``) and
    ``train.txt`` (and ``val.txt`` for ``val_fraction``).

    Without ``table`` the classes are ``background`` and the labels found, sorted by name, in VOC's colours. With
    ``table``, labels it does not list are one DataError naming them and their files, or the ignore label with
    ``options.unknown == 'ignore'``.
    """
    options = options or ConversionOptions()
    check_val_fraction(val_fraction)
    files = labelme_files(folder)
    if not files:
        raise DataError(f"{folder}: no LabelMe .json files")
    output_dir = output_dir or os.path.normpath(folder) + "_masks"
    refuse_output_inside_inputs(output_dir, [folder])
    annotations = [read_labelme(path) for path in files]
    table, class_of, unlabelled = _classes(annotations, table, options)
    pairs: list[Pair] = []
    for annotation in annotations:
        relative = os.path.splitext(os.path.relpath(annotation.path, folder))[0]
        image_path, size = _image(annotation, os.path.join(output_dir, "images", relative))
        mask_path = os.path.join(output_dir, "masks", relative + ".png")
        save_index_mask(mask_path, paint_labelme(annotation, size, class_of, unlabelled))
        pairs.append((image_path, mask_path))
    return finish(name or base_name(folder), lists_dir, split_pairs(pairs, val_fraction, seed), table, [])


def _shape(path: str, number: int, raw: object) -> LabelMeShape:
    if not isinstance(raw, dict):
        raise DataError(f"{path}: shape {number} is not an object")
    label, kind = str(raw.get("label", "")), raw.get("shape_type") or "polygon"
    where = f"{path}: shape {number} ({label!r})"
    if not label:
        raise DataError(f"{where}: has no label")
    if kind not in SHAPE_KINDS:
        raise DataError(f"{where}: shape type {kind!r} cannot be painted; one of {', '.join(SHAPE_KINDS)}")
    try:
        points = tuple((float(x), float(y)) for x, y in raw.get("points", []))
    except (TypeError, ValueError):
        raise DataError(f"{where}: points must be [x, y] pairs of numbers") from None
    if len(points) < _FEWEST_POINTS[kind]:
        raise DataError(f"{where}: a {kind} needs at least {_FEWEST_POINTS[kind]} points, it has {len(points)}")
    return LabelMeShape(label, kind, points, number)


def _image_data(path: str, data: object) -> bytes | None:
    if not data:
        return None
    try:
        return base64.b64decode(str(data), validate=True)
    except (binascii.Error, ValueError):
        raise DataError(f"{path}: imageData is not base64") from None


def _draw(draw: ImageDraw.ImageDraw, shape: LabelMeShape, value: int) -> None:
    points = list(shape.points)
    if shape.kind == "polygon":
        draw.polygon(points, outline=value, fill=value)
    elif shape.kind == "rectangle":
        (x0, y0), (x1, y1) = points[:2]
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=value, fill=value)
    elif shape.kind == "circle":
        (cx, cy), (px, py) = points[:2]
        radius = float(np.hypot(px - cx, py - cy))
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=value, fill=value)
    elif shape.kind in ("line", "linestrip"):
        draw.line(points, fill=value, width=LINE_WIDTH)
    else:
        (cx, cy) = points[0]
        draw.ellipse([cx - POINT_RADIUS, cy - POINT_RADIUS, cx + POINT_RADIUS, cy + POINT_RADIUS], outline=value,
                     fill=value)


def _classes(annotations: Sequence[LabelMeFile], table: ClassTable | None,
             options: ConversionOptions) -> tuple[ClassTable, dict[str, int], int]:
    """The class table, each label's index and the unlabelled pixels' index."""
    labels = sorted({shape.label for annotation in annotations for shape in annotation.shapes} - {IGNORE_NAME})
    if table is None:
        table = table_with_background([label for label in labels if label not in BACKGROUND_NAMES])
    index_of = {class_name: index for index, class_name in enumerate(table.names)}
    unknown = [label for label in labels if label not in index_of and label not in BACKGROUND_NAMES]
    if unknown and options.unknown != "ignore":
        holders = {label: [a.path for a in annotations if any(s.label == label for s in a.shapes)] for label in unknown}
        listed = "; ".join(f"{label!r} in {', '.join(paths[:3])}{' and more' if len(paths) > 3 else ''}"
                           for label, paths in holders.items())
        raise DataError(f"labels missing from the class table ({', '.join(table.names)}): {listed}; add them to "
                        f"{parameter('class_dict')} or pass {parameter('unknown')} ignore to paint them as ignore")
    background = next((index_of[name] for name in BACKGROUND_NAMES if name in index_of), options.ignore_label)
    class_of = {label: index_of.get(label, options.ignore_label) for label in labels}
    class_of.update({name: background for name in BACKGROUND_NAMES})
    class_of[IGNORE_NAME] = options.ignore_label
    return table, class_of, background


def _image(annotation: LabelMeFile, embedded_stem: str) -> tuple[str, tuple[int, int]]:
    """The image file for ``annotation`` (writing the embedded one to ``embedded_stem`` + its extension when the
    named file is missing) and its (height, width), checked against the size the file states."""
    named = (os.path.join(os.path.dirname(annotation.path), annotation.image_path)
             if annotation.image_path else None)
    if named is not None and os.path.isfile(named):
        path = named
        image = open_image(path)
        size = (image.height, image.width)
    elif annotation.image_data is not None:
        try:
            with Image.open(io.BytesIO(annotation.image_data)) as image:
                size = (image.height, image.width)
                extension = f".{(image.format or 'png').lower().replace('jpeg', 'jpg')}"
        except OSError as error:
            raise DataError(f"{annotation.path}: imageData is not an image ({error})") from None
        path = embedded_stem + extension
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(annotation.image_data)
    else:
        raise DataError(f"{annotation.path}: the image {named or '(no imagePath)'} is missing and the file embeds "
                        "no imageData")
    if annotation.size is not None and annotation.size != size:
        raise DataError(f"{annotation.path}: states an image of {annotation.size[1]}x{annotation.size[0]} "
                        f"(imageWidth x imageHeight), but {path} is {size[1]}x{size[0]}")
    return path, size
