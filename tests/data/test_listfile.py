"""List-file parsing: separators, unlabeled lists, comments and every refused input."""

import os

import pytest

from refinenet_tf.data.listfile import Sample, read_list_file, spread_over
from refinenet_tf.errors import DataError


def _touch(root, *relative_paths):
    for relative in relative_paths:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def _write_list(tmp_path, text, name="list.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "VOC"
    _touch(root, "JPEGImages/a.jpg", "JPEGImages/b.jpg", "Masks/a.png", "Masks/b.png")
    return root


def test_space_tab_and_comments(tmp_path, data_dir):
    list_path = _write_list(
        tmp_path,
        "# train split\n/JPEGImages/a.jpg /Masks/a.png\n\n   \nJPEGImages/b.jpg\t Masks/b.png\n",
    )
    samples = read_list_file(str(data_dir), list_path)
    assert samples == [
        Sample(str(data_dir / "JPEGImages/a.jpg"), str(data_dir / "Masks/a.png"), list_path, 2),
        Sample(str(data_dir / "JPEGImages/b.jpg"), str(data_dir / "Masks/b.png"), list_path, 5),
    ]
    assert samples[1].origin == f"{list_path}:5"


def test_several_spaces_between_fields(tmp_path, data_dir):
    list_path = _write_list(tmp_path, "/JPEGImages/a.jpg     /Masks/a.png\n")
    assert read_list_file(str(data_dir), list_path)[0].mask_path == str(data_dir / "Masks/a.png")


def test_image_only_lines_for_unlabeled_lists(tmp_path, data_dir):
    list_path = _write_list(tmp_path, "/JPEGImages/a.jpg\n/JPEGImages/b.jpg\n")
    samples = read_list_file(str(data_dir), list_path, require_masks=False)
    assert [s.mask_path for s in samples] == [None, None]
    assert [os.path.basename(s.image_path) for s in samples] == ["a.jpg", "b.jpg"]


def _error(data_dir, list_path, require_masks=True):
    with pytest.raises(DataError) as caught:
        read_list_file(str(data_dir), list_path, require_masks=require_masks)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_image_only_line_needs_mask_when_required(tmp_path, data_dir):
    list_path = _write_list(tmp_path, "/JPEGImages/a.jpg /Masks/a.png\n/JPEGImages/b.jpg\n")
    assert f"{list_path}:2" in _error(data_dir, list_path)


def test_mixed_labeled_and_unlabeled_lines_refused(tmp_path, data_dir):
    list_path = _write_list(tmp_path, "/JPEGImages/a.jpg\n/JPEGImages/b.jpg /Masks/b.png\n")
    message = _error(data_dir, list_path, require_masks=False)
    assert f"{list_path}:2" in message and "line 1" in message


def test_three_fields_refused(tmp_path, data_dir):
    list_path = _write_list(tmp_path, "# header\n/JPEGImages/a.jpg /Masks/a.png extra\n")
    message = _error(data_dir, list_path)
    assert f"{list_path}:2" in message and "3 fields" in message


def test_missing_referenced_file(tmp_path, data_dir):
    list_path = _write_list(
        tmp_path, "/JPEGImages/a.jpg /Masks/a.png\n/JPEGImages/b.jpg /Masks/missing.png\n"
    )
    message = _error(data_dir, list_path)
    assert f"{list_path}:2" in message and "missing.png" in message


@pytest.mark.parametrize("field", ["../../etc/passwd", "/../outside.png", "Masks/../../outside.png"])
def test_path_outside_data_dir_refused(tmp_path, data_dir, field):
    _touch(tmp_path, "outside.png")
    list_path = _write_list(tmp_path, f"/JPEGImages/a.jpg {field}\n")
    message = _error(data_dir, list_path)
    assert f"{list_path}:1" in message and "outside the data directory" in message


def test_missing_list_file(tmp_path, data_dir):
    missing = str(tmp_path / "nope.txt")
    assert missing in _error(data_dir, missing)


def test_empty_list_file(tmp_path, data_dir):
    list_path = _write_list(tmp_path, "# only a comment\n\n")
    message = _error(data_dir, list_path)
    assert list_path in message and "no samples" in message


def test_binary_list_file(tmp_path, data_dir):
    list_path = tmp_path / "list.txt"
    list_path.write_bytes(b"\xff\xfe\x00garbage")
    assert str(list_path) in _error(data_dir, str(list_path))


def test_spread_over_covers_a_sorted_list_end_to_end():
    assert spread_over(range(10), 3) == [0, 3, 6]
    assert spread_over(list("abcdefghij"), 5) == ["a", "c", "e", "g", "i"]
    assert spread_over([1, 2], 100) == [1, 2]
    assert spread_over([], 4) == []
