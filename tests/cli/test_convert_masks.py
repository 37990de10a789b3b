"""convert_masks.py: round trips for each format, unknown colours, refusing to overwrite inputs."""

import os

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.cli.common import run
from refinenet_tf.cli.convert_masks import main
from refinenet_tf.data.class_table import ClassTable, read_class_table, write_class_table
from refinenet_tf.data.masks import index_to_colour, save_palette_mask, train_ids_to_label_ids
from refinenet_tf.errors import ConfigError, DataError
from refinenet_tf.palette import voc_palette
from tests.support.scripts import run_script

TABLE = ClassTable(("sky", "road", "car", "tree"), ((70, 130, 180), (128, 64, 128), (0, 0, 142), (107, 142, 35)))


def index_masks(count, num_classes, shape=(20, 24)):
    rng = np.random.default_rng(num_classes)
    masks = [rng.integers(0, num_classes, shape).astype(np.uint8) for _ in range(count)]
    for mask in masks:
        mask[rng.random(shape) < 0.05] = 255
    return masks


def save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def read(path):
    return np.asarray(Image.open(path))


def test_rgb_round_trip_with_class_dict_through_the_script(tmp_path):
    masks = index_masks(3, TABLE.num_classes)
    for i, mask in enumerate(masks):
        save(str(tmp_path / "labels" / ("sub" if i == 2 else "") / f"m{i}.png"), index_to_colour(mask, TABLE))
    write_class_table(str(tmp_path / "class_dict.csv"), TABLE)
    completed = run_script("convert_masks.py", tmp_path / "labels", "--format", "rgb", "--class-dict",
                           tmp_path / "class_dict.csv", "--output-dir", tmp_path / "out", "--workers", "2")
    assert completed.returncode == 0, completed.stderr
    assert "converting masks  3/3  " in completed.stderr and "\r" not in completed.stderr
    for i, mask in enumerate(masks):
        converted = Image.open(tmp_path / "out" / ("sub" if i == 2 else "") / f"m{i}.png")
        assert converted.mode == "L"
        np.testing.assert_array_equal(np.asarray(converted), mask)


def test_palette_round_trip(tmp_path):
    masks = index_masks(2, 21)
    for i, mask in enumerate(masks):
        save_palette_mask(str(tmp_path / "SegmentationClass" / f"{i}.png"), mask)
    main([str(tmp_path / "SegmentationClass"), "--format", "palette", "--output-dir", str(tmp_path / "Index"), "--quiet"])
    for i, mask in enumerate(masks):
        np.testing.assert_array_equal(read(tmp_path / "Index" / f"{i}.png"), mask)


def test_cityscapes_round_trip_renames_to_train_ids(tmp_path):
    masks = index_masks(2, 19)
    names = ["aachen_000000_000019_gtFine_labelIds.png", "aachen_000001_000019_gtFine_labelIds.png"]
    for name, mask in zip(names, masks, strict=True):
        save(str(tmp_path / "gtFine" / "aachen" / name), train_ids_to_label_ids(mask))
    save(str(tmp_path / "gtFine" / "aachen" / "aachen_000000_000019_gtFine_color.png"), np.zeros((4, 4, 3), np.uint8))
    main([str(tmp_path / "gtFine"), "--format", "cityscapes", "--output-dir", str(tmp_path / "out"), "--quiet"])
    written = sorted(os.listdir(tmp_path / "out" / "aachen"))
    assert written == [n.replace("_labelIds", "_trainIds") for n in names]
    for name, mask in zip(written, masks, strict=True):
        np.testing.assert_array_equal(read(tmp_path / "out" / "aachen" / name), mask)


