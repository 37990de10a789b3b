"""COCO instance annotations, written as COCO's tools write them (polygons, uncompressed RLE in column-major runs,
compressed RLE strings, crowd regions, category ids with gaps), turned into semantic index masks; the masks are
checked against references made here in NumPy."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.cli import convert_masks
from refinenet_tf.cli.common import run
from refinenet_tf.data.class_table import ClassTable
from refinenet_tf.data.layouts import ConversionOptions, prepare_coco_dataset
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.errors import DataError
from tests.support.raster import distance_to_outline, inside_polygon

mask_api = pytest.importorskip("pycocotools.mask", reason="COCO annotations are decoded by pycocotools (coco extra)")

QUIET = ConversionOptions(progress=None)
HEIGHT, WIDTH = 120, 160
CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
              {"id": 3, "name": "car", "supercategory": "vehicle"},
              {"id": 18, "name": "dog", "supercategory": "animal"}]
YS, XS = np.mgrid[0:HEIGHT, 0:WIDTH].astype(float)
# listed before the large car polygon that covers it: the smaller dog must stay on top
DOG = [60.0, 50.0, 80.0, 48.0, 84.0, 70.0, 58.0, 72.0]
CAR = [20.0, 30.0, 140.0, 28.0, 150.0, 100.0, 10.0, 104.0]
PERSON_BOX = (slice(5, 25), slice(100, 130))  # rows, columns: uncompressed RLE
DISC = np.hypot(XS - 30, YS - 100) <= 12  # compressed RLE
CROWD_BOX = (slice(90, 118), slice(120, 158))  # uncompressed RLE, iscrowd 1


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """Runs of 0s and 1s in column-major order, starting with a (maybe empty) run of 0s, as COCO stores them."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    return {"size": [HEIGHT, WIDTH], "counts": ([0] + runs) if flat[0] else runs}


def _box(rows_cols) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[rows_cols] = True
    return mask


def _polygon_mask(flat: list[float]) -> np.ndarray:
    """COCO's coordinates are continuous: pixel (x, y) is the square from (x, y) to (x + 1, y + 1), and it belongs
    to a polygon whose outline encloses its centre."""
    return inside_polygon(list(zip(flat[0::2], flat[1::2], strict=True)), XS + 0.5, YS + 0.5)


def _near_outline(flat: list[float], within: float = 2.0) -> np.ndarray:
    return distance_to_outline(list(zip(flat[0::2], flat[1::2], strict=True)), XS, YS) <= within


def _annotation(annotation_id: int, category_id: int, segmentation, crowd: int = 0) -> dict:
    return {"id": annotation_id, "image_id": 7, "category_id": category_id, "segmentation": segmentation,
            "area": 0.0, "bbox": [0, 0, 0, 0], "iscrowd": crowd}


def _write(folder, annotations: list[dict], **image_changes) -> str:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(
        folder / "images" / "000000000007.jpg")
    Image.new("RGB", (WIDTH, HEIGHT)).save(folder / "images" / "000000000009.jpg")  # no annotations
    images = [{"id": 7, "file_name": "000000000007.jpg", "height": HEIGHT, "width": WIDTH, **image_changes},
              {"id": 9, "file_name": "000000000009.jpg", "height": HEIGHT, "width": WIDTH}]
    path = folder / "instances.json"
    path.write_text(json.dumps({"info": {"description": "test"}, "licenses": [], "images": images,
                                "annotations": annotations, "categories": CATEGORIES}), encoding="utf-8")
    return str(path)


def _scene() -> list[dict]:
    compressed = mask_api.encode(np.asfortranarray(DISC.astype(np.uint8)))
    return [_annotation(1, 18, [DOG]),
            _annotation(2, 3, [CAR]),
            _annotation(3, 1, _uncompressed_rle(_box(PERSON_BOX))),
            _annotation(4, 1, {"size": [HEIGHT, WIDTH], "counts": compressed["counts"].decode("ascii")}),
            _annotation(5, 1, _uncompressed_rle(_box(CROWD_BOX)), crowd=1)]


