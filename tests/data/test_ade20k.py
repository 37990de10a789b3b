"""ADE20K's scene-parsing release (ADEChallengeData2016): "other" (0) becomes the ignore label and classes 1..150
become 0..149, with the release's class names."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.data.layouts import ConversionOptions, detect_layout, prepare_ade20k_dataset
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.errors import DataError

QUIET = ConversionOptions(progress=None)


def _release(root, values=(0, 1, 13, 150)) -> dict[str, np.ndarray]:
    """Two images per split, each annotation holding ``values`` in bands; the annotations by file stem."""
    annotations = {}
    for folder, prefix in (("training", "ADE_train"), ("validation", "ADE_val")):
        (root / "images" / folder).mkdir(parents=True)
        (root / "annotations" / folder).mkdir(parents=True)
        for number in (1, 2):
            stem = f"{prefix}_{number:08d}"
            annotation = np.repeat(np.array(values, np.uint8), 6)[:, None].repeat(10, axis=1)
            Image.fromarray(annotation).save(root / "annotations" / folder / f"{stem}.png")
            Image.new("RGB", annotation.shape[::-1], (50, 60, 70)).save(root / "images" / folder / f"{stem}.jpg")
            annotations[stem] = annotation
    return annotations


def test_ade20k_other_becomes_ignore_and_classes_shift_down_by_one(tmp_path):
    annotations = _release(tmp_path / "ADEChallengeData2016")
    root = str(tmp_path / "ADEChallengeData2016")
    assert detect_layout(root) == "ade20k"
    prepared = prepare_ade20k_dataset(root, "ade20k", str(tmp_path / "dataset"), options=QUIET)
    assert prepared.table.num_classes == 150
    assert prepared.table.names[0] == "wall" and prepared.table.names[12] == "person"
    assert prepared.table.names[149] == "flag"
    assert set(prepared.lists) == {"train", "val"}
    for split in ("train", "val"):
        for sample in read_list_file(prepared.data_dir, prepared.lists[split]):
            with Image.open(sample.mask_path) as mask:
                converted = np.asarray(mask)
            original = annotations[sample.mask_path.rsplit("/", 1)[1][:-4]]
            expected = np.where(original == 0, 255, original.astype(int) - 1)
            np.testing.assert_array_equal(converted, expected)


def test_a_value_above_150_is_not_ade20k(tmp_path):
    _release(tmp_path / "ade", values=(0, 151))
    with pytest.raises(DataError, match="holds the value 151, above ADE20K's 150 classes"):
        prepare_ade20k_dataset(str(tmp_path / "ade"), "ade20k", str(tmp_path / "dataset"), options=QUIET)
