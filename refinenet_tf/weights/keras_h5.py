"""Keras ResNet50/101/152 ImageNet weights (legacy HDF5, e.g. ``resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5``).

Layers ``conv1_conv``/``conv1_bn`` and ``conv{s}_block{i}_{k}_{conv,bn}`` (k = 0 shortcut, 1..3 the bottleneck)
become ``conv1``/``bn_conv1`` and ``res{s}{block}_branch{1,2a,2b,2c}``/``bn...``. Kernels are already HWIO.

Keras convolutions have biases and ours do not. Every Keras conv feeds a batch norm, so the bias is folded
into that norm exactly: BN(conv + b) with mean m equals BN(conv) with mean m - b.
"""

from __future__ import annotations

import re

import numpy as np

from refinenet_tf.architectures import resnet_block_names
from refinenet_tf.errors import ConfigError, WeightsError
from refinenet_tf.weights.source import DEPTH_BY_RES4_BLOCKS, SourceWeights

FULL_MODEL_GROUP = "model_weights"
IMAGENET_HEADS = ("probs", "predictions", "fc1000")
BRANCHES = {"0": "branch1", "1": "branch2a", "2": "branch2b", "3": "branch2c"}
CONV_PARAMS = {"kernel": "weights"}
BN_PARAMS = ("gamma", "beta", "moving_mean", "moving_variance")

_BLOCK_LAYER = re.compile(r"^conv([2-5])_block(\d+)_([0-3])_(conv|bn)$")


def read_keras_h5(path: str) -> dict[str, dict[str, np.ndarray]]:
    """``{layer: {variable: array}}`` of a Keras weights file or full-model file (``model_weights`` group)."""
    try:
        import h5py  # optional: only Keras files need it (TensorFlow installs it today)
    except ImportError:
        raise ConfigError("reading Keras .h5 weights needs h5py: pip install h5py") from None
    layers: dict[str, dict[str, np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as handle:
            root = handle[FULL_MODEL_GROUP] if FULL_MODEL_GROUP in handle else handle

            def collect(name, item):
                if isinstance(item, h5py.Dataset):
                    parts = name.split("/")
                    layers.setdefault(parts[0], {})[parts[-1].split(":")[0]] = np.asarray(item[()])

            root.visititems(collect)
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except OSError as error:
        raise WeightsError(f"{path}: not a readable HDF5 file ({error})") from None
    if not layers:
        raise WeightsError(f"{path}: holds no Keras layer weights")
    return layers


def keras_depth(layer_names) -> int | None:
    """ResNet depth from the number of ``conv4_block*`` blocks."""
    blocks = {match.group(2) for match in map(_BLOCK_LAYER.match, layer_names) if match and match.group(1) == "4"}
    return DEPTH_BY_RES4_BLOCKS.get(len(blocks))


def scope_name(layer: str, depth: int) -> str | None:
    """Our scope for a Keras ResNet layer name, or None when it is not one."""
    if layer == "conv1_conv":
        return "conv1"
    if layer == "conv1_bn":
        return "bn_conv1"
    match = _BLOCK_LAYER.match(layer)
    if not match:
        return None
    stage, index, branch, kind = match.groups()
    names = resnet_block_names(depth, int(stage))
    if not 1 <= int(index) <= len(names):
        return None
    block = f"{stage}{names[int(index) - 1]}"
    return f"{'res' if kind == 'conv' else 'bn'}{block}_{BRANCHES[branch]}"


def map_keras_layers(path: str, layers: dict[str, dict[str, np.ndarray]], depth: int) -> SourceWeights:
    """Rename Keras ResNet layers to our variables and fold the conv biases into the following batch norms."""
    weights = SourceWeights(path)
    biases: dict[str, tuple[str, np.ndarray]] = {}  # batch-norm scope -> (key, bias of the conv before it)
    heads = [layer for layer in layers if layer in IMAGENET_HEADS]
    if heads:
        weights.notes.append(f"ignored the ImageNet classifier ({', '.join(heads)})")
    for layer, variables in layers.items():
        if layer in heads:
            continue
        scope = scope_name(layer, depth)
        if scope is None:
            weights.unmapped.extend(f"{layer}/{variable}" for variable in variables)
            continue
        is_conv = layer.endswith("conv")
        for variable, array in variables.items():
            origin = f"{layer}/{variable}"
            if is_conv and variable == "bias":
                biases[scope_name(layer[: -len("conv")] + "bn", depth)] = (origin, array)
            elif is_conv and variable in CONV_PARAMS:
                weights.add(f"{scope}/{CONV_PARAMS[variable]}", array, origin)
            elif not is_conv and variable in BN_PARAMS:
                weights.add(f"{scope}/{variable}", array, origin)
            else:
                weights.unmapped.append(origin)
    for bn_scope, (origin, bias) in biases.items():
        _fold_bias(weights, f"{bn_scope}/moving_mean", origin, bias)
    return weights


def _fold_bias(weights: SourceWeights, mean_name: str, origin: str, bias: np.ndarray) -> None:
    """Fold a conv bias into the moving mean of the batch norm that follows it."""
    mean = weights.arrays.get(mean_name)
    if mean is None:
        weights.unmapped.append(origin)
    elif mean.shape != bias.shape:
        raise WeightsError(f"{weights.path}: {origin} has shape {bias.shape} but the batch norm after it, "
                           f"{weights.origins[mean_name]}, has {mean.shape}")
    else:
        weights.arrays[mean_name] = mean - bias.astype(np.float32)
