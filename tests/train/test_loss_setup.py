"""The loss of a run: chosen from its settings, printed, recorded in training.json, and checked when resuming."""

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from refinenet_tf.description import default_description
from refinenet_tf.errors import ConfigError, DataError
from refinenet_tf.train.loss_setup import choose_loss
from refinenet_tf.train.losses import PixelLoss
from refinenet_tf.train.trainer import TrainConfig
from tests.support.toy_data import write_dataset

ARCH = "lw-refinenet-mobilenetv2"


def _config(tmp_path, **changes):
    settings = dict(description=default_description(ARCH, 3), data_dir=str(tmp_path), data_list=str(tmp_path / "x"),
                    snapshot_dir=str(tmp_path / "snapshots"), on_bad_sample="fail", batch_size=4,
                    input_size=(64, 64), loss="cross-entropy", class_weights=None, ohem_keep=0.25, ohem_min_kept=0,
                    focal_gamma=2.0)
    settings.update(changes)
    return SimpleNamespace(**settings)


def _record(tmp_path) -> dict:
    return json.loads((tmp_path / "snapshots" / "training.json").read_text())


def test_the_loss_and_counted_weights_are_printed_and_recorded_beside_the_snapshots(tmp_path, caplog):
    list_path = write_dataset(tmp_path, count=4)
    caplog.set_level(logging.INFO)
    loss = choose_loss(_config(tmp_path, data_list=list_path, loss="ohem", class_weights="inverse-frequency"))
    pixels = np.array(json.loads((tmp_path / "snapshots" / "class_frequencies.json").read_text())["pixels"])
    assert loss.settings == PixelLoss("ohem", loss.settings.class_weights, ohem_keep=0.25, ohem_min_kept=0)
    np.testing.assert_allclose(loss.settings.class_weights, pixels.sum() / (3 * pixels))
    lines = [record.getMessage() for record in caplog.records]
    assert "loss: ohem (keep 0.25, at least 0 pixels), class weights inverse-frequency" in lines
    assert lines[-4].split() == ["class", "pixels", "frequency", "weight"]
    assert lines[-1].split()[:2] == ["class_2", str(pixels[2])]
    loss.save(str(tmp_path / "snapshots"))
    assert _record(tmp_path) == {"loss": {
        "loss": "ohem", "ohem_keep": 0.25, "ohem_min_kept": 0,
        "class_weights": {"source": "inverse-frequency",
                          "weights": dict(zip(["class_0", "class_1", "class_2"], loss.settings.class_weights, strict=True))}}}


def test_resuming_with_other_loss_settings_warns_in_one_line_and_the_record_keeps_other_entries(tmp_path, caplog):
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    (snapshots / "training.json").write_text(json.dumps({"validation": {"every": 100}}))
    first = choose_loss(_config(tmp_path, loss="focal"))
    first.save(str(snapshots))
    assert _record(tmp_path) == {"validation": {"every": 100},
                                 "loss": {"loss": "focal", "focal_gamma": 2.0, "class_weights": None}}
    caplog.set_level(logging.WARNING)
    choose_loss(_config(tmp_path, loss="focal", ohem_keep=0.5), resume_from=str(snapshots / "model.ckpt-300"))
    assert not caplog.records  # the OHEM fraction does not matter to the focal loss
    weights = tmp_path / "weights.csv"
    weights.write_text("class_0,1\nclass_1,2\nclass_2,3\n")
    choose_loss(_config(tmp_path, class_weights=str(weights)), resume_from=str(snapshots / "model.ckpt-300"))
    [warning] = [record.getMessage() for record in caplog.records]
    assert warning == (f"{snapshots} was trained with focal (gamma 2.0), no class weights up to step 300; this run "
                       f"continues with cross-entropy, class weights {weights}")


def test_ohem_that_would_keep_every_pixel_of_a_batch_says_so(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    choose_loss(_config(tmp_path, loss="ohem", ohem_min_kept=1024))  # 4 x 16 x 16 logit pixels
    assert caplog.records[0].getMessage().startswith("OHEM keeps every pixel: it keeps at least 1024 but a batch has "
                                                     "1024 (batch 4, logits 16x16 at stride 4)")
    caplog.clear()
    choose_loss(_config(tmp_path, loss="ohem", ohem_min_kept=1023))
    assert not caplog.records


def test_a_weights_file_that_does_not_name_the_models_classes_stops_the_trainer(tmp_path):
    weights = tmp_path / "weights.json"
    weights.write_text('{"background": 1, "class_1": 2, "class_2": 3}')
    with pytest.raises(DataError, match=f"^{weights}: 'background' is not a class of the model"):
        choose_loss(_config(tmp_path, class_weights=str(weights)))


def test_train_config_checks_the_loss_fields():
    description = default_description(ARCH, 3)
    assert TrainConfig(description=description, class_weights="none").class_weights is None
    with pytest.raises(ConfigError, match="^ohem_keep is the fraction"):
        TrainConfig(description=description, loss="ohem", ohem_keep=2.0)
    with pytest.raises(ConfigError, match="^focal_gamma must be"):
        TrainConfig(description=description, focal_gamma=-1.0)
    with pytest.raises(ConfigError, match="^class_weights is none, inverse-frequency"):
        TrainConfig(description=description, class_weights="missing.csv")
