"""LabelMe annotations, written as LabelMe 5 writes them (its JSON fields, the image embedded as base64
``imageData``), converted into index masks and list files; the masks are checked against a rasterisation written
here in NumPy (point in polygon, distances), independent of the PIL drawing the converter uses."""

from __future__ import annotations

import base64
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.cli import convert_masks
from refinenet_tf.cli.common import run
from refinenet_tf.data.class_table import ClassTable, read_class_table
from refinenet_tf.data.layouts import ConversionOptions, detect_layout, prepare_labelme_dataset
from refinenet_tf.data.layouts.labelme import LINE_WIDTH, POINT_RADIUS
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.errors import DataError
from tests.support.raster import distance_to_outline, inside_polygon

QUIET = ConversionOptions(progress=None)
HEIGHT, WIDTH = 240, 320
# shapes in file order: the disc and the line cross the polygon, the point sits on the rectangle
SCENE = [
    {"label": "road", "shape_type": "polygon", "points": [[8.0, 232.0], [122.0, 80.8], [308.0, 228.0], [160.0, 176.0]]},
    {"label": "car", "shape_type": "rectangle", "points": [[240.0, 20.0], [180.0, 72.0]]},
    {"label": "tree", "shape_type": "circle", "points": [[120.0, 160.0], [120.0, 198.0]]},
    {"label": "pole", "shape_type": "line", "points": [[20.0, 20.0], [280.0, 200.0]]},
    {"label": "sign", "shape_type": "point", "points": [[208.0, 44.0]]},
]


def _image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))


def _labelme_json(shapes: list[dict], image_path: str, image: Image.Image | None) -> dict:
    """A file as LabelMe 5 saves it."""
    data = None
    if image is not None:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"version": "5.4.1", "flags": {},
            "shapes": [{**shape, "group_id": None, "description": "", "flags": {}, "mask": None} for shape in shapes],
            "imagePath": image_path, "imageData": data, "imageHeight": HEIGHT, "imageWidth": WIDTH}


