"""Data set layouts -> converted masks, list files and class tables."""

import os

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.data.class_table import ClassTable, read_class_table, voc_table, write_class_table
from refinenet_tf.data.layouts import (
    ConversionOptions,
    detect_layout,
    pair_by_stem,
    prepare_cityscapes_dataset,
    prepare_class_dict_dataset,
    prepare_dataset,
    prepare_folder_dataset,
    prepare_voc_dataset,
)
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.data.masks import index_to_colour, save_palette_mask, train_ids_to_label_ids
from refinenet_tf.errors import ConfigError, DataError
from refinenet_tf.palette import voc_palette

TABLE = ClassTable(("sky", "road", "car"), ((70, 130, 180), (128, 64, 128), (0, 0, 142)))
QUIET = ConversionOptions(progress=None)


def index_mask(seed, num_classes, shape=(12, 16)):
    rng = np.random.default_rng(seed)
    index = rng.integers(0, num_classes, shape).astype(np.uint8)
    index[0, :3] = 255
    return index


def save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def image(seed):
    return np.random.default_rng(seed).integers(0, 256, (12, 16, 3))


def listed(prepared, split):
    """(image, mask array) per line of a written list, read back with the project's list reader."""
    samples = read_list_file(prepared.data_dir, prepared.lists[split], require_masks=False)
    return [(s.image_path, None if s.mask_path is None else np.asarray(Image.open(s.mask_path))) for s in samples]


def make_class_dict_root(root):
    write_class_table(str(root / "class_dict.csv"), TABLE)
    expected = {}
    for i, stem in enumerate(["b", "a", "c_only_image"]):
        save(str(root / "training" / "images" / f"{stem}.jpg"), image(i))
    for i, (stem, file_name) in enumerate([("a", "a.png"), ("b", "b_L.png"), ("z", "z_only_mask.png")]):
        expected[stem] = index_mask(i, 3)
        save(str(root / "training" / "labels" / file_name), index_to_colour(expected[stem], TABLE))
    save(str(root / "validation" / "images" / "v.png"), image(7))
    expected["v"] = index_mask(7, 3)
    save(str(root / "validation" / "labels" / "v.png"), index_to_colour(expected["v"], TABLE))
    save(str(root / "testing" / "images" / "t.png"), image(8))
    return expected


def tree_bytes(folder):
    return {os.path.join(d, f): open(os.path.join(d, f), "rb").read() for d, _, fs in os.walk(folder) for f in fs}


def test_class_dict_layout(tmp_path):
    root = tmp_path / "CamVid"
    expected = make_class_dict_root(root)
    inputs = tree_bytes(root)
    assert detect_layout(str(root)) == "class-dict"
    prepared = prepare_class_dict_dataset(str(root), lists_dir=str(tmp_path / "dataset"), options=QUIET)
    assert prepared.name == "CamVid" and prepared.data_dir == str(root)
    assert prepared.counts == {"train": 2, "val": 1, "test": 1}
    assert prepared.unmatched == sorted([str(root / "training" / "images" / "c_only_image.jpg"),
                                         str(root / "training" / "labels" / "z_only_mask.png")])
    train = listed(prepared, "train")
    assert [os.path.basename(path) for path, _ in train] == ["a.jpg", "b.jpg"]
    for (_, mask), stem in zip(train, ["a", "b"], strict=True):
        np.testing.assert_array_equal(mask, expected[stem])
    np.testing.assert_array_equal(listed(prepared, "val")[0][1], expected["v"])
    assert listed(prepared, "test") == [(str(root / "testing" / "images" / "t.png"), None)]
    assert open(prepared.lists["train"]).readline() == "/training/images/a.jpg /labels_index/training/a.png\n"
    assert read_class_table(prepared.class_dict) == TABLE
    assert prepared.class_dict == str(tmp_path / "dataset" / "CamVid" / "class_dict.csv")
    assert {p: b for p, b in tree_bytes(root).items() if p in inputs} == inputs


def test_output_inside_the_labels_folder_is_refused(tmp_path):
    make_class_dict_root(tmp_path)
    with pytest.raises(ConfigError, match="must not be the input folder"):
        prepare_class_dict_dataset(str(tmp_path), output_dir=str(tmp_path / "training" / "labels"),
                                   lists_dir=str(tmp_path / "dataset"), options=QUIET)


def make_voc(root, aug=False):
    voc = root / "VOCdevkit" / "VOC2012"
    expected = {}
    for i, image_id in enumerate(["2007_000032", "2007_000033", "2007_000042", "2008_000001"]):
        save(str(voc / "JPEGImages" / f"{image_id}.jpg"), image(i))
        expected[image_id] = index_mask(i, 21)
        if image_id != "2008_000001":
            save_palette_mask(str(voc / "SegmentationClass" / f"{image_id}.png"), expected[image_id])
        if aug:
            save(str(voc / "SegmentationClassAug" / f"{image_id}.png"), expected[image_id])
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000032\n2008_000001\n")
    (sets / "val.txt").write_text("2007_000033\n")
    return voc, expected