def test_unknown_colours_error_then_ignore(tmp_path, capsys):
    mask = index_masks(1, TABLE.num_classes)[0]
    colour = index_to_colour(mask, TABLE)
    colour[:2, :5] = (10, 20, 30)
    save(str(tmp_path / "in" / "odd.png"), colour)
    write_class_table(str(tmp_path / "class_dict.csv"), TABLE)
    args = [str(tmp_path / "in" / "odd.png"), "--format", "rgb", "--class-dict", str(tmp_path / "class_dict.csv"),
            "--output-dir", str(tmp_path / "out"), "--quiet"]
    assert run(main, args) == 2
    error = capsys.readouterr().err
    assert f"error: 1 colour not in the class table: (10, 20, 30) in 10 pixels (1 file, e.g. {tmp_path / 'in' / 'odd.png'})" in error
    assert not (tmp_path / "out" / "odd.png").exists()
    main(args + ["--unknown", "ignore", "--ignore-label", "250"])
    expected = np.where(mask == 255, 250, mask)
    expected[:2, :5] = 250
    np.testing.assert_array_equal(read(tmp_path / "out" / "odd.png"), expected)


def test_output_dir_equal_to_input_is_refused(tmp_path):
    save_palette_mask(str(tmp_path / "masks" / "a.png"), index_masks(1, 21)[0])
    before = (tmp_path / "masks" / "a.png").read_bytes()
    for inputs in ([str(tmp_path / "masks")], [str(tmp_path / "masks" / "a.png")]):
        with pytest.raises(ConfigError):
            main([*inputs, "--format", "palette", "--output-dir", str(tmp_path / "masks"), "--quiet"])
    with pytest.raises(ConfigError, match="inside it"):
        main([str(tmp_path / "masks"), "--format", "palette", "--output-dir", str(tmp_path / "masks" / "out"), "--quiet"])
    assert os.listdir(tmp_path / "masks") == ["a.png"]
    assert (tmp_path / "masks" / "a.png").read_bytes() == before


def test_missing_flags_and_inputs(tmp_path):
    with pytest.raises(ConfigError, match="--output-dir is required"):
        main([str(tmp_path), "--format", "palette"])
    with pytest.raises(ConfigError, match="needs --format"):
        main([str(tmp_path), "--output-dir", str(tmp_path / "out")])
    with pytest.raises(DataError, match="no such file or folder"):
        main([str(tmp_path / "nope"), "--format", "palette", "--output-dir", str(tmp_path / "out")])


def test_layout_mode_prepares_lists_and_reports_unmatched(tmp_path, capsys):
    root = tmp_path / "data"
    write_class_table(str(root / "class_dict.csv"), TABLE)
    masks = index_masks(2, TABLE.num_classes)
    for i, mask in enumerate(masks):
        save(str(root / "training" / "images" / f"{i}.png"), np.zeros((20, 24, 3), np.uint8))
        save(str(root / "training" / "labels" / f"{i}.png"), index_to_colour(mask, TABLE))
    save(str(root / "training" / "images" / "lonely.png"), np.zeros((20, 24, 3), np.uint8))
    main(["--layout", "auto", str(root), "--lists-dir", str(tmp_path / "dataset"), "--quiet"])
    out = capsys.readouterr().out
    assert f"--data-dir {root}" in out and "1 unmatched files" in out
    lines = (tmp_path / "dataset" / "data" / "train.txt").read_text().splitlines()
    assert lines == [f"/training/images/{i}.png /labels_index/training/{i}.png" for i in range(2)]
    for i, mask in enumerate(masks):
        np.testing.assert_array_equal(read(root / "labels_index" / "training" / f"{i}.png"), mask)


