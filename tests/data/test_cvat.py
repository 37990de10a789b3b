"""CVAT's "Segmentation mask 1.1" export, laid out as CVAT writes it (labelmap.txt, SegmentationClass/ colour masks,
SegmentationObject/, JPEGImages/, ImageSets/Segmentation/default.txt), converted into index masks and lists."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.data.layouts import ConversionOptions, detect_layout, prepare_cvat_dataset
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.errors import DataError

QUIET = ConversionOptions(progress=None)
LABEL_MAP = """# label:color_rgb:parts:actions
background:0,0,0::
car:250,50,83::
traffic sign:42,125,209::
"""
COLOURS = np.array([(0, 0, 0), (250, 50, 83), (42, 125, 209)], np.uint8)


def _export(root, count: int = 3, stray_colour: bool = False) -> list[np.ndarray]:
    """Write an export; the index masks it encodes."""
    for folder in ("SegmentationClass", "SegmentationObject", "JPEGImages", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    (root / "labelmap.txt").write_text(LABEL_MAP, encoding="utf-8")
    rng = np.random.default_rng(2)
    indices = []
    for number in range(count):
        index = np.zeros((30, 40), np.uint8)
        index[5:15, 5:20] = 1
        index[18:28, rng.integers(20, 30):38] = 2
        colours = COLOURS[index]
        if stray_colour and number == 1:
            colours[0, 0] = (1, 2, 3)
        Image.fromarray(colours).save(root / "SegmentationClass" / f"frame_{number:06d}.png")
        Image.fromarray(index * 40).save(root / "SegmentationObject" / f"frame_{number:06d}.png")
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(
            root / "JPEGImages" / f"frame_{number:06d}.jpg", quality=95)
        indices.append(index)
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text(
        "".join(f"frame_{number:06d}\n" for number in range(count)), encoding="utf-8")
    return indices


def test_a_cvat_export_becomes_index_masks_with_its_label_map_as_the_class_table(tmp_path):
    indices = _export(tmp_path / "export")
    assert detect_layout(str(tmp_path / "export")) == "cvat"  # not VOC, though it has ImageSets/Segmentation
    prepared = prepare_cvat_dataset(str(tmp_path / "export"), None, str(tmp_path / "dataset"), options=QUIET)
    assert prepared.table.names == ("background", "car", "traffic sign")
    samples = read_list_file(prepared.data_dir, prepared.lists["default"])
    assert len(samples) == 3
    for sample, expected in zip(samples, indices, strict=True):
        with Image.open(sample.mask_path) as mask:
            np.testing.assert_array_equal(np.asarray(mask), expected)


def test_colours_missing_from_the_label_map_are_one_error_or_ignored(tmp_path):
    _export(tmp_path / "export", stray_colour=True)
    with pytest.raises(DataError, match=r"\(1, 2, 3\).*frame_000001\.png"):
        prepare_cvat_dataset(str(tmp_path / "export"), None, str(tmp_path / "dataset"), options=QUIET)
    prepared = prepare_cvat_dataset(str(tmp_path / "export"), None, str(tmp_path / "dataset"),
                                    options=ConversionOptions(unknown="ignore", progress=None))
    with Image.open(read_list_file(prepared.data_dir, prepared.lists["default"])[1].mask_path) as mask:
        assert np.asarray(mask)[0, 0] == 255


def test_a_malformed_label_map_line_is_named(tmp_path):
    _export(tmp_path / "export")
    (tmp_path / "export" / "labelmap.txt").write_text("# label:color_rgb:parts:actions\ncar:250,50::\n")
    with pytest.raises(DataError, match=r"labelmap.txt:2: expected 'name:r,g,b:parts:actions', got 'car:250,50::'"):
        prepare_cvat_dataset(str(tmp_path / "export"), None, str(tmp_path / "dataset"), options=QUIET)
