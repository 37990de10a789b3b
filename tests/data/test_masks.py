"""Array and file conversions to index masks, with exact round trips."""

import io

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.data.class_table import CITYSCAPES_LABEL_IDS_OF_TRAIN_IDS, ClassTable
from refinenet_tf.data.masks import (
    MaskConverter,
    cityscapes_to_train_ids,
    convert_mask_files,
    index_to_colour,
    rgb_to_index,
    save_palette_mask,
    train_ids_to_label_ids,
)
from refinenet_tf.errors import ConfigError, DataError

TABLE = ClassTable(("sky", "road", "car"), ((70, 130, 180), (128, 64, 128), (0, 0, 142)))


def random_index(seed, num_classes, shape=(23, 31), ignore_label=255):
    rng = np.random.default_rng(seed)
    index = rng.integers(0, num_classes, shape).astype(np.uint8)
    index[rng.random(shape) < 0.1] = ignore_label
    return index


def read(path):
    return np.asarray(Image.open(path))


def test_rgb_round_trip_is_exact():
    index = random_index(0, TABLE.num_classes)
    colour = index_to_colour(index, TABLE)
    assert (colour[index == 255] == 0).all()
    converted, unknown = rgb_to_index(colour, TABLE)
    assert unknown == {}
    np.testing.assert_array_equal(converted, index)


def test_rgb_unknown_colours_are_counted_and_ignored():
    colour = index_to_colour(np.zeros((4, 5), np.uint8), TABLE)
    colour[0, :3] = (1, 2, 3)
    colour[3, 4] = (9, 9, 9)
    converted, unknown = rgb_to_index(colour, TABLE, ignore_label=254)
    assert unknown == {(1, 2, 3): 3, (9, 9, 9): 1}
    assert (converted[0, :3] == 254).all() and converted[3, 4] == 254
    assert (converted[1:3] == 0).all()


def test_cityscapes_train_ids_round_trip():
    train_ids = random_index(1, 19)
    label_ids = train_ids_to_label_ids(train_ids)
    assert set(np.unique(label_ids)) <= set(CITYSCAPES_LABEL_IDS_OF_TRAIN_IDS) | {0}
    np.testing.assert_array_equal(cityscapes_to_train_ids(label_ids), train_ids)
    # labels outside the 19 training classes (ego vehicle 1, license plate's 255 ...) are ignored
    np.testing.assert_array_equal(cityscapes_to_train_ids(np.array([1, 7, 26, 255, 34])), [255, 0, 13, 255, 255])


def test_palette_png_round_trip_through_a_file(tmp_path):
    index = random_index(2, 21)
    save_palette_mask(str(tmp_path / "a.png"), index)
    assert Image.open(tmp_path / "a.png").mode == "P"
    converted, _ = MaskConverter("palette").convert(str(tmp_path / "a.png"))
    np.testing.assert_array_equal(converted, index)
    moved, _ = MaskConverter("palette", ignore_label=250).convert(str(tmp_path / "a.png"))
    np.testing.assert_array_equal(moved, np.where(index == 255, 250, index))


def test_wrong_image_kinds_name_the_file(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "grey.png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "colour.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"grey.png: a single-channel \(L\) image, not an RGB colour mask"):
        MaskConverter("rgb", TABLE).convert(str(tmp_path / "grey.png"))
    with pytest.raises(DataError, match=r"colour.png: expected a palette mask .*format rgb"):
        MaskConverter("palette").convert(str(tmp_path / "colour.png"))
    with pytest.raises(DataError, match="broken.png: cannot read the image"):
        MaskConverter("palette").convert(str(tmp_path / "broken.png"))


@pytest.mark.parametrize("kwargs, message", [
    ({"format": "rgb"}, "need a class table"),
    ({"format": "rgb", "table": TABLE, "ignore_label": 2}, "is a class index"),
    ({"format": "cityscapes", "ignore_label": 18}, "is a class index"),
    ({"format": "palette", "ignore_label": 300}, "0..255"),
    ({"format": "jpeg"}, "format must be one of"),
])
def test_bad_converter_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MaskConverter(**kwargs)


def colour_files(tmp_path, count, stray=None):
    """Colour masks a0.png..; ``stray`` = {file number: (colour, pixels)} paints unknown colours."""
    jobs = []
    for i in range(count):
        colour = index_to_colour(random_index(10 + i, TABLE.num_classes), TABLE)
        if stray and i in stray:
            value, pixels = stray[i]
            colour.reshape(-1, 3)[:pixels] = value
        source = tmp_path / "in" / f"a{i}.png"
        source.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(colour).save(source)
        jobs.append((str(source), str(tmp_path / "out" / f"a{i}.png")))
    return jobs


def test_unknown_colours_are_aggregated_over_files(tmp_path):
    jobs = colour_files(tmp_path, 3, stray={0: ((1, 2, 3), 5), 2: ((1, 2, 3), 4)})
    jobs += colour_files(tmp_path / "more", 2, stray={1: ((200, 0, 1), 7)})
    with pytest.raises(DataError) as error:
        convert_mask_files(jobs, MaskConverter("rgb", TABLE), workers=2, progress=None)
    message = str(error.value)
    assert "2 colours not in the class table" in message
    assert f"(1, 2, 3) in 9 pixels (2 files, e.g. {jobs[0][0]})" in message
    assert f"(200, 0, 1) in 7 pixels (1 file, e.g. {jobs[4][0]})" in message
    assert "unknown ignore" in message


def test_unknown_ignore_writes_every_file(tmp_path):
    jobs = colour_files(tmp_path, 2, stray={1: ((1, 2, 3), 6)})
    stream = io.StringIO()
    result = convert_mask_files(jobs, MaskConverter("rgb", TABLE, unknown="ignore"), workers=2, progress=stream)
    assert result.written == [out for _, out in jobs]
    assert result.unknown.entries() == [((1, 2, 3), 6, jobs[1][0], 1)]
    converted = read(jobs[1][1])
    assert (converted.reshape(-1)[:6] == 255).all()
    assert "converting masks  2/2  " in stream.getvalue() and "\r" not in stream.getvalue()


def test_refuses_to_overwrite_a_source(tmp_path):
    jobs = colour_files(tmp_path, 2)
    before = (tmp_path / "in" / "a0.png").read_bytes()
    with pytest.raises(ConfigError, match="refusing to overwrite an input mask"):
        convert_mask_files([(jobs[1][0], jobs[0][0]), jobs[0]], MaskConverter("rgb", TABLE), progress=None)
    assert (tmp_path / "in" / "a0.png").read_bytes() == before
