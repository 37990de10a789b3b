"""DeepLab-ResNet-TF checkpoints (``deeplab_resnet_init.ckpt`` or a trained DeepLab snapshot).

Their backbone variables already carry our names (``conv1/weights``, ``bn4b22_branch2a/moving_mean``).
DeepLab's own classifier (``fc1_voc12_c0..3``), optimiser slots and counters are reported and left out.
"""

from __future__ import annotations

import tensorflow as tf

from refinenet_tf.architectures import is_backbone_variable
from refinenet_tf.errors import WeightsError
from refinenet_tf.weights.source import SourceWeights


def read_deeplab_checkpoint(path: str) -> SourceWeights:
    """Backbone arrays of a TF checkpoint (file prefix or directory) under their own names."""
    try:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
    except (ValueError, tf.errors.OpError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"{path}: not a readable TensorFlow checkpoint ({reason})") from None
    weights = SourceWeights(path)
    ignored = []
    for name in sorted(shapes):
        # Backbone variables are exactly 'scope/variable'; longer names are optimiser slots.
        if is_backbone_variable(name) and name.count("/") == 1:
            weights.add(name, reader.get_tensor(name), name)
        else:
            ignored.append(name)
    if ignored:
        weights.notes.append(f"ignored {len(ignored)} non-backbone variables: {', '.join(ignored)}")
    return weights