def _write(folder, stem: str, shapes: list[dict], image_file: bool = True, embed: bool = True, **changes) -> str:
    os.makedirs(folder, exist_ok=True)
    image = _image(len(stem))
    if image_file:
        image.save(os.path.join(folder, stem + ".png"))
    path = os.path.join(folder, stem + ".json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({**_labelme_json(shapes, stem + ".png", image if embed else None), **changes}, handle, indent=2)
    return path


def _near_segment(a, b, xs, ys, distance: float) -> np.ndarray:
    """Within ``distance`` of the segment, between its ends (a wide line with flat ends)."""
    (ax, ay), (bx, by) = a, b
    length = np.hypot(bx - ax, by - ay)
    along = ((xs - ax) * (bx - ax) + (ys - ay) * (by - ay)) / length
    across = np.abs((xs - ax) * (by - ay) - (ys - ay) * (bx - ax)) / length
    return (along >= 0) & (along <= length) & (across <= distance)


def _reference(shapes: list[dict], class_of: dict[str, int]) -> np.ndarray:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(float)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    for shape in shapes:
        points = shape["points"]
        if shape["shape_type"] == "polygon":
            covered = inside_polygon(points, xs, ys)
        elif shape["shape_type"] == "rectangle":
            (x0, y0), (x1, y1) = points
            covered = (xs >= min(x0, x1)) & (xs <= max(x0, x1)) & (ys >= min(y0, y1)) & (ys <= max(y0, y1))
        elif shape["shape_type"] == "circle":
            (cx, cy), (px, py) = points
            covered = np.hypot(xs - cx, ys - cy) <= np.hypot(px - cx, py - cy)
        elif shape["shape_type"] == "line":
            covered = _near_segment(points[0], points[1], xs, ys, LINE_WIDTH / 2)
        else:
            covered = np.hypot(xs - points[0][0], ys - points[0][1]) <= POINT_RADIUS
        mask[covered] = class_of[shape["label"]]
    return mask


def _outlines(shapes: list[dict], within: float = 2.0) -> np.ndarray:
    """Pixels within ``within`` of a shape's outline: where two rasterisations may rightly differ."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(float)
    band = np.zeros((HEIGHT, WIDTH), bool)
    for shape in shapes:
        points, kind = shape["points"], shape["shape_type"]
        if kind == "rectangle":
            (x0, y0), (x1, y1) = points
            points, kind = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], "polygon"
        elif kind == "line":  # the outline of a wide line with flat ends
            (ax, ay), (bx, by) = points
            length = np.hypot(bx - ax, by - ay)
            nx, ny = (ay - by) / length * LINE_WIDTH / 2, (bx - ax) / length * LINE_WIDTH / 2
            points, kind = [[ax + nx, ay + ny], [bx + nx, by + ny], [bx - nx, by - ny], [ax - nx, ay - ny]], "polygon"
        if kind == "polygon":
            band |= distance_to_outline(points, xs, ys) <= within
        else:
            (cx, cy), radius = points[0], POINT_RADIUS
            if kind == "circle":
                radius = np.hypot(points[1][0] - cx, points[1][1] - cy)
            band |= np.abs(np.hypot(xs - cx, ys - cy) - radius) <= within
    return band


def _mask(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_labelme_files_become_masks_matching_an_independent_rasterisation(tmp_path):
    folder = tmp_path / "annotations"
    _write(folder, "street", SCENE)
    _write(folder / "more", "embedded_only", SCENE[::-1], image_file=False)  # the image exists only as imageData
    prepared = prepare_labelme_dataset(str(folder), "street", str(tmp_path / "dataset"), options=QUIET)
    assert prepared.table.names == ("background", "car", "pole", "road", "sign", "tree")
    assert read_class_table(prepared.class_dict).names == prepared.table.names
    class_of = {name: index for index, name in enumerate(prepared.table.names)}
    samples = read_list_file(prepared.data_dir, prepared.lists["train"])
    assert len(samples) == 2
    shapes_of = {"street.png": SCENE, "embedded_only.png": SCENE[::-1]}
    for sample in samples:
        converted = _mask(sample.mask_path)
        reference = _reference(shapes_of[os.path.basename(sample.mask_path)], class_of)
        assert converted.shape == (HEIGHT, WIDTH)
        assert np.mean(converted == reference) >= 0.99
        away = ~_outlines(shapes_of[os.path.basename(sample.mask_path)])
        assert away.mean() > 0.5 and np.array_equal(converted[away], reference[away])
    embedded = next(sample.image_path for sample in samples if "embedded_only" in sample.image_path)
    assert embedded.endswith("embedded_only.png") and os.path.isfile(embedded)
    with Image.open(embedded) as image:
        assert np.array_equal(np.asarray(image), np.asarray(_image(len("embedded_only"))))


def test_the_later_shape_wins_where_shapes_overlap(tmp_path):
    square = [[10.0, 10.0], [30.0, 30.0]]  # the same square twice
    _write(tmp_path / "a", "first_a", [{"label": "a", "shape_type": "rectangle", "points": square},
                                       {"label": "b", "shape_type": "rectangle", "points": square}])
    prepared = prepare_labelme_dataset(str(tmp_path / "a"), "order", str(tmp_path / "dataset"), options=QUIET)
    sample = read_list_file(prepared.data_dir, prepared.lists["train"])[0]
    assert _mask(sample.mask_path)[20, 20] == prepared.table.names.index("b")


def test_labels_missing_from_a_given_class_dict_are_one_error_or_ignored(tmp_path):
    _write(tmp_path / "x", "one", SCENE[:2])
    _write(tmp_path / "x", "two", SCENE[2:])
    table = ClassTable(("background", "road", "car"), ((0, 0, 0), (128, 64, 128), (0, 0, 142)))
    with pytest.raises(DataError) as error:
        prepare_labelme_dataset(str(tmp_path / "x"), "t", str(tmp_path / "dataset"), table=table, options=QUIET)
    message = str(error.value)
    assert "'pole'" in message and "'sign'" in message and "'tree'" in message and "two.json" in message
    assert "one.json" not in message and "\n" not in message
    prepared = prepare_labelme_dataset(str(tmp_path / "x"), "t", str(tmp_path / "dataset"), table=table,
                                       options=ConversionOptions(unknown="ignore", progress=None))
    masks = {os.path.basename(s.mask_path): _mask(s.mask_path)
             for s in read_list_file(prepared.data_dir, prepared.lists["train"])}
    assert set(np.unique(masks["two.png"])) == {0, 255}  # tree, pole and sign painted as ignore
    assert set(np.unique(masks["one.png"])) == {0, 1, 2}


@pytest.mark.parametrize(("change", "expected"), [
    ("malformed", "not valid JSON"),
    ("two_point_polygon", "shape 1 ('road'): a polygon needs at least 3 points, it has 2"),
    ("outside", "shape 2 ('car'): point (395, 5) lies outside the 320x240 image"),
    ("size", "states an image of 64x240 (imageWidth x imageHeight), but"),
])
def test_bad_labelme_files_are_one_line_naming_the_file(tmp_path, change, expected):
    shapes = [dict(shape) for shape in SCENE]
    path = _write(tmp_path / "bad", "scene", shapes)
    content = json.loads(open(path, encoding="utf-8").read())
    if change == "two_point_polygon":
        content["shapes"][0]["points"] = content["shapes"][0]["points"][:2]
    elif change == "outside":
        content["shapes"][1]["points"][0] = [395.0, 5.0]
    elif change == "size":
        content["imageWidth"] = 64
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(content)[:-20] if change == "malformed" else json.dumps(content))
    with pytest.raises(DataError) as error:
        prepare_labelme_dataset(str(tmp_path / "bad"), "bad", str(tmp_path / "dataset"), options=QUIET)
    assert str(error.value).startswith(path) and expected in str(error.value) and "\n" not in str(error.value)


def test_the_command_detects_labelme_and_writes_lists_and_classes(tmp_path, monkeypatch, capsys):
    for index in range(4):
        _write(tmp_path / "shots", f"shot{index}", SCENE[index:index + 2])
    monkeypatch.chdir(tmp_path)
    assert detect_layout("shots") == "labelme"
    assert run(convert_masks.main, ["--layout", "auto", "shots", "--name", "shots", "--val-fraction", "0.25",
                                    "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "train: --data-list dataset/shots/train.txt (3 lines)" in printed
    assert "val: --data-list dataset/shots/val.txt (1 lines)" in printed
    assert "classes: dataset/shots/class_dict.csv (6 classes)" in printed
    assert os.path.isdir(tmp_path / "shots_masks" / "masks")
