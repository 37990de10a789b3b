"""The training loop end to end on a generated data set: learning, snapshots, stop and resume."""

import os
import signal

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from refinenet_tf import checkpoints
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.description import default_description, load_description
from refinenet_tf.errors import TrainingError
from refinenet_tf.evaluate.metrics import ConfusionMatrix
from refinenet_tf.models.model import build_model
from refinenet_tf.train.trainer import TrainConfig, Trainer
from tests.support.toy_data import NUM_CLASSES, write_dataset

pytestmark = pytest.mark.slow  # training runs

v1 = tf.compat.v1
ARCH = "lw-refinenet-mobilenetv2"


def _config(root, list_path, **changes) -> TrainConfig:
    settings = dict(description=default_description(ARCH, NUM_CLASSES), data_dir=str(root), data_list=list_path,
                    snapshot_dir=str(root / "snapshots"), input_size=(64, 64), weight_decay=1e-5,
                    save_num_images=1, log_every=5)
    settings.update(changes)
    return TrainConfig(**settings)


def _train_set_mean_iou(snapshot: str, data_dir: str, list_path: str) -> float:
    description = load_description(snapshot)
    confusion = ConfusionMatrix(description.num_classes)
    with tf.Graph().as_default():
        images = v1.placeholder(tf.uint8, [1, None, None, 3])
        logits = build_model(description.preprocessing.apply(images), description).logits
        predictions = tf.argmax(tf.image.resize(logits, tf.shape(images)[1:3]), axis=-1)
        with v1.Session() as session:
            checkpoints.restore(session, snapshot, v1.global_variables())
            for sample in read_list_file(data_dir, list_path):
                image = np.asarray(Image.open(sample.image_path))[None]
                confusion.update(np.asarray(Image.open(sample.mask_path)), session.run(predictions, {images: image})[0])
    return confusion.mean_iou()


def test_training_lowers_the_loss_and_segments_the_training_set(tmp_path):
    list_path = write_dataset(tmp_path, count=24)
    losses = []
    # From random weights Adam (one rate for all layers) with batch norm trained is the steady choice;
    # momentum SGD with DeepLab's 10x decoder rate suits fine-tuning pretrained weights.
    result = Trainer(_config(tmp_path, list_path, batch_size=4, learning_rate=1e-3, num_steps=80,
                             optimizer="adam", decoder_lr_mult=1.0, train_batch_norm=True, batch_norm_decay=0.9,
                             save_pred_every=40,
                             random_mirror=True)).run(lambda step, loss: losses.append(loss))
    assert result.step == 80 and not result.stopped
    assert result.snapshot == str(tmp_path / "snapshots" / "model.ckpt-80")
    assert os.path.isfile(str(tmp_path / "snapshots" / "model.ckpt-40.index"))
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "snapshots"))
    first, last = np.mean(losses[:5]), np.mean(losses[-10:])
    assert last < 0.75 * first, (first, last)
    # a constant "background" answer scores about 0.25 here
    mean_iou = _train_set_mean_iou(result.snapshot, str(tmp_path), list_path)
    assert mean_iou > 0.7, mean_iou  # measured 0.86 with this seed


def test_a_stopped_run_resumes_to_the_same_weights_as_an_uninterrupted_one(tmp_path):
    list_path = write_dataset(tmp_path, count=1)
    settings = dict(batch_size=1, learning_rate=3e-3, num_steps=4, save_pred_every=100, dropout=False)
    whole = Trainer(_config(tmp_path, list_path, snapshot_dir=str(tmp_path / "whole"), **settings)).run()

    def interrupt_at_step_2(step, loss):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would: save a snapshot and stop

    stopped_config = _config(tmp_path, list_path, snapshot_dir=str(tmp_path / "stopped"), **settings)
    stopped = Trainer(stopped_config).run(interrupt_at_step_2)
    assert stopped.stopped and stopped.step == 2
    assert stopped.snapshot == str(tmp_path / "stopped" / "model.ckpt-2")
    resumed = Trainer(stopped_config).run()
    assert resumed.step == 4 and not resumed.stopped
    expected = tf.train.load_checkpoint(whole.snapshot)
    actual = tf.train.load_checkpoint(resumed.snapshot)
    names = expected.get_variable_to_shape_map()
    assert names == actual.get_variable_to_shape_map()
    assert any(name.endswith("/Momentum") for name in names) and "global_step" in names
    for name in names:
        np.testing.assert_allclose(actual.get_tensor(name), expected.get_tensor(name), rtol=1e-5, atol=1e-7,
                                   err_msg=name)
    assert actual.get_tensor("global_step") == 4


def test_a_diverging_loss_stops_with_the_step_and_keeps_the_last_good_snapshot(tmp_path):
    list_path = write_dataset(tmp_path, count=2)
    config = _config(tmp_path, list_path, batch_size=2, learning_rate=1e6, num_steps=20, save_pred_every=1,
                     decoder_lr_mult=1e3)
    with pytest.raises(TrainingError, match=r"the loss became (nan|inf) at step (\d+); stopped without saving, the "
                                            r"last good snapshot is .*model\.ckpt-(\d+)") as error:
        Trainer(config).run()
    failed_step = int(str(error.value).split(" at step ")[1].split(";")[0])
    latest = checkpoints.latest_snapshot(config.snapshot_dir)
    assert latest.endswith(f"model.ckpt-{failed_step - 1}")
    reader = tf.train.load_checkpoint(latest)
    assert all(np.all(np.isfinite(reader.get_tensor(name))) for name in reader.get_variable_to_shape_map())
