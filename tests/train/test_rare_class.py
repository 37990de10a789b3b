"""Class-balanced training on an imbalanced generated set: a rare class (under 1% of the pixels) that plain
cross-entropy never predicts is found with median-frequency weights, at equal steps. OHEM's selection of pixels is
tested in tests/train/test_losses.py (docs/TESTING.md says why it has no training run here)."""

import json
import logging
import os
import shutil

import numpy as np
import pytest

from refinenet_tf.data.images import load_mask
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.description import default_description
from refinenet_tf.evaluate.evaluator import evaluate
from refinenet_tf.train.trainer import TrainConfig, Trainer
from tests.support import rare_class_data as rare
from tests.support.trained_toy import ARCH

pytestmark = pytest.mark.slow  # two training runs of 200 steps

STEPS = 200
# the demo's recipe from random weights (refinenet_tf/demo.py), on 32x32 crops of the 64x64 scenes: a quarter of
# the work per step of whole scenes
RECIPE = dict(batch_size=8, input_size=(32, 32), learning_rate=1e-3, optimizer="adam", decoder_lr_mult=1.0,
              weight_decay=1e-5, dropout=False, train_batch_norm=True, batch_norm_decay=0.9, random_mirror=True)
LOSSES = {"cross-entropy": {}, "median-frequency": {"class_weights": "median-frequency"}}


@pytest.fixture(scope="module")
def rare_scores(module_tmp):
    """Held-out scores and snapshot folder of each loss in LOSSES, trained on the same 48 scenes."""
    root = module_tmp("rare")
    train_list = rare.write_rare_class_dataset(root / "train", count=48, seed=1)
    val_list = rare.write_rare_class_dataset(root / "val", count=40, seed=2)
    pixels = sum(np.bincount(load_mask(sample.mask_path).ravel(), minlength=256)
                 for sample in read_list_file(str(root / "train"), train_list))
    share = pixels[rare.RARE_CLASS] / pixels.sum()
    assert 0 < share < 0.01, share  # the rare class really is rare
    description = default_description(ARCH, rare.NUM_CLASSES)
    results = {}
    for name, settings in LOSSES.items():
        snapshots = str(root / name)
        config = TrainConfig(description=description, data_dir=str(root / "train"), data_list=train_list,
                             snapshot_dir=snapshots, num_steps=STEPS, save_pred_every=STEPS, save_num_images=0,
                             threads=2, log_every=STEPS, **RECIPE, **settings)
        trained = Trainer(config).run()
        samples = read_list_file(str(root / "val"), val_list)
        results[name] = (evaluate(trained.snapshot, samples, description, threads=2).plain, snapshots)
    return results


def test_class_weights_find_the_rare_class_that_cross_entropy_misses(rare_scores):
    plain, weighted = rare_scores["cross-entropy"][0], rare_scores["median-frequency"][0]
    # measured (rare-class IoU, oneDNN on / off): cross-entropy 0.00 / 0.00, median-frequency 0.25 / 0.25
    assert weighted.class_iou[rare.RARE_CLASS] > plain.class_iou[rare.RARE_CLASS] + 0.15, (weighted, plain)
    assert weighted.class_accuracy[rare.RARE_CLASS] > plain.class_accuracy[rare.RARE_CLASS] + 0.15, (weighted, plain)
    assert np.all(weighted.class_iou[1:rare.RARE_CLASS] > 0.5), weighted.class_iou  # the rest still learnt


def test_the_loss_and_the_counted_frequencies_are_recorded_beside_the_snapshots(rare_scores):
    snapshots = rare_scores["median-frequency"][1]
    with open(os.path.join(snapshots, "training.json")) as stream:
        record = json.load(stream)["loss"]
    weights = record["class_weights"]["weights"]
    assert record["loss"] == "cross-entropy" and record["class_weights"]["source"] == "median-frequency"
    assert weights["class_3"] == max(weights.values()) and weights["class_0"] == min(weights.values())
    with open(os.path.join(snapshots, "class_frequencies.json")) as stream:
        frequencies = json.load(stream)["frequencies"]
    assert sum(frequencies) == pytest.approx(1.0) and 0 < frequencies[rare.RARE_CLASS] < 0.01


def test_a_resumed_run_with_another_loss_says_what_changed_and_records_it(rare_scores, tmp_path, caplog):
    source = rare_scores["median-frequency"][1]
    root = os.path.dirname(source)
    snapshots = shutil.copytree(source, tmp_path / "snapshots")  # the module's run stays as it was
    config = TrainConfig(description=default_description(ARCH, rare.NUM_CLASSES), data_dir=os.path.join(root, "train"),
                         data_list=os.path.join(root, "train", "train.txt"), snapshot_dir=str(snapshots),
                         num_steps=STEPS + 1, save_pred_every=STEPS, save_num_images=0, threads=2, log_every=STEPS,
                         **RECIPE, loss="ohem", ohem_keep=0.1, ohem_min_kept=128)
    with caplog.at_level(logging.WARNING):
        Trainer(config).run()
    assert any(message.startswith(f"{snapshots} was trained with cross-entropy")
               and message.endswith("up to step 200; this run continues with ohem (keep 0.1, at least 128 pixels), "
                                    "no class weights") for message in caplog.messages), caplog.text
    ohem = json.load(open(snapshots / "training.json"))["loss"]
    assert (ohem["loss"], ohem["ohem_keep"], ohem["ohem_min_kept"], ohem["class_weights"]) == ("ohem", 0.1, 128, None)