def test_voc_palette_masks_are_converted(tmp_path):
    voc, expected = make_voc(tmp_path)
    assert detect_layout(str(tmp_path)) == "voc"
    prepared = prepare_voc_dataset(str(tmp_path), lists_dir=str(tmp_path / "dataset"), options=QUIET)
    assert prepared.data_dir == str(voc)
    assert prepared.counts == {"train": 1, "val": 1}
    assert prepared.unmatched == [str(voc / "SegmentationClass" / "2008_000001.png")]
    assert open(prepared.lists["val"]).read() == "/JPEGImages/2007_000033.jpg /SegmentationClassIndex/2007_000033.png\n"
    np.testing.assert_array_equal(listed(prepared, "train")[0][1], expected["2007_000032"])
    assert read_class_table(prepared.class_dict) == voc_table()


def test_voc_aug_masks_are_listed_as_they_are_with_train_aug(tmp_path):
    voc, expected = make_voc(tmp_path, aug=True)
    prepared = prepare_voc_dataset(str(voc), lists_dir=str(tmp_path / "dataset"), options=QUIET)
    assert not (voc / "SegmentationClassAugIndex").exists()
    assert prepared.counts == {"train": 2, "val": 1, "train_aug": 3}
    lines = open(prepared.lists["train_aug"]).read().splitlines()
    assert lines[0] == "/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png"
    assert "2007_000033" not in " ".join(lines)


def test_cityscapes_layout(tmp_path):
    expected = {}
    for split, city, frame in [("train", "aachen", "000000_000019"), ("train", "bonn", "000001_000019"),
                               ("val", "lindau", "000000_000019"), ("test", "berlin", "000000_000019")]:
        prefix = f"{city}_{frame}"
        save(str(tmp_path / "leftImg8bit" / split / city / f"{prefix}_leftImg8bit.png"), image(len(expected)))
        expected[prefix] = index_mask(len(expected), 19)
        save(str(tmp_path / "gtFine" / split / city / f"{prefix}_gtFine_labelIds.png"),
             train_ids_to_label_ids(expected[prefix]))
    save(str(tmp_path / "gtFine" / "val" / "lindau" / "lindau_000009_000019_gtFine_labelIds.png"), np.zeros((12, 16)))
    assert detect_layout(str(tmp_path)) == "cityscapes"
    prepared = prepare_cityscapes_dataset(str(tmp_path), lists_dir=str(tmp_path / "lists"), options=QUIET)
    assert prepared.counts == {"train": 2, "val": 1, "test": 1}
    assert prepared.unmatched == [str(tmp_path / "gtFine" / "val" / "lindau" / "lindau_000009_000019_gtFine_labelIds.png")]
    first_image, first_mask = listed(prepared, "train")[0]
    assert first_image.endswith("aachen_000000_000019_leftImg8bit.png")
    np.testing.assert_array_equal(first_mask, expected["aachen_000000_000019"])
    assert os.path.isfile(tmp_path / "gtFine_trainIds" / "val" / "lindau" / "lindau_000000_000019_gtFine_trainIds.png")
    assert read_class_table(prepared.class_dict).num_classes == 19


def test_folders_index_masks_with_a_val_split(tmp_path):
    for i in range(10):
        save(str(tmp_path / "data" / "images" / f"{i:02d}.jpg"), image(i))
        save(str(tmp_path / "data" / "masks" / f"{i:02d}.png"), index_mask(i, 4))
    assert detect_layout(str(tmp_path / "data")) == "folders"
    prepared = prepare_folder_dataset(str(tmp_path / "data" / "images"), str(tmp_path / "data" / "masks"), "mine",
                                      lists_dir=str(tmp_path / "dataset"), val_fraction=0.3, seed=3, options=QUIET)
    assert prepared.counts == {"train": 7, "val": 3}
    table = read_class_table(prepared.class_dict)
    assert table.names == ("class_0", "class_1", "class_2", "class_3")
    assert [list(c) for c in table.colours] == voc_palette(4).tolist()
    train, val = listed(prepared, "train"), listed(prepared, "val")
    assert {os.path.basename(p) for p, _ in train} | {os.path.basename(p) for p, _ in val} == {f"{i:02d}.jpg" for i in range(10)}
    assert all(m.ndim == 2 for _, m in train + val)
    again = prepare_folder_dataset(str(tmp_path / "data" / "images"), str(tmp_path / "data" / "masks"), "again",
                                   lists_dir=str(tmp_path / "dataset"), val_fraction=0.3, seed=3, options=QUIET)
    assert open(again.lists["val"]).read() == open(prepared.lists["val"]).read()


