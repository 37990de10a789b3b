"""The one table of architecture names, and ``build_model`` which every script and the API use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from refinenet_tf.errors import ConfigError

if TYPE_CHECKING:
    import tensorflow as tf

    from refinenet_tf.description import ModelDescription

DEFAULT_ARCH = "refinenet-resnet101"
OUTPUT_STRIDE = 4


@dataclass(frozen=True)
class ArchSpec:
    """What an architecture name means."""

    decoder: str  # 'refinenet' (full), 'lightweight'
    backbone: str  # 'resnet' or 'mobilenetv2'
    depth: int | None = None  # ResNet depth


ARCHITECTURES: dict[str, ArchSpec] = {
    "refinenet-resnet50": ArchSpec("refinenet", "resnet", 50),
    "refinenet-resnet101": ArchSpec("refinenet", "resnet", 101),
    "refinenet-resnet152": ArchSpec("refinenet", "resnet", 152),
    "lw-refinenet-resnet50": ArchSpec("lightweight", "resnet", 50),
    "lw-refinenet-resnet101": ArchSpec("lightweight", "resnet", 101),
    "lw-refinenet-resnet152": ArchSpec("lightweight", "resnet", 152),
    "lw-refinenet-mobilenetv2": ArchSpec("lightweight", "mobilenetv2"),
}


class ModelOutput(NamedTuple):
    """Logits at stride 4 (NHWC, ceil(H/4) x ceil(W/4)) and the backbone's named end points."""

    logits: tf.Tensor
    end_points: dict[str, tf.Tensor]


def check_arch(name: str) -> ArchSpec:
    """The spec of an architecture name, or a ConfigError listing the valid names."""
    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHITECTURES)}") from None


def default_description(arch: str = DEFAULT_ARCH, num_classes: int = 21, **overrides) -> ModelDescription:
    """A description with the usual settings for the architecture.

    ResNets default to DeepLab-ResNet-TF's conventions (stride on the 1x1, TF padding, BGR minus IMG_MEAN,
    epsilon 1e-3) so its ImageNet checkpoint restores as is; MobileNet-v2 to the official PyTorch ones.
    """
    from refinenet_tf.description import ModelDescription, Preprocessing

    if check_arch(arch).backbone == "mobilenetv2":
        settings = dict(stride_on="3x3", padding="symmetric", batch_norm_epsilon=1e-5,
                        preprocessing=Preprocessing.torch())
    else:
        settings = dict(stride_on="1x1", padding="same", batch_norm_epsilon=1e-3,
                        preprocessing=Preprocessing.deeplab())
    settings.update(overrides)
    return ModelDescription(arch=arch, num_classes=num_classes, **settings)


def build_model(images: tf.Tensor, description: ModelDescription, is_training: bool = False,
                train_batch_norm: bool = False, reuse: bool | None = None,
                batch_norm_decay: float | None = None, dropout_seed: tf.Tensor | None = None) -> ModelOutput:
    """Build the graph for preprocessed NHWC ``images`` of any size.

    Variables are created in the current variable scope (top level by default, matching DeepLab names);
    ``reuse=True`` shares them, e.g. across the scales of multi-scale training. Dropout is active only when
    ``is_training``; batch norm uses batch statistics and updates its moving averages only when
    ``train_batch_norm`` (the update ops go to ``tf.compat.v1.GraphKeys.UPDATE_OPS``, with moving averages
    decaying by ``batch_norm_decay``, default 0.9997; short runs want a smaller value such as 0.99).
    ``dropout_seed`` (int64 [2]) makes dropout stateless: the same seed draws the same masks.
    """
    import tensorflow as tf

    from refinenet_tf.models.layers import DEFAULT_BATCH_NORM_DECAY, LayerOptions
    from refinenet_tf.models.lightweight_mobilenet import lightweight_mobilenet_decoder
    from refinenet_tf.models.mobilenet_v2 import mobilenet_v2
    from refinenet_tf.models.refinenet import refinenet_decoder
    from refinenet_tf.models.resnet import resnet

    spec = check_arch(description.arch)
    options = LayerOptions(padding=description.padding, batch_norm_epsilon=description.batch_norm_epsilon,
                           train_batch_norm=train_batch_norm, is_training=is_training,
                           batch_norm_decay=DEFAULT_BATCH_NORM_DECAY if batch_norm_decay is None else batch_norm_decay,
                           dropout_seed=dropout_seed)
    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=reuse):
        if spec.backbone == "mobilenetv2":
            end_points = mobilenet_v2(images, options)
            logits = lightweight_mobilenet_decoder(end_points, description.num_classes, options)
        else:
            end_points = resnet(images, spec.depth, description.stride_on, options)
            logits = refinenet_decoder(end_points, description.num_classes, options,
                                       light_weight=spec.decoder == "lightweight")
    return ModelOutput(logits, end_points)



CLASSIFIER_SCOPE = "clf_conv"
# ResNet stem and blocks (conv1, bn_conv1, res4b22_branch2a, bn4b22_branch2a) and MobileNet-v2 stages (layer1..8).
_BACKBONE_VARIABLE = re.compile(r"^(conv1|bn_conv1|res\d\w*|bn\d\w*|layer\d+)/")


def is_backbone_variable(name: str) -> bool:
    """True for backbone variables; everything else is decoder (new layers: higher learning rate)."""
    return bool(_BACKBONE_VARIABLE.match(name))


def is_classifier_variable(name: str) -> bool:
    """True for the last layer's variables (what ``--not-restore-last`` skips)."""
    return name.startswith(CLASSIFIER_SCOPE + "/")
