"""Binary masks: 0/255 masks with the ignore label 255 are refused before training or evaluation (they would train
on the background alone), and ``--format binary`` turns 0/255, 0/1 and 1-bit masks into 0/1 index masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.cli import convert_masks
from refinenet_tf.cli.common import run
from refinenet_tf.data.class_table import read_class_table
from refinenet_tf.data.images import check_masks_hold_classes, load_mask
from refinenet_tf.data.layouts import ConversionOptions, prepare_folder_dataset
from refinenet_tf.description import default_description
from refinenet_tf.errors import DataError
from refinenet_tf.train.trainer import TrainConfig, Trainer

SIZE = (24, 32)


def _binary_set(folder, foreground: int, count: int = 4, mode: str = "L") -> list[str]:
    """Images and masks with a foreground square stored as ``foreground`` (0 elsewhere); the mask paths."""
    rng = np.random.default_rng(foreground)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    paths = []
    for index in range(count):
        mask = np.zeros(SIZE, np.uint8)
        y, x = rng.integers(0, 12, 2)
        mask[y:y + 10, x:x + 10] = foreground
        Image.fromarray(rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)).save(folder / "images" / f"m{index}.png")
        image = Image.fromarray(mask)
        (image.convert("1") if mode == "1" else image).save(folder / "masks" / f"m{index}.png")
        paths.append(str(folder / "masks" / f"m{index}.png"))
    (folder / "train.txt").write_text("".join(f"/images/m{i}.png /masks/m{i}.png\n" for i in range(count)))
    return paths


def test_masks_of_only_0_and_the_ignore_label_are_refused_naming_the_cause_and_the_fix(tmp_path):
    masks = _binary_set(tmp_path, 255)
    with pytest.raises(DataError) as error:
        check_masks_hold_classes(masks, 255, "train.txt")
    message = str(error.value)
    assert message.startswith("train.txt: the masks hold only 0 and 255, the ignore label (4 of 4 read)")
    assert "--format binary" in message and "\n" not in message
    check_masks_hold_classes(masks, 254, "train.txt")  # 255 is then a label value, which the reader checks
    check_masks_hold_classes(masks[:0], 255, "train.txt")


def test_one_mask_with_a_class_other_than_0_is_enough(tmp_path):
    masks = _binary_set(tmp_path / "a", 255)
    other = _binary_set(tmp_path / "b", 1, count=1)
    check_masks_hold_classes(masks + other, 255, "train.txt")


def test_training_on_0_255_masks_stops_before_building_anything(tmp_path):
    _binary_set(tmp_path, 255)
    config = TrainConfig(description=default_description("lw-refinenet-mobilenetv2", 2), data_dir=str(tmp_path),
                         data_list=str(tmp_path / "train.txt"), snapshot_dir=str(tmp_path / "snapshots"),
                         batch_size=1, input_size=(16, 16), num_steps=1)
    with pytest.raises(DataError, match="the masks hold only 0 and 255"):
        Trainer(config)
    assert not (tmp_path / "snapshots").exists()


@pytest.mark.parametrize(("foreground", "mode"), [(255, "L"), (1, "L"), (1, "1")])
def test_format_binary_makes_0_1_masks_and_a_two_class_table(tmp_path, foreground, mode):
    masks = _binary_set(tmp_path / "data", foreground, mode=mode)
    prepared = prepare_folder_dataset(str(tmp_path / "data" / "images"), str(tmp_path / "data" / "masks"), "b",
                                      str(tmp_path / "lists"), mask_format="binary",
                                      options=ConversionOptions(progress=None))
    assert read_class_table(prepared.class_dict).names == ("background", "foreground")
    for source in masks:
        converted = load_mask(source.replace("masks", "masks_index"))
        with Image.open(source) as original:
            np.testing.assert_array_equal(converted, (np.asarray(original) != 0).astype(np.uint8))


def test_the_command_converts_binary_masks(tmp_path):
    masks = _binary_set(tmp_path, 255)
    assert run(convert_masks.main, [str(tmp_path / "masks"), "--format", "binary", "--output-dir",
                                    str(tmp_path / "out"), "--quiet"]) == 0
    converted = load_mask(str(tmp_path / "out" / "m0.png"))
    assert set(np.unique(converted)) == {0, 1} and np.sum(converted) == np.sum(load_mask(masks[0]) == 255)