def test_folders_with_colour_masks_through_prepare_dataset(tmp_path):
    write_class_table(str(tmp_path / "class_dict.csv"), TABLE)
    save(str(tmp_path / "images" / "x.png"), image(0))
    save(str(tmp_path / "labels" / "x_mask.png"), index_to_colour(index_mask(0, 3), TABLE))
    prepared = prepare_dataset(str(tmp_path), lists_dir=str(tmp_path / "dataset"), options=QUIET)
    np.testing.assert_array_equal(listed(prepared, "train")[0][1], index_mask(0, 3))
    assert os.path.isfile(tmp_path / "labels_index" / "x.png")


def save_with_palette(path, index, palette):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    picture = Image.fromarray(np.asarray(index, np.uint8), mode="L").convert("P")
    picture.putpalette(np.asarray(palette, np.uint8).ravel().tolist())
    picture.save(path)


def test_folders_palette_masks_get_their_palette_colours(tmp_path, caplog):
    palette = np.zeros((256, 3), np.uint8)  # unused entries black, as many editors leave them
    palette[[0, 1, 2, 5]] = [(10, 10, 10), (200, 0, 0), (0, 200, 0), (200, 0, 0)]  # 5 repeats 1's colour
    masks = [np.array([[0, 1], [255, 1]]), np.array([[2, 5], [0, 0]])]
    for i, mask in enumerate(masks):
        save(str(tmp_path / "images" / f"{i}.png"), image(i)[:2, :2])
        save_with_palette(str(tmp_path / "masks" / f"{i}.png"), mask, palette)
    prepared = prepare_folder_dataset(str(tmp_path / "images"), str(tmp_path / "masks"), "pal",
                                      lists_dir=str(tmp_path / "dataset"), options=QUIET)
    table = read_class_table(prepared.class_dict)
    assert table.names == tuple(f"class_{i}" for i in range(6))
    # 0..2 keep the palette's colours and so does 3 (absent; black); 4 (absent, black again) and
    # 5 (present, 1's colour again) get the first VOC colours not yet used
    voc = [tuple(c) for c in voc_palette(256).tolist()]
    assert table.colours[:3] == ((10, 10, 10), (200, 0, 0), (0, 200, 0))
    assert table.colours[3] == (0, 0, 0)
    assert table.colours[4:] == (voc[1], voc[2])
    assert "the palette gives class 5 the colour (200, 0, 0) of class 1" in caplog.text
    np.testing.assert_array_equal(listed(prepared, "train")[0][1], [[0, 1], [255, 1]])


def test_folders_masks_checked_against_a_given_table(tmp_path):
    save(str(tmp_path / "images" / "a.png"), image(0))
    save(str(tmp_path / "masks" / "a.png"), index_mask(0, 3))
    save(str(tmp_path / "images" / "b.png"), image(1))
    save(str(tmp_path / "masks" / "b.png"), np.full((12, 16), 3))
    with pytest.raises(DataError, match=r"b\.png: holds class index 3 but the class table lists 3 classes "
                                        r"\(sky, road, car\)"):
        prepare_folder_dataset(str(tmp_path / "images"), str(tmp_path / "masks"), "x", table=TABLE,
                               lists_dir=str(tmp_path / "dataset"), options=QUIET)
    with pytest.raises(DataError, match=r"a\.png: holds class index 255, above the ignore label 250"):
        prepare_folder_dataset(str(tmp_path / "images"), str(tmp_path / "masks"), "x",
                               lists_dir=str(tmp_path / "dataset"), options=ConversionOptions(250, progress=None))
    assert not os.path.exists(tmp_path / "dataset")


def test_folders_refuse_masks_of_another_format_and_only_ignored_pixels(tmp_path):
    save(str(tmp_path / "images" / "a.png"), image(0))
    save_palette_mask(str(tmp_path / "masks" / "a.png"), index_mask(0, 3))
    with pytest.raises(DataError, match=r"a\.png: a P image, not an index mask \(8-bit grey\); palette masks need "
                                        "format palette"):
        prepare_folder_dataset(str(tmp_path / "images"), str(tmp_path / "masks"), "x", mask_format="index",
                               lists_dir=str(tmp_path / "dataset"), options=QUIET)
    save(str(tmp_path / "masks" / "a.png"), np.full((12, 16), 255))
    with pytest.raises(DataError, match=r"masks: the masks hold only ignored pixels \(values \[255\]\)"):
        prepare_folder_dataset(str(tmp_path / "images"), str(tmp_path / "masks"), "x",
                               lists_dir=str(tmp_path / "dataset"), options=QUIET)


def test_pairing_reports_duplicates_and_leftovers():
    pairing = pair_by_stem(["i/a.jpg", "i/b.jpg"], ["m/a.png", "m/c.png"])
    assert pairing.pairs == [("i/a.jpg", "m/a.png")]
    assert pairing.unmatched == ["i/b.jpg", "m/c.png"]
    with pytest.raises(DataError, match="two image files share the stem 'a'"):
        pair_by_stem(["i/a.jpg", "i/a.png"], [])


def test_unknown_layout_says_what_was_expected(tmp_path):
    with pytest.raises(DataError, match="not a known data set layout; expected class_dict.csv"):
        detect_layout(str(tmp_path))
