"""Helpers shared by the weight-import tests: model variable shapes and running a converted checkpoint."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.description import ModelDescription, load_description
from refinenet_tf.models.registry import build_model, default_description

v1 = tf.compat.v1
REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "reference")


def variable_shapes(description: ModelDescription) -> dict[str, tuple[int, ...]]:
    """Our variable names and shapes for a description (graph built, nothing run)."""
    with tf.Graph().as_default():
        build_model(v1.placeholder(tf.float32, [None, None, None, 3]), description)
        return {v.name.split(":")[0]: tuple(v.shape.as_list()) for v in v1.global_variables()}


def arch_variable_shapes(arch: str, num_classes: int = 21) -> dict[str, tuple[int, ...]]:
    return variable_shapes(default_description(arch, num_classes))


def run_checkpoint(checkpoint_dir: str, image_rgb: np.ndarray, end_points=("l1", "l2", "l3", "l4")) -> dict:
    """Restore the latest checkpoint of a directory with its model.json; logits and end points for one image."""
    description = load_description(checkpoint_dir)
    with tf.Graph().as_default():
        images = v1.placeholder(tf.float32, [1, *image_rgb.shape[:2], 3])
        output = build_model(images, description)
        fetches = {"logits": output.logits, **{name: output.end_points[name] for name in end_points}}
        with v1.Session() as session:
            v1.train.Saver().restore(session, tf.train.latest_checkpoint(checkpoint_dir))
            feed = description.preprocessing.apply_numpy(image_rgb[None])
            values = session.run(fetches, {images: feed})
    return {name: value[0] for name, value in values.items()}


def checkpoint_arrays(checkpoint_dir: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(checkpoint_dir))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def reference_dir() -> str:
    """The parity reference directory next to the repository, or skip the test."""
    if not os.path.isfile(os.path.join(REFERENCE_DIR, "mbv2.pth")):
        pytest.skip("parity reference (../shared/reference) not present")
    return REFERENCE_DIR