@pytest.mark.parametrize("first_row, black_index", [("background", 0), ("Void", 255)])
def test_black_row_is_a_class_unless_named_void(tmp_path, first_row, black_index):
    (tmp_path / "class_dict.csv").write_text(f"name,r,g,b\n{first_row},0,0,0\nsky,70,130,180\nroad,128,64,128\n")
    rgb = np.zeros((4, 6, 3), np.uint8)  # black everywhere but a sky row and a road column
    rgb[0] = (70, 130, 180)
    rgb[1:, 5] = (128, 64, 128)
    save(str(tmp_path / "in" / "m.png"), rgb)
    main([str(tmp_path / "in"), "--format", "rgb", "--class-dict", str(tmp_path / "class_dict.csv"),
          "--output-dir", str(tmp_path / "out"), "--quiet"])
    offset = 1 if black_index == 0 else 0  # a black class takes index 0 and moves sky and road up
    expected = np.full((4, 6), black_index, np.uint8)
    expected[0] = offset
    expected[1:, 5] = offset + 1
    np.testing.assert_array_equal(read(tmp_path / "out" / "m.png"), expected)


def _folders(tmp_path, masks, save_mask):
    for i, mask in enumerate(masks):
        save(str(tmp_path / "images" / f"{i}.jpg"), np.zeros((*mask.shape, 3), np.uint8))
        save_mask(str(tmp_path / "masks" / f"{i}.png"), mask)
    return [str(tmp_path / "images"), str(tmp_path / "masks"), "--layout", "folders", "--name", "mine",
            "--lists-dir", str(tmp_path / "dataset"), "--quiet"]


def _train_description(class_dict, tmp_path):
    from refinenet_tf.cli.train import build_parser, config_from_args

    args = build_parser().parse_args(["--class-dict", class_dict, "--snapshot-dir", str(tmp_path / "snapshots")])
    return config_from_args(args).description


def test_folders_layout_writes_a_class_dict_for_palette_masks(tmp_path, capsys):
    masks = [np.array([[0, 1, 255], [4, 1, 0]], np.uint8), np.array([[2, 2, 0], [0, 255, 1]], np.uint8)]
    main(_folders(tmp_path, masks, save_palette_mask))
    class_dict = tmp_path / "dataset" / "mine" / "class_dict.csv"
    assert f"classes: {class_dict} (5 classes)" in capsys.readouterr().out
    voc = voc_palette(5).tolist()
    assert class_dict.read_text().splitlines() == ["index,name,r,g,b"] + [
        f"{i},class_{i},{r},{g},{b}" for i, (r, g, b) in enumerate(voc)]
    table = read_class_table(str(class_dict))
    assert table.num_classes == 5 and [list(c) for c in table.colours] == voc
    for i, mask in enumerate(masks):
        np.testing.assert_array_equal(read(tmp_path / "masks_index" / f"{i}.png"), mask)
    description = _train_description(str(class_dict), tmp_path)
    assert description.num_classes == 5 and description.class_names == [f"class_{i}" for i in range(5)]


def test_folders_layout_writes_a_class_dict_for_index_masks(tmp_path):
    masks = [np.array([[0, 2, 255]], np.uint8), np.array([[1, 0, 0]], np.uint8)]
    main(_folders(tmp_path, masks, save))
    table = read_class_table(str(tmp_path / "dataset" / "mine" / "class_dict.csv"))
    assert table.names == ("class_0", "class_1", "class_2")
    assert [list(c) for c in table.colours] == voc_palette(3).tolist()
    assert not (tmp_path / "masks_index").exists()  # index masks are listed as they are


def test_folders_layout_keeps_a_given_class_dict_and_checks_the_masks_against_it(tmp_path):
    write_class_table(str(tmp_path / "class_dict.csv"), TABLE)
    args = _folders(tmp_path, [np.array([[0, 3, 255]], np.uint8)], save_palette_mask)
    main(args + ["--class-dict", str(tmp_path / "class_dict.csv")])
    assert read_class_table(str(tmp_path / "dataset" / "mine" / "class_dict.csv")) == TABLE
    save_palette_mask(str(tmp_path / "masks" / "0.png"), np.array([[0, 4, 255]], np.uint8))
    with pytest.raises(DataError, match=r"0\.png: holds class index 4 but the class table lists 4 classes"):
        main(args + ["--class-dict", str(tmp_path / "class_dict.csv"), "--output-dir", str(tmp_path / "other")])
