"""PyTorch state dicts (torchvision ResNets, Light-Weight RefineNet, refinenet-pytorch) -> our variable names.

Files are read by :mod:`refinenet_tf.weights.torch_file` (no torch needed), which refuses pickles that
would construct arbitrary objects or call functions, so a hostile file raises instead of running code.

Naming rules (PyTorch key -> ours):

* ResNet stem ``conv1``/``bn1`` -> ``conv1``/``bn_conv1``; ``layer{s}.{i}.conv{1,2,3}`` ->
  ``res{s+1}{block}_branch2{a,b,c}`` with ``bn{1,2,3}`` -> ``bn{s+1}{block}_branch2{a,b,c}``;
  ``downsample.0``/``.1`` -> ``branch1``. ``block`` is the Caffe name of index ``i`` (``a``, ``b1``, ...).
* MobileNet-v2 ``layer1.0``/``layer1.1`` -> ``layer1/conv``/``layer1/bn``; ``layerN.i.output.j.{0,1}`` ->
  ``layerN/block{i}/{expand,depthwise,project}`` and its ``_bn``.
* Decoder modules keep their names with ``/`` for ``.`` and without ``nn.Sequential`` indices
  (``mflow_conv_g1_pool.0.1_outvar_dimred`` -> ``mflow_conv_g1_pool/1_outvar_dimred``); ``segm`` -> ``clf_conv``.

Kernels go from OIHW to HWIO; depthwise kernels (C, 1, k, k) to (k, k, C, 1).
"""

from __future__ import annotations

import re

import numpy as np

from refinenet_tf.architectures import resnet_block_names
from refinenet_tf.errors import WeightsError
from refinenet_tf.weights.source import DEPTH_BY_RES4_BLOCKS, SourceWeights
from refinenet_tf.weights.torch_file import load_torch_file

CONV_PARAMS = {"weight": "weights", "bias": "biases"}
BN_PARAMS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
MOBILENET_PARTS = ("expand", "depthwise", "project")
STATE_DICT_KEYS = ("state_dict", "model")
DATA_PARALLEL_PREFIX = "module."

_RESNET_STEM = re.compile(r"^(conv1|bn1)\.(\w+)$")
_RESNET_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.(conv[123]|bn[123]|downsample\.[01])\.(\w+)$")
_MOBILENET_STEM = re.compile(r"^layer1\.([01])\.(\w+)$")
_MOBILENET_BLOCK = re.compile(r"^layer([2-8])\.(\d+)\.output\.([012])\.([01])\.(\w+)$")
_TORCHVISION_LAYER3_BLOCK = re.compile(r"^layer3\.(\d+)\.")


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """Tensors of a ``.pth`` file as NumPy arrays (dtype as saved, bfloat16 as float32), keyed as saved
    (``module.`` prefix removed); entries that are not tensors are skipped.

    Accepts a bare state dict or a checkpoint dict holding one under 'state_dict' or 'model'.
    """
    state = _unwrap_state_dict(load_torch_file(path), path)
    arrays = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            continue
        if key.startswith(DATA_PARALLEL_PREFIX):
            key = key[len(DATA_PARALLEL_PREFIX):]
        arrays[key] = value
    if not arrays:
        raise WeightsError(f"{path}: holds no tensors")
    return arrays


