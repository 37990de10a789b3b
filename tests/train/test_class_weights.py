"""Class weights: pixel counts of generated masks, the two formulas, the cache, and CSV/JSON weight files."""

import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.errors import ConfigError, DataError
from refinenet_tf.train.class_weights import (
    check_choice,
    class_pixels,
    count_class_pixels,
    inverse_frequency,
    median_frequency,
    read_weights_file,
    resolve_class_weights,
)

NAMES = ["sky", "road", "sign"]


def _write_masks(root, masks) -> str:
    """Save index masks (and blank images) under ``root``; the list file's path."""
    lines = []
    for index, mask in enumerate(masks):
        Image.fromarray(np.zeros(mask.shape + (3,), np.uint8)).save(root / f"{index}.jpg")
        Image.fromarray(mask.astype(np.uint8), mode="L").save(root / f"{index}.png")
        lines.append(f"/{index}.jpg /{index}.png\n")
    list_path = root / "train.txt"
    list_path.write_text("".join(lines))
    return str(list_path)


def _mask(counts: dict[int, int]) -> np.ndarray:
    """A 10x10 mask holding ``counts[value]`` pixels of each value, in shuffled order."""
    values = np.concatenate([np.full(count, value) for value, count in counts.items()])
    assert values.size == 100
    return np.random.default_rng(len(counts)).permutation(values).reshape(10, 10)


@pytest.fixture
def known_masks(tmp_path):
    """Two masks: 120 sky, 60 road, 20 sign pixels in all, and 10 + 10 ignored ones (255)."""
    return _write_masks(tmp_path, [_mask({0: 70, 1: 10, 2: 10, 255: 10}), _mask({0: 50, 1: 50})])


def test_counting_the_masks_gives_each_class_pixels_without_the_ignore_label(tmp_path, known_masks):
    samples = read_list_file(str(tmp_path), known_masks)
    np.testing.assert_array_equal(count_class_pixels(samples, 3, 255), [120, 60, 10])


def test_inverse_frequency_weights_average_one_over_the_pixels_and_median_frequency_gives_the_median_class_one():
    frequencies = np.array([0.6, 0.3, 0.1])
    inverse = inverse_frequency(frequencies)
    np.testing.assert_allclose(inverse, [1 / 1.8, 1 / 0.9, 1 / 0.3])
    assert np.sum(frequencies * inverse) == pytest.approx(1.0)
    np.testing.assert_allclose(median_frequency(frequencies), [0.5, 1.0, 3.0])


def test_a_method_counts_the_masks_once_and_caches_the_counts_beside_the_snapshots(tmp_path, known_masks):
    snapshots = str(tmp_path / "snapshots")
    weights = resolve_class_weights("median-frequency", NAMES, 255, str(tmp_path), known_masks, snapshots)
    assert weights.pixels == (120, 60, 10) and weights.source == "median-frequency"
    np.testing.assert_allclose(weights.weights, [0.5, 1.0, 6.0])  # frequencies 120/190, 60/190, 10/190
    cache = json.loads((tmp_path / "snapshots" / "class_frequencies.json").read_text())
    assert cache["pixels"] == [120, 60, 10] and cache["key"]["data_list"] == os.path.abspath(known_masks)
    table = weights.table(NAMES)
    assert table[0].split() == ["class", "pixels", "frequency", "weight"]
    assert table[3].split() == ["sign", "10", "5.263%", "6"]

    # the masks change but the list does not: the cached counts are used
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="L").save(tmp_path / "1.png")
    assert list(class_pixels(snapshots, str(tmp_path), known_masks, 3, 255)) == [120, 60, 10]
    # another class count, or a list file of another size, is counted again
    assert list(class_pixels(snapshots, str(tmp_path), known_masks, 4, 255)) == [170, 10, 10, 0]
    with open(known_masks, "a") as stream:
        stream.write("# edited\n")
    assert list(class_pixels(snapshots, str(tmp_path), known_masks, 3, 255)) == [170, 10, 10]


def test_a_class_missing_from_the_masks_gets_the_largest_weight_with_a_one_line_warning(tmp_path, caplog):
    list_path = _write_masks(tmp_path, [_mask({0: 80, 1: 20})])
    caplog.set_level(logging.WARNING)
    weights = resolve_class_weights("inverse-frequency", NAMES, 255, str(tmp_path), list_path, str(tmp_path / "s"))
    np.testing.assert_allclose(weights.weights, [1 / 1.6, 1 / 0.4, 1 / 0.4])
    assert all(np.isfinite(weights.weights))
    [warning] = [record.getMessage() for record in caplog.records]
    assert "'sign' (2) never occur in the masks of" in warning and "largest weight, 2.5" in warning
    assert "\n" not in warning


