"""Weight files as other projects write them, made by the tests: DeepLab TF checkpoints, Keras h5, PyTorch
state dicts. Each writer returns our-named arrays of what it wrote, so tests can check values after import."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from refinenet_tf.architectures import is_backbone_variable
from tests.support.weights import arch_variable_shapes, random_weights, save_with_torch, torch_state_dict

DEEPLAB_CLASSIFIER = tuple(f"fc1_voc12_c{i}" for i in range(4))


def write_deeplab_checkpoint(prefix: str, arch: str = "refinenet-resnet101", seed: int = 0,
                             optimizer_slots: bool = True) -> dict[str, np.ndarray]:
    """A DeepLab-ResNet-TF checkpoint: the ResNet of ``arch`` under DeepLab's names, its ASPP classifier
    ``fc1_voc12_c0..3`` (21 classes) and, as a trained DeepLab snapshot holds, Momentum slots and a step.
    Returns the backbone arrays."""
    shapes = arch_variable_shapes(arch)
    backbone = random_weights({name: shape for name, shape in shapes.items() if is_backbone_variable(name)}, seed)
    saved = dict(backbone)
    rng = np.random.default_rng(seed + 1)
    for scope in DEEPLAB_CLASSIFIER:
        saved[f"{scope}/weights"] = rng.normal(0, 0.01, (3, 3, 2048, 21)).astype(np.float32)
        saved[f"{scope}/biases"] = np.zeros(21, np.float32)
    if optimizer_slots:
        saved["conv1/weights/Momentum"] = np.zeros_like(backbone["conv1/weights"])
        saved["global_step"] = np.int64(20000)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(saved), shape_and_slices=[""] * len(saved),
                      tensors=list(saved.values()))
    return backbone


def write_keras_resnet50_h5(path: str, seed: int = 0) -> None:
    """Keras' own ResNet-50 (no top) with random weights and batch-norm statistics, as a legacy h5 file."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(seed)
    model = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(None, None, 3))
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


def write_torch_state_dict(path: str, arch: str, num_classes: int = 21, seed: int = 0, backbone_only: bool = False,
                           prefix: str = "", legacy: bool = False) -> dict[str, np.ndarray]:
    """A PyTorch state dict of ``arch`` under the official code's keys (torchvision's for ``backbone_only``,
    with its ImageNet ``fc``), written with torch.save (``legacy``: the format torch < 1.6 wrote).
    Returns our-named arrays."""
    from refinenet_tf.architectures import check_arch

    shapes = arch_variable_shapes(arch, num_classes)
    if backbone_only:
        shapes = {name: shape for name, shape in shapes.items() if is_backbone_variable(name)}
    arrays = random_weights(shapes, seed)
    spec = check_arch(arch)
    if spec.backbone == "mobilenetv2":
        raise ValueError("MobileNet-v2 keys are written by write_mobilenet_state_dict")
    state = torch_state_dict(arrays, spec.depth, prefix=prefix)
    if backbone_only:
        state[prefix + "fc.weight"] = np.zeros((1000, 2048), np.float32)
        state[prefix + "fc.bias"] = np.zeros(1000, np.float32)
    save_with_torch(state, path, zip_format=not legacy)
    return arrays


_MOBILENET_PARTS = {"expand": 0, "depthwise": 1, "project": 2}
_TORCH_PARAMS = {"weights": "weight", "biases": "bias", "gamma": "weight", "beta": "bias",
                 "moving_mean": "running_mean", "moving_variance": "running_var"}


def mobilenet_torch_key(name: str) -> str:
    """The official Light-Weight RefineNet MobileNet-v2 key of our variable ``name``."""
    scope, param = name.rsplit("/", 1)
    parts = scope.split("/")
    if parts[0] == "layer1":
        module = "layer1.0" if parts[1] == "conv" else "layer1.1"
    elif parts[0].startswith("layer"):
        part = parts[2].removesuffix("_bn")
        module = f"{parts[0]}.{parts[1].removeprefix('block')}.output.{_MOBILENET_PARTS[part]}." + \
            ("1" if parts[2].endswith("_bn") else "0")
    elif parts[0] == "clf_conv":
        module = "segm"
    else:
        module = f"{parts[0]}.0.{'/'.join(parts[1:])}" if len(parts) > 1 else parts[0]
    return f"{module}.{_TORCH_PARAMS[param]}"


def write_mobilenet_state_dict(path: str, num_classes: int = 21, seed: int = 0, legacy: bool = False
                               ) -> dict[str, np.ndarray]:
    """An official Light-Weight RefineNet MobileNet-v2 state dict with random weights; our-named arrays."""
    arrays = random_weights(arch_variable_shapes("lw-refinenet-mobilenetv2", num_classes), seed)
    state = {}
    for name, array in arrays.items():
        if array.ndim == 4:
            array = array.transpose(2, 3, 0, 1) if "/depthwise/" in name else array.transpose(3, 2, 0, 1)
        state[mobilenet_torch_key(name)] = np.ascontiguousarray(array)
    save_with_torch(state, path, zip_format=not legacy)
    return arrays
