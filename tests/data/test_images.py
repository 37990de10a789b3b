"""Image and mask decoding: colour conversions and every refused mask format."""

import logging
import threading

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.data import images
from refinenet_tf.data.images import check_labels, load_image, load_mask, load_pair
from refinenet_tf.errors import DataError

RNG = np.random.default_rng(0)


def _save(tmp_path, name, array, **options):
    path = str(tmp_path / name)
    Image.fromarray(array).save(path, **options)
    return path


def _data_error(function, *args):
    with pytest.raises(DataError) as caught:
        function(*args)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_rgb_png_and_jpeg_are_read_as_rgb(tmp_path):
    rgb = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(load_image(_save(tmp_path, "a.png", rgb)), rgb)
    smooth = np.full((8, 8, 3), (200, 30, 90), np.uint8)
    decoded = load_image(_save(tmp_path, "a.jpg", smooth, quality=95))
    assert decoded.shape == (8, 8, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - smooth).max() <= 3


def test_grey_image_becomes_three_equal_channels(tmp_path):
    grey = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    image = load_image(_save(tmp_path, "grey.png", grey))
    assert image.shape == (4, 6, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], grey)


def test_rgba_image_drops_alpha_and_says_so_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(images, "_alpha_said", threading.Event())
    rgba = RNG.integers(0, 256, (4, 6, 4), dtype=np.uint8)
    first = _save(tmp_path, "rgba.png", rgba)
    with caplog.at_level(logging.WARNING, logger="refinenet_tf.data.images"):
        np.testing.assert_array_equal(load_image(first), rgba[..., :3])
        load_image(_save(tmp_path, "second.png", rgba))
    said = [record.getMessage() for record in caplog.records if "alpha" in record.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"{first}: has an alpha channel (RGBA)") and "dropped" in said[0]


def test_palette_image_is_expanded_to_its_colours(tmp_path):
    indices = RNG.integers(0, 3, (4, 6), dtype=np.uint8)
    colours = np.array([[10, 20, 30], [200, 100, 0], [0, 255, 128]], np.uint8)
    palette_image = Image.fromarray(indices).convert("P")
    palette_image.putpalette(colours.ravel().tolist())
    path = str(tmp_path / "palette.png")
    palette_image.save(path)
    np.testing.assert_array_equal(load_image(path), colours[indices])


def test_truncated_and_garbage_images_name_the_file(tmp_path):
    good = _save(tmp_path, "full.jpg", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(open(good, "rb").read()[:300])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    assert "truncated.jpg" in _data_error(load_image, str(truncated))
    assert "garbage.png" in _data_error(load_image, str(garbage))
    assert "gone.png" in _data_error(load_image, str(tmp_path / "gone.png"))


def test_index_mask_is_read_unchanged(tmp_path):
    mask = RNG.integers(0, 21, (5, 7), dtype=np.uint8)
    np.testing.assert_array_equal(load_mask(_save(tmp_path, "mask.png", mask)), mask)


def test_palette_mask_refused_with_convert_command(tmp_path):
    palette_mask = Image.fromarray(RNG.integers(0, 3, (4, 4), dtype=np.uint8)).convert("P")
    path = str(tmp_path / "palette_mask.png")
    palette_mask.save(path)
    message = _data_error(load_mask, path)
    assert "palette_mask.png" in message and "palette" in message
    assert "convert_masks.py --format palette" in message


@pytest.mark.parametrize("channels", [3, 4])
def test_colour_mask_refused_even_when_channels_are_equal(tmp_path, channels):
    grey = RNG.integers(0, 3, (4, 4), dtype=np.uint8)
    path = _save(tmp_path, "colour_mask.png", np.stack([grey] * channels, axis=-1))
    message = _data_error(load_mask, path)
    assert "colour_mask.png" in message
    assert "convert_masks.py --format rgb --class-dict class_dict.csv" in message


def test_sixteen_bit_mask_refused(tmp_path):
    path = str(tmp_path / "deep_mask.png")
    Image.fromarray(RNG.integers(0, 3, (4, 4)).astype(np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    message = _data_error(load_mask, path)
    assert "deep_mask.png" in message and "16" in message


def test_jpeg_mask_refused(tmp_path):
    path = _save(tmp_path, "mask.jpg", np.zeros((8, 8), np.uint8))
    message = _data_error(load_mask, path)
    assert "mask.jpg" in message and "JPEG" in message


def test_check_labels_lists_bad_values_and_counts():
    mask = np.zeros((4, 5), np.uint8)
    mask[0, :3] = 7
    mask[1, 0] = 30
    mask[2, :] = 255
    mask[3, :] = 2
    check_labels(mask, num_classes=31, ignore_label=255, path="m.png")
    message = _data_error(check_labels, mask, 3, 255, "m.png")
    assert "m.png" in message and "7 (3 px)" in message and "30 (1 px)" in message
    assert "255" not in message.split("ignore label")[0]


def test_check_labels_lists_at_most_ten_values():
    mask = np.arange(20, 40, dtype=np.uint8).reshape(4, 5)
    message = _data_error(check_labels, mask, 2, 255, "m.png")
    assert "29 (1 px)" in message and "30 (1 px)" not in message and "10 more" in message


def test_load_pair_checks_sizes_and_labels(tmp_path):
    image_path = _save(tmp_path, "img.png", RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8))
    mask = RNG.integers(0, 3, (4, 6), dtype=np.uint8)
    image, loaded = load_pair(image_path, _save(tmp_path, "ok.png", mask), 3, 255)
    assert image.shape == (4, 6, 3)
    np.testing.assert_array_equal(loaded, mask)

    small_mask = _save(tmp_path, "small.png", np.zeros((4, 5), np.uint8))
    message = _data_error(load_pair, image_path, small_mask, 3, 255)
    assert "img.png" in message and "small.png" in message and "6x4" in message and "5x4" in message

    assert "ok.png" in _data_error(load_pair, image_path, _save(tmp_path, "ok.png", mask + 3), 3, 255)