def _unwrap_state_dict(loaded, path: str) -> dict:
    if isinstance(loaded, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(loaded.get(key), dict):
                return loaded[key]
        return loaded
    raise WeightsError(f"{path}: expected a state dict, found a {type(loaded).__name__}")


def torchvision_depth(keys) -> int | None:
    """ResNet depth from the number of ``layer3`` blocks of a torchvision-style state dict."""
    indices = {match.group(1) for match in map(_TORCHVISION_LAYER3_BLOCK.match, keys) if match}
    return DEPTH_BY_RES4_BLOCKS.get(len(indices))


def resnet_name(key: str, depth: int) -> str | None:
    """Our name for a torchvision ResNet key, or None when it is not one."""
    match = _RESNET_STEM.match(key)
    if match:
        module, param = match.groups()
        return _param_name("conv1", param) if module == "conv1" else _param_name("bn_conv1", param, batch_norm=True)
    match = _RESNET_BLOCK.match(key)
    if not match:
        return None
    layer, index, module, param = match.groups()
    stage, index = int(layer) + 1, int(index)
    names = resnet_block_names(depth, stage)
    if index >= len(names):
        return None
    block = f"{stage}{names[index]}"
    if module.startswith("downsample"):
        branch, batch_norm = "branch1", module.endswith("1")
    else:
        branch, batch_norm = "branch2" + "abc"[int(module[-1]) - 1], module.startswith("bn")
    scope = f"bn{block}_{branch}" if batch_norm else f"res{block}_{branch}"
    return _param_name(scope, param, batch_norm)


def mobilenet_name(key: str) -> str | None:
    """Our name for a Light-Weight RefineNet MobileNet-v2 backbone key, or None."""
    match = _MOBILENET_STEM.match(key)
    if match:
        module, param = match.groups()
        return _param_name("layer1/bn", param, True) if module == "1" else _param_name("layer1/conv", param)
    match = _MOBILENET_BLOCK.match(key)
    if not match:
        return None
    layer, index, part, module, param = match.groups()
    scope = f"layer{layer}/block{index}/{MOBILENET_PARTS[int(part)]}"
    return _param_name(scope + "_bn", param, True) if module == "1" else _param_name(scope, param)


def decoder_name(key: str) -> str | None:
    """Our name for a decoder key: modules joined by '/', Sequential indices dropped, ``segm`` -> ``clf_conv``."""
    *modules, param = key.split(".")
    modules = [module for module in modules if not module.isdigit()]
    if not modules:
        return None
    if modules == ["segm"]:
        modules = ["clf_conv"]
    return _param_name("/".join(modules), param)


def _param_name(scope: str, param: str, batch_norm: bool = False) -> str | None:
    table = BN_PARAMS if batch_norm else CONV_PARAMS
    return f"{scope}/{table[param]}" if param in table else None


def to_tf_layout(name: str, array: np.ndarray) -> np.ndarray:
    """A PyTorch parameter in our layout: OIHW -> HWIO, depthwise (C,1,k,k) -> (k,k,C,1), vectors as they are."""
    if array.ndim != 4:
        return array
    return array.transpose(2, 3, 0, 1) if "/depthwise/" in name else array.transpose(2, 3, 1, 0)


def map_state_dict(path: str, state: dict[str, np.ndarray], backbone: str, depth: int | None,
                   with_decoder: bool, ignore_classifier_head: bool = False) -> SourceWeights:
    """Rename a state dict to our variables.

    ``backbone`` is 'resnet' or 'mobilenetv2'; for a ResNet ``depth`` is the one the file's own
    blocks show (see :func:`torchvision_depth`), falling back to the target's. Keys that fit no rule
    end up in ``unmapped``. ``ignore_classifier_head`` drops torchvision's ImageNet ``fc`` with a note.
    """
    weights = SourceWeights(path)
    counters = [key for key in state if key.endswith(".num_batches_tracked")]
    if counters:
        weights.notes.append(f"ignored {len(counters)} batch-norm num_batches_tracked counters")
    head = [key for key in state if key.startswith("fc.")] if ignore_classifier_head else []
    if head:
        weights.notes.append(f"ignored the ImageNet classifier ({', '.join(head)})")
    for key, array in state.items():
        if key in counters or key in head:
            continue
        name = resnet_name(key, depth) if backbone == "resnet" else mobilenet_name(key)
        if name is None and with_decoder and not key.startswith(("layer", "conv1.", "bn1.")):
            name = decoder_name(key)
        if name is None:
            weights.unmapped.append(key)
        else:
            weights.add(name, to_tf_layout(name, array), key)
    return weights

