"""Issue 26's "done when" for binary data: blob scenes stored as 0/255 masks, converted with
``convert_masks.py --format binary``, become the same training data as the scenes stored 0/1 and train a two-class
model to a clear foreground IoU, while training on the raw 0/255 masks with the ignore label 255 is refused."""

from __future__ import annotations

import numpy as np
import pytest

from refinenet_tf.api import RefineNet
from refinenet_tf.cli import convert_masks
from refinenet_tf.cli.common import run
from refinenet_tf.data.images import load_image, load_mask
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.errors import DataError
from refinenet_tf.evaluate.evaluator import evaluate
from refinenet_tf.predict.predictor import description_for_checkpoint
from tests.support.binary_data import train_binary_model, write_binary_dataset

STEPS = 80  # about 20 s of training on two cores
# Measured (80 steps, 16 training and 8 held-out 48x48 scenes, foreground about 11% of the pixels): foreground IoU
# 0.8163 from the 0/1 masks and 0.8163 from the converted 0/255 masks (training seed 0); 0.7965 and 0.7965 with
# seed 1. Converted, the 0/255 masks are the 0/1 masks byte for byte (asserted below), so the trainer sees the same
# pixels and labels in both sets and one training stands for both.
MIN_IOU = 0.6


@pytest.mark.slow
def test_0_255_masks_converted_to_binary_train_as_well_as_0_1_masks(tmp_path):
    one = write_binary_dataset(str(tmp_path / "one"), 1)
    raw = write_binary_dataset(str(tmp_path / "raw"), 255)
    val = write_binary_dataset(str(tmp_path / "val"), 1, count=8, seed=1, list_name="val.txt")
    with pytest.raises(DataError, match=r"the masks hold only 0 and 255, the ignore label .* --format binary"):
        train_binary_model(str(tmp_path / "raw"), raw, str(tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()

    assert run(convert_masks.main, [str(tmp_path / "raw" / "labels"), "--format", "binary", "--output-dir",
                                    str(tmp_path / "raw" / "labels01"), "--quiet"]) == 0
    converted = tmp_path / "raw" / "converted.txt"
    converted.write_text((tmp_path / "raw" / "train.txt").read_text().replace("/labels/", "/labels01/"))
    pairs = zip(read_list_file(str(tmp_path / "one"), one), read_list_file(str(tmp_path / "raw"), str(converted)),
                strict=True)
    for zero_one, from_255 in pairs:
        np.testing.assert_array_equal(load_mask(from_255.mask_path), load_mask(zero_one.mask_path))
        np.testing.assert_array_equal(load_image(from_255.image_path), load_image(zero_one.image_path))

    samples = read_list_file(str(tmp_path / "val"), val)
    chance = float(np.mean([np.mean(load_mask(sample.mask_path) == 1) for sample in samples]))
    snapshots = train_binary_model(str(tmp_path / "raw"), str(converted), str(tmp_path / "model_raw"), steps=STEPS)
    iou = float(evaluate(snapshots, samples, description_for_checkpoint(snapshots), threads=2).plain.class_iou[1])
    assert iou > max(MIN_IOU, 4 * chance), (iou, chance)

    with RefineNet(model=snapshots, threads=2) as model:
        results = model.eval(val, threshold=0.5)
    assert results["metadata"]["threshold"] == 0.5
    assert results["classes"][1]["iou"] == pytest.approx(iou, abs=0.005)  # T = 0.5 is the argmax
