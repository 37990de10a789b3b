"""Refuse, before any tensor is allocated, a training graph whose activations cannot fit in RAM (the estimate is
:mod:`refinenet_tf.models.memory`'s, shared with tiled prediction)."""

from __future__ import annotations

import tensorflow as tf

from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.models.memory import forward_activation_bytes, physical_memory_bytes

_GB = 1024**3


def check_fits_in_memory(graph: tf.Graph, input_size: tuple[int, int], batch_size: int,
                         available_bytes: int | None = None) -> None:
    """Raise ConfigError when the forward activations alone exceed the RAM (``available_bytes`` or all of it)."""
    available = physical_memory_bytes() if available_bytes is None else available_bytes
    if available is None:
        return
    needed = forward_activation_bytes(graph)
    if needed > available:
        raise ConfigError(
            f"{parameter('input_size')} {input_size[0]},{input_size[1]} with {parameter('batch_size')} {batch_size} "
            f"needs at least {needed / _GB:.1f} GB for activations but this machine has {available / _GB:.1f} GB of "
            f"RAM; use a smaller {parameter('input_size')} or {parameter('batch_size')}")
