"""The one table of architecture names, and the naming facts weight importers and restores rely on.

Pure data: no TensorFlow. ``refinenet_tf.models.model.build_model`` turns a name into a graph.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from refinenet_tf.errors import ConfigError

OUTPUT_STRIDE = 4  # logits are ceil(H/4) x ceil(W/4)
CLASSIFIER_SCOPE = "clf_conv"  # the last layer, the one --not-restore-last skips
RESNET_STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


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

# ResNet stem and blocks (conv1, bn_conv1, res4b22_branch2a, bn4b22_branch2a) and MobileNet-v2 stages (layer1..8).
_BACKBONE_VARIABLE = re.compile(r"^(conv1|bn_conv1|res\d\w*|bn\d\w*|layer\d+)/")


def check_arch(name: str) -> ArchSpec:
    """The spec of an architecture name, or a ConfigError listing the valid names."""
    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHITECTURES)}") from None


def resnet_block_names(depth: int, stage: int) -> list[str]:
    """Caffe block names of one ResNet stage (2..5): 'a','b','c' or 'a','b1','b2',... for long stages."""
    count = RESNET_STAGE_BLOCKS[depth][stage - 2]
    if depth > 50 and stage in (3, 4):
        return ["a"] + [f"b{i}" for i in range(1, count)]
    return list(string.ascii_lowercase[:count])


def is_backbone_variable(name: str) -> bool:
    """True for backbone variables; everything else is decoder (new layers: higher learning rate)."""
    return bool(_BACKBONE_VARIABLE.match(name))


def is_classifier_variable(name: str) -> bool:
    """True for the last layer's variables (what ``--not-restore-last`` skips)."""
    return name.startswith(CLASSIFIER_SCOPE + "/")
