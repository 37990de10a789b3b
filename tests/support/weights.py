"""Helpers shared by the weight-import tests: model variable shapes and running a converted checkpoint."""

from __future__ import annotations

import functools
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.architectures import resnet_block_names
from refinenet_tf.description import ModelDescription, default_description, load_description
from refinenet_tf.models.model import build_model

v1 = tf.compat.v1
REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "reference")


def variable_shapes(description: ModelDescription) -> dict[str, tuple[int, ...]]:
    """Our variable names and shapes for a description (graph built, nothing run)."""
    with tf.Graph().as_default():
        build_model(v1.placeholder(tf.float32, [None, None, None, 3]), description)
        return {v.name.split(":")[0]: tuple(v.shape.as_list()) for v in v1.global_variables()}


@functools.cache
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


TORCH_PARAMS = {"weights": "weight", "biases": "bias", "gamma": "weight", "beta": "bias",
                "moving_mean": "running_mean", "moving_variance": "running_var"}


def torch_key(name: str, depth: int) -> str:
    """The key a torchvision / Light-Weight RefineNet / refinenet-pytorch state dict uses for our ``name``."""
    scope, param = name.rsplit("/", 1)
    match = re.match(r"^(res|bn)(\d)(\w+)_branch(1|2[abc])$", scope)
    if scope in ("conv1", "bn_conv1"):
        module = {"conv1": "conv1", "bn_conv1": "bn1"}[scope]
    elif match:
        kind, stage, block, branch = match.groups()
        index = resnet_block_names(depth, int(stage)).index(block)
        if branch == "1":
            sub = "downsample.0" if kind == "res" else "downsample.1"
        else:
            sub = ("conv" if kind == "res" else "bn") + str("abc".index(branch[1]) + 1)
        module = f"layer{int(stage) - 1}.{index}.{sub}"
    else:  # decoder modules sit in an nn.Sequential: 'adapt_stage1_b/1_conv' -> 'adapt_stage1_b.0.1_conv'
        head, _, rest = scope.partition("/")
        module = f"{head}.0.{rest}" if rest else head
    return f"{module}.{TORCH_PARAMS[param]}"


def to_torch_layout(array: np.ndarray) -> np.ndarray:
    """HWIO -> OIHW (vectors unchanged)."""
    return array.transpose(3, 2, 0, 1) if array.ndim == 4 else array


def random_weights(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays for our variables; variances positive."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in shapes.items():
        values = rng.random(shape, dtype=np.float32) * np.float32(0.1)
        arrays[name] = values + np.float32(0.5) if name.endswith("moving_variance") else values - np.float32(0.05)
    return arrays


def torch_state_dict(arrays: dict[str, np.ndarray], depth: int, prefix: str = "") -> dict[str, np.ndarray]:
    """``arrays`` (ours) under PyTorch keys and in PyTorch layout (kernels as transposed views, not copies)."""
    return {prefix + torch_key(name, depth): to_torch_layout(array) for name, array in arrays.items()}


def save_with_torch(state: dict, path, zip_format: bool = True) -> str:
    """``torch.save`` a state dict (NumPy arrays become tensors sharing their strides); skips without torch."""
    torch = pytest.importorskip("torch", reason="torch is needed to write .pth test files")
    state = {key: torch.from_numpy(value) if isinstance(value, np.ndarray) else value for key, value in state.items()}
    torch.save(state, str(path), _use_new_zipfile_serialization=zip_format)
    return str(path)
