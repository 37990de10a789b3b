"""The training loop end to end on a generated data set: the loss falls, snapshots and summaries are written, and
the model segments its training set. It reads the session's shared toy run (``tests/support/trained_toy.py``).

Stopping and resuming is tested in ``tests/reliability/test_kill_resume.py`` (in process with Ctrl-C's signal, and
train.py killed as a process); a diverging loss in ``tests/reliability/test_bad_inputs.py``."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from refinenet_tf import checkpoints
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.description import load_description
from refinenet_tf.evaluate.metrics import ConfusionMatrix
from refinenet_tf.models.model import build_model
from tests.support.trained_toy import SNAPSHOT_EVERY, STEPS

pytestmark = pytest.mark.slow  # reads a training run

v1 = tf.compat.v1


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


def test_training_lowers_the_loss_and_segments_the_training_set(toy_training):
    # From random weights Adam (one rate for all layers) with batch norm trained is the steady choice;
    # momentum SGD with DeepLab's 10x decoder rate suits fine-tuning pretrained weights.
    result, snapshots = toy_training.result, toy_training.snapshots
    assert result.step == STEPS and not result.stopped and len(toy_training.losses) == STEPS
    assert result.snapshot == os.path.join(snapshots, f"model.ckpt-{STEPS}")
    assert os.path.isfile(os.path.join(snapshots, f"model.ckpt-{SNAPSHOT_EVERY}.index"))
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(snapshots))
    first, last = np.mean(toy_training.losses[:5]), np.mean(toy_training.losses[-10:])
    assert last < 0.75 * first, (first, last)
    # a constant "background" answer scores about 0.25 here
    mean_iou = _train_set_mean_iou(result.snapshot, toy_training.data_dir, toy_training.list_path)
    assert mean_iou > 0.7, mean_iou