def _mask(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_coco_instances_become_semantic_masks_matching_references(tmp_path):
    prepared = prepare_coco_dataset(_write(tmp_path, _scene()), str(tmp_path / "images"), "coco",
                                    str(tmp_path / "dataset"), options=QUIET)
    assert prepared.table.names == ("background", "person", "car", "dog")  # categories in the order of their ids
    samples = {os.path.basename(s.image_path): s for s in read_list_file(prepared.data_dir, prepared.lists["train"])}
    assert set(np.unique(_mask(samples["000000000009.jpg"].mask_path))) == {0}
    converted = _mask(samples["000000000007.jpg"].mask_path)
    reference = np.zeros((HEIGHT, WIDTH), np.uint8)
    regions = [(_polygon_mask(CAR), 2), (_polygon_mask(DOG), 3), (_box(PERSON_BOX), 1), (DISC, 1),
               (_box(CROWD_BOX), 255)]
    for region, value in sorted(regions, key=lambda item: -int(item[0].sum())):  # larger first
        reference[region] = value
    assert np.mean(converted == reference) >= 0.99
    away = ~(_near_outline(CAR) | _near_outline(DOG))
    np.testing.assert_array_equal(converted[away], reference[away])  # the RLE regions exactly
    assert converted[60, 70] == 3  # the dog inside the car, though listed first
    assert converted[100, 140] == 255  # the crowd region


def test_categories_missing_from_a_given_class_dict_are_one_error_or_ignored(tmp_path):
    path = _write(tmp_path, _scene())
    table = ClassTable(("background", "car"), ((0, 0, 0), (0, 0, 142)))
    with pytest.raises(DataError, match=r"categories missing from the class table \(background, car\): 'dog', "
                                        r"'person'; add them to"):
        prepare_coco_dataset(path, str(tmp_path / "images"), "c", str(tmp_path / "dataset"), table=table,
                             options=QUIET)
    prepared = prepare_coco_dataset(path, str(tmp_path / "images"), "c", str(tmp_path / "dataset"), table=table,
                                    options=ConversionOptions(unknown="ignore", progress=None))
    sample = read_list_file(prepared.data_dir, prepared.lists["train"])[0]
    assert set(np.unique(_mask(sample.mask_path))) == {0, 1, 255}


@pytest.mark.parametrize(("annotation", "image_changes", "expected"), [
    (_annotation(1, 3, [[10.0, 10.0, 20.0, 10.0]]), {}, "annotation 1: a polygon needs at least 3 (x, y) points"),
    (_annotation(2, 3, [[10.0, 10.0, 200.0, 10.0, 20.0, 30.0]]), {}, "annotation 2: a polygon reaches outside the "
                                                                     "160x120 image"),
    (_annotation(3, 1, {"size": [HEIGHT, WIDTH], "counts": [5, 10]}), {}, "annotation 3: its RLE counts sum to 15, "
                                                                          "not the image's 19200 pixels"),
    (_annotation(4, 1, [DOG]), {"width": 150}, "the file states 150x120, but"),
])
def test_bad_annotations_are_one_line_naming_the_file_and_the_entry(tmp_path, annotation, image_changes, expected):
    path = _write(tmp_path, [annotation], **image_changes)
    with pytest.raises(DataError) as error:
        prepare_coco_dataset(path, str(tmp_path / "images"), "bad", str(tmp_path / "dataset"), options=QUIET)
    assert str(error.value).startswith(path) and expected in str(error.value) and "\n" not in str(error.value)


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text('{"images": [', encoding="utf-8")
    with pytest.raises(DataError, match=f"{path}: not valid JSON"):
        prepare_coco_dataset(str(path), str(tmp_path), "bad", str(tmp_path / "dataset"), options=QUIET)


def test_the_command_converts_a_coco_file(tmp_path, monkeypatch, capsys):
    _write(tmp_path, _scene())
    monkeypatch.chdir(tmp_path)
    assert run(convert_masks.main, ["--layout", "coco", "instances.json", "images", "--name", "coco", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "train: --data-list dataset/coco/train.txt (2 lines)" in printed
    assert "classes: dataset/coco/class_dict.csv (4 classes)" in printed
