"""What every weight reader returns: arrays under our variable names, and what it could not map.

Also the plain-language descriptions used in error messages ("ResNet-50 backbone + Light-Weight RefineNet
decoder"), derived from variable names alone so that they work for every source format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from refinenet_tf.architectures import RESNET_STAGE_BLOCKS

# ResNet depth from the number of blocks in res4 (the stage that differs between 50, 101 and 152).
DEPTH_BY_RES4_BLOCKS = {blocks[2]: depth for depth, blocks in RESNET_STAGE_BLOCKS.items()}
_RES4_BLOCK = re.compile(r"^res4(\w+)_branch2a/weights$")


@dataclass
class SourceWeights:
    """Arrays of one weight file, renamed to our variables and laid out as our variables are (HWIO kernels).

    ``origins`` maps each of our names to the key it came from in the file (for error messages);
    ``unmapped`` holds file keys that fit no naming rule (reported as unexpected); ``notes`` says what was
    deliberately left out (an ImageNet classifier, a DeepLab classifier, bookkeeping counters).
    """

    path: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, array: np.ndarray, origin: str) -> None:
        """Record one array under our variable ``name``."""
        self.arrays[name] = np.ascontiguousarray(array, dtype=np.float32)
        self.origins[name] = origin

    def label(self, name: str) -> str:
        """``file key (our name)`` where they differ, for messages."""
        origin = self.origins.get(name, name)
        return name if origin == name else f"{origin} ({name})"


def resnet_depth(names) -> int | None:
    """ResNet depth (50, 101, 152) from our variable names, or None when there is no recognisable ResNet."""
    blocks = sum(1 for name in names if _RES4_BLOCK.match(name))
    return DEPTH_BY_RES4_BLOCKS.get(blocks)


def describe_names(names) -> str:
    """Backbone and decoder that a set of our variable names belongs to, in words."""
    names = list(names)
    parts = []
    depth = resnet_depth(names)
    if depth:
        parts.append(f"ResNet-{depth} backbone")
    elif any(name.startswith("res") for name in names):
        parts.append("ResNet backbone of unknown depth")
    if any(name.startswith("layer2/block0/") for name in names):
        parts.append("MobileNet-v2 backbone")
    if any(name.startswith(("adapt_stage1_b/", "mflow_conv_g1_b/")) for name in names):
        parts.append("full RefineNet decoder")
    elif any(name.startswith("mflow_conv_g1_pool/") for name in names):
        parts.append("Light-Weight RefineNet decoder")
    elif any(name.startswith("crp1/") for name in names):
        parts.append("Light-Weight RefineNet MobileNet-v2 decoder")
    if any(name.startswith("fc1_voc12") for name in names):
        parts.append("DeepLab classifier (fc1_voc12)")
    return " + ".join(parts) if parts else "no recognisable RefineNet layers"
