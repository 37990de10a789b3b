"""Cityscapes polygon files (``*_gtFine_polygons.json``, as cityscapesScripts writes them) painted into train-id
masks where no ``*_gtFine_labelIds.png`` exists; checked against a NumPy rasterisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.data.layouts import ConversionOptions, prepare_cityscapes_dataset
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.errors import DataError
from tests.support.raster import distance_to_outline, inside_polygon

QUIET = ConversionOptions(progress=None)
HEIGHT, WIDTH = 96, 128
STEM = "aachen_000000_000019"
# label, polygon, deleted; in file order (later ones on top)
OBJECTS = [
    ("road", [[0, 60], [127, 60], [127, 95], [0, 95]], False),
    ("sky", [[0, 0], [127, 0], [127, 25], [0, 25]], False),
    ("cargroup", [[20, 40], [70, 38], [72, 75], [18, 78]], False),  # read as "car"
    ("person", [[90, 30], [110, 30], [110, 80], [90, 80]], True),  # deleted: not painted
    ("license plate", [[35, 60], [55, 60], [55, 68], [35, 68]], False),  # no label id: the car stays
]
TRAIN_ID = {"road": 0, "sky": 10, "cargroup": 13}


def _write(root, objects=OBJECTS, stem: str = STEM) -> None:
    images = root / "leftImg8bit" / "train" / "aachen"
    labels = root / "gtFine" / "train" / "aachen"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (WIDTH, HEIGHT), (90, 90, 90)).save(images / f"{stem}_leftImg8bit.png")
    record = {"imgHeight": HEIGHT, "imgWidth": WIDTH,
              "objects": [{"label": label, "polygon": polygon, **({"deleted": 1} if deleted else {}), "id": index,
                           "user": "annotator", "verified": 0, "date": "01-Jan-2015 00:00:00"}
                          for index, (label, polygon, deleted) in enumerate(objects)]}
    (labels / f"{stem}_gtFine_polygons.json").write_text(json.dumps(record, indent=4), encoding="utf-8")


def test_polygon_files_become_train_id_masks_matching_a_numpy_rasterisation(tmp_path):
    _write(tmp_path)
    # a second image annotated by its labelIds PNG: both kinds are used side by side
    _write(tmp_path, stem="aachen_000001_000019")
    label_ids = np.full((HEIGHT, WIDTH), 7, np.uint8)  # all road
    label_ids[:10] = 23  # sky
    Image.fromarray(label_ids).save(tmp_path / "gtFine" / "train" / "aachen" / "aachen_000001_000019_gtFine_labelIds.png")
    prepared = prepare_cityscapes_dataset(str(tmp_path), "cs", str(tmp_path / "dataset"), options=QUIET)
    samples = read_list_file(prepared.data_dir, prepared.lists["train"])
    assert len(samples) == 2
    with Image.open(samples[1].mask_path) as image:
        from_png = np.asarray(image)
    assert (from_png[:10] == 10).all() and (from_png[10:] == 0).all()
    with Image.open(samples[0].mask_path) as image:
        converted = np.asarray(image)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(float)
    reference = np.full((HEIGHT, WIDTH), 255, np.uint8)  # unlabeled -> ignore
    band = np.zeros((HEIGHT, WIDTH), bool)
    for label, polygon, deleted in OBJECTS:
        if deleted or label not in TRAIN_ID:
            continue
        points = [tuple(map(float, point)) for point in polygon]
        outline = distance_to_outline(points, xs, ys)
        # a closed polygon: its inside and the pixels its outline passes through (integer vertices here)
        reference[inside_polygon(points, xs, ys) | (outline <= 0.5)] = TRAIN_ID[label]
        band |= outline <= 2
    assert np.mean(converted == reference) >= 0.99
    np.testing.assert_array_equal(converted[~band], reference[~band])
    assert converted[50, 100] == 255  # the deleted person left nothing
    assert converted[64, 45] == 13  # under the licence plate, the car


@pytest.mark.parametrize(("objects", "expected"), [
    ([("hovercraft", [[0, 0], [5, 0], [5, 5]], False)], "object 1 has the label 'hovercraft', not a Cityscapes label"),
    ([("road", [[0, 0], [5, 0], [5, 5]], False), ("car", [[0, 0], [5, 5]], False)],
     "object 2 ('car') has 2 points; a polygon needs 3"),
])
def test_bad_polygon_files_are_one_line_naming_the_file_and_object(tmp_path, objects, expected):
    _write(tmp_path, objects)
    with pytest.raises(DataError) as error:
        prepare_cityscapes_dataset(str(tmp_path), "cs", str(tmp_path / "dataset"), options=QUIET)
    assert "_gtFine_polygons.json: " + expected in str(error.value) and "\n" not in str(error.value)
