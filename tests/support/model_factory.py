"""Tiny Light-Weight RefineNet (MobileNet-v2) checkpoints written by the tests themselves."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from refinenet_tf.architectures import is_classifier_variable
from refinenet_tf.description import default_description
from refinenet_tf.models.model import build_model

ARCH = "lw-refinenet-mobilenetv2"
NUM_CLASSES = 3
CONSTANT_LOGITS = (0.1, 0.7, -0.2)
CLASS_NAMES = ["background", "disc", "box"]


def write_checkpoints(root: str, seed: int = 0) -> tuple[str, str]:
    """Write two checkpoint directories under ``root`` from one graph; returns (random, constant).

    ``random``: randomly initialised weights (a model that depends on the image).
    ``constant``: every weight zero except the classifier bias ``CONSTANT_LOGITS``, so the logits are
    the same at every pixel whatever the input: a model invariant to scale and mirroring.
    Each directory holds ``model.ckpt-1`` and ``model.json``.
    """
    description = default_description(ARCH, NUM_CLASSES, class_names=CLASS_NAMES)
    directories = (os.path.join(root, "random"), os.path.join(root, "constant"))
    for directory in directories:
        os.makedirs(directory, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        build_model(tf.compat.v1.placeholder(tf.float32, [1, None, None, 3]), description)
        variables = tf.compat.v1.global_variables()
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, os.path.join(directories[0], "model.ckpt"), global_step=1)
            feed = {}
            for variable in variables:
                value = np.zeros(variable.shape.as_list(), np.float32)
                if is_classifier_variable(variable.op.name) and variable.shape.rank == 1:
                    value[:] = CONSTANT_LOGITS
                feed[variable.initializer.inputs[1]] = value
            session.run([variable.initializer for variable in variables], feed_dict=feed)
            saver.save(session, os.path.join(directories[1], "model.ckpt"), global_step=1)
    for directory in directories:
        description.save(directory)
    return directories


def write_dataset(root: str, count: int = 3, size: tuple[int, int] = (37, 45), seed: int = 0) -> str:
    """Random RGB images and index masks (classes 0..2, a top band of ignore label 255); returns the list path.

    Files: ``root/img/im<i>.png``, ``root/gt/im<i>.png``, list ``root/val.txt`` in DeepLab's form.
    """
    from PIL import Image

    random = np.random.RandomState(seed)
    lines = []
    for folder in ("img", "gt"):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    for index in range(count):
        image = random.randint(0, 256, (*size, 3)).astype(np.uint8)
        mask = random.randint(0, NUM_CLASSES, size).astype(np.uint8)
        mask[:3] = 255
        Image.fromarray(image).save(os.path.join(root, "img", f"im{index}.png"))
        Image.fromarray(mask, mode="L").save(os.path.join(root, "gt", f"im{index}.png"))
        lines.append(f"/img/im{index}.png /gt/im{index}.png")
    list_path = os.path.join(root, "val.txt")
    with open(list_path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return list_path
