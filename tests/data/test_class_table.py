"""class_dict.csv reading and writing, and the built-in class tables."""

import logging

import numpy as np
import pytest

from refinenet_tf.data.class_table import (
    BLACK,
    ClassTable,
    cityscapes_table,
    read_class_table,
    voc_table,
    write_class_table,
)
from refinenet_tf.data.masks import index_to_colour, rgb_to_index
from refinenet_tf.defaults import IGNORE_LABEL
from refinenet_tf.errors import DataError
from refinenet_tf.palette import voc_palette


def write(tmp_path, text):
    path = tmp_path / "class_dict.csv"
    path.write_text(text)
    return str(path)


def test_void_row_is_not_a_class_and_order_is_kept(tmp_path, caplog):
    path = write(tmp_path, "name,r,g,b\nsky,128,128,128\nvoid,0,0,0\nroad, 128 ,64,128\n\n")
    with caplog.at_level(logging.INFO, logger="refinenet_tf.data.class_table"):
        table = read_class_table(path)
    assert table.names == ("sky", "road")
    assert table.colours == ((128, 128, 128), (128, 64, 128))
    assert table.void_colour == BLACK
    assert caplog.messages == [f"{path}:3: 'void' (0,0,0) marks pixels to ignore, not a class"]


@pytest.mark.parametrize("name", ["Void", "UNLABELED", "unlabelled", "ignore", "Ignored", "unknown", "None",
                                  "don't care", "dont_care", "DontCare"])
def test_void_names_make_black_the_ignore_colour(tmp_path, caplog, name):
    path = write(tmp_path, f"name,r,g,b\n{name},0,0,0\nsky,128,128,128\nroad,128,64,128\n")
    with caplog.at_level(logging.INFO, logger="refinenet_tf.data.class_table"):
        table = read_class_table(path)
    assert table.names == ("sky", "road") and table.void_colour == BLACK
    assert caplog.messages == [f"{path}:2: {name!r} (0,0,0) marks pixels to ignore, not a class"]


@pytest.mark.parametrize("name", ["background", "Background", "bg", "void_area", "other"])
def test_black_row_with_another_name_is_a_class_at_its_row(tmp_path, caplog, name):
    path = write(tmp_path, f"name,r,g,b\nsky,128,128,128\n{name},0,0,0\nroad,128,64,128\n")
    with caplog.at_level(logging.INFO, logger="refinenet_tf.data.class_table"):
        table = read_class_table(path)
    assert table.names == ("sky", name, "road")
    assert table.colours == ((128, 128, 128), BLACK, (128, 64, 128))
    assert table.void_colour is None
    assert caplog.messages == []
    rgb = np.array([[[0, 0, 0], [128, 64, 128]], [[128, 128, 128], [0, 0, 0]]], np.uint8)
    index, unknown = rgb_to_index(rgb, table)
    np.testing.assert_array_equal(index, [[1, 2], [0, 1]])
    assert unknown == {}
    # black is a class, so the table is written in the indexed form and reads back the same
    written = write_class_table(str(tmp_path / "out" / "class_dict.csv"), table)
    assert open(written).readline().strip() == "index,name,r,g,b"
    assert read_class_table(written) == table


def test_black_pixels_are_ignored_only_with_a_void_row(tmp_path):
    rgb = np.array([[[0, 0, 0], [128, 64, 128]]], np.uint8)
    void = read_class_table(write(tmp_path, "name,r,g,b\nvoid,0,0,0\nroad,128,64,128\n"))
    np.testing.assert_array_equal(rgb_to_index(rgb, void)[0], [[IGNORE_LABEL, 0]])
    np.testing.assert_array_equal(index_to_colour(np.array([[IGNORE_LABEL, 0]]), void), rgb)
    background = read_class_table(write(tmp_path, "name,r,g,b\nbackground,0,0,0\nroad,128,64,128\n"))
    np.testing.assert_array_equal(rgb_to_index(rgb, background)[0], [[0, 1]])
    np.testing.assert_array_equal(index_to_colour(np.array([[0, 1]]), background), rgb)


def test_indexed_form_keeps_a_black_void_row_as_a_class(tmp_path):
    table = read_class_table(write(tmp_path, "index,name,r,g,b\n0,void,0,0,0\n1,road,128,64,128\n"))
    assert table.names == ("void", "road") and table.void_colour is None


@pytest.mark.parametrize("text, expected", [
    ("name,r,g,b\nvoid,0,0,0\nbackground,0,0,0\n",
     ":3: class 'background' is (0,0,0), which the 'void' row above marks as ignored; keep one of the two rows"),
    ("name,r,g,b\nbackground,0,0,0\nunlabeled,0,0,0\n",
     ":3: 'unlabeled' (0,0,0) would mark pixels to ignore, but (0,0,0) is already class 'background'; "
     "keep one of the two rows"),
])
def test_black_as_both_ignore_colour_and_class_is_refused(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as error:
        read_class_table(path)
    assert str(error.value) == path + expected


@pytest.mark.parametrize("text, expected", [
    ("name,red,g,b\nsky,1,2,3\n", ":1: expected the header"),
    ("name,r,g,b\nsky,1,2\n", ":2: expected 4 fields"),
    ("name,r,g,b\nsky,1,2,3\nroad,1,x,3\n", ":3: g must be an integer"),
    ("name,r,g,b\nsky,1,2,300\n", ":2: colour (1, 2, 300) is outside 0..255"),
    ("name,r,g,b\nsky,1,2,3\nroad,1,2,3\n", ":3: colour (1, 2, 3) is already used by class 'sky'"),
    ("name,r,g,b\nsky,1,2,3\nsky,4,5,6\n", ":3: class name 'sky' appears twice"),
    ("name,r,g,b\nvoid,0,0,0\n", "lists no classes"),
    ("name,r,g,b\nVoid,0,0,0\nUnlabeled,0,0,0\n", "lists no classes (only void rows)"),
    ("index,name,r,g,b\n1,sky,1,2,3\n", ":2: expected index 0, got 1"),
])
def test_malformed_files_name_file_and_line(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as error:
        read_class_table(path)
    assert str(error.value).startswith(path)
    assert expected in str(error.value)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="class table not found"):
        read_class_table(str(tmp_path / "nope.csv"))


@pytest.mark.parametrize("table", [
    ClassTable(("a", "b,with comma", "c"), ((1, 2, 3), (4, 5, 6), (255, 255, 255))),
    ClassTable(("sky", "background"), ((128, 128, 128), (0, 0, 0))),
    ClassTable(("void", "unknown"), ((1, 1, 1), (2, 2, 2))),
    voc_table(),
    cityscapes_table(),
])
def test_write_then_read_gives_the_same_table(tmp_path, table):
    path = write_class_table(str(tmp_path / "sub" / "class_dict.csv"), table)
    assert read_class_table(path) == table


def test_black_class_keeps_its_index(tmp_path):
    path = write_class_table(str(tmp_path / "class_dict.csv"), voc_table())
    table = read_class_table(path)
    assert table.names[0] == "background" and table.colours[0] == BLACK
    assert table.void_colour is None
    assert open(path).readline().strip() == "index,name,r,g,b"


def test_builtin_tables():
    voc = voc_table()
    assert voc.num_classes == 21 and voc.names[15] == "person"
    assert [list(c) for c in voc.colours] == voc_palette(21).tolist()
    cityscapes = cityscapes_table()
    assert cityscapes.num_classes == 19
    assert cityscapes.colours[cityscapes.names.index("car")] == (0, 0, 142)