def test_masks_without_a_labelled_pixel_are_refused_naming_the_list(tmp_path):
    list_path = _write_masks(tmp_path, [np.full((10, 10), 255)])
    with pytest.raises(DataError) as error:
        resolve_class_weights("median-frequency", NAMES, 255, str(tmp_path), list_path, str(tmp_path / "s"))
    assert str(error.value).startswith(f"{list_path}: the masks hold no labelled pixel")
    assert "class_weights median-frequency" in str(error.value) and "\n" not in str(error.value)


def test_a_bad_mask_stops_the_count_naming_it_or_is_left_out_when_skipping(tmp_path, caplog):
    list_path = _write_masks(tmp_path, [_mask({0: 90, 2: 10}), np.full((10, 10), 7)])  # 7 is not a class
    samples = read_list_file(str(tmp_path), list_path)
    with pytest.raises(DataError, match=f"^{tmp_path / '1.png'}: label values 7"):
        count_class_pixels(samples, 3, 255)
    caplog.set_level(logging.WARNING)
    np.testing.assert_array_equal(count_class_pixels(samples, 3, 255, skip_bad=True), [90, 0, 10])
    assert "1 unusable masks left out" in caplog.text


@pytest.mark.parametrize("name, text", [
    ("weights.csv", "name,weight\nsign,5\nsky,0.5\nroad,1.25\n"),
    ("weights.txt", "sky, 0.5\n\nroad, 1.25\nsign, 5\n"),
    ("weights.json", '{"road": 1.25, "sign": 5, "sky": 0.5}'),
])
def test_a_weights_file_gives_the_weights_in_the_models_class_order(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    np.testing.assert_array_equal(read_weights_file(str(path), NAMES), [0.5, 1.25, 5.0])
    weights = resolve_class_weights(str(path), NAMES, 255, "unused", "unused", "unused")
    assert weights.weights == (0.5, 1.25, 5.0) and weights.pixels is None
    assert weights.table(NAMES)[2].split() == ["road", "1.25"]


@pytest.mark.parametrize("name, text, message", [
    ("w.csv", "sky,1\nroad,1\ncar,2\n", "w.csv:3: 'car' is not a class of the model (its classes: sky, road, sign)"),
    ("w.csv", "sky,1\nroad,1\n", "w.csv: no weight for class 'sign' (class 2)"),
    ("w.json", '{"sky": 1, "Road": 1, "sign": 1}', "w.json: 'Road' is not a class of the model"),
    ("w.csv", "sky,1\nroad,-2\nsign,1\n", "w.csv:2: the weight of 'road' is -2; weights must be finite numbers >= 0"),
    ("w.csv", "sky,1\nroad,inf\nsign,1\n", "w.csv:2: the weight of 'road' is inf; weights must be finite"),
    ("w.csv", "sky,1\nroad,heavy\nsign,1\n", "w.csv:2: the weight of 'road' is 'heavy', not a number"),
    ("w.json", '{"sky": 1, "road": null, "sign": 1}', "w.json: the weight of 'road' is None, not a number"),
    ("w.json", '{"sky": 1, "road": 1, "sky": 2, "sign": 1}', "w.json: class 'sky' is given twice"),
    ("w.json", '[1, 2, 3]', "w.json: expected a JSON object"),
    ("w.json", '{"sky": 1,', "w.json: not valid JSON"),
    ("w.csv", "sky,1,2\n", "w.csv:1: expected 'name,weight', got 'sky,1,2'"),
    ("w.csv", "sky,0\nroad,0\nsign,0\n", "w.csv: every weight is 0"),
])
def test_a_bad_weights_file_is_refused_in_one_line_naming_it_and_the_first_problem(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as error:
        read_weights_file(str(path), NAMES)
    assert str(error.value).startswith(str(tmp_path / message.split(":")[0]))
    assert message.split(": ", 1)[1] in str(error.value) and "\n" not in str(error.value)


def test_the_choice_is_none_a_method_or_an_existing_file(tmp_path):
    assert check_choice(None) is None and check_choice("none") is None
    assert check_choice("median-frequency") == "median-frequency"
    (tmp_path / "w.csv").write_text("a,1\n")
    assert check_choice(tmp_path / "w.csv") == str(tmp_path / "w.csv")
    with pytest.raises(ConfigError) as error:
        check_choice("median_frequency")
    assert str(error.value) == ("class_weights is none, inverse-frequency, median-frequency or a weights file (CSV "
                                'name,weight rows or JSON {"name": weight}); median_frequency is neither a method '
                                "nor a file")
