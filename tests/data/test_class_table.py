"""class_dict.csv reading and writing, and the built-in class tables."""

import pytest

from refinenet_tf.data.class_table import (
    BLACK,
    ClassTable,
    cityscapes_table,
    read_class_table,
    voc_table,
    write_class_table,
)
from refinenet_tf.errors import DataError
from refinenet_tf.palette import voc_palette


def write(tmp_path, text):
    path = tmp_path / "class_dict.csv"
    path.write_text(text)
    return str(path)


def test_void_row_is_not_a_class_and_order_is_kept(tmp_path):
    path = write(tmp_path, "name,r,g,b\nsky,128,128,128\nvoid,0,0,0\nroad, 128 ,64,128\n\n")
    table = read_class_table(path)
    assert table.names == ("sky", "road")
    assert table.colours == ((128, 128, 128), (128, 64, 128))
    assert table.void_colour == BLACK


@pytest.mark.parametrize("text, expected", [
    ("name,red,g,b\nsky,1,2,3\n", ":1: expected the header"),
    ("name,r,g,b\nsky,1,2\n", ":2: expected 4 fields"),
    ("name,r,g,b\nsky,1,2,3\nroad,1,x,3\n", ":3: g must be an integer"),
    ("name,r,g,b\nsky,1,2,300\n", ":2: colour (1, 2, 300) is outside 0..255"),
    ("name,r,g,b\nsky,1,2,3\nroad,1,2,3\n", ":3: colour (1, 2, 3) is already used by class 'sky'"),
    ("name,r,g,b\nsky,1,2,3\nsky,4,5,6\n", ":3: class name 'sky' appears twice"),
    ("name,r,g,b\nvoid,0,0,0\n", "lists no classes"),
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
