"""Refuse, before any tensor is allocated, a training graph whose activations cannot fit in RAM."""

from __future__ import annotations

import os

import tensorflow as tf

from refinenet_tf.errors import ConfigError, parameter

# Ops whose outputs are weights, constants or views rather than activations of the batch.
_NOT_ACTIVATIONS = {"Const", "VariableV2", "VarHandleOp", "ReadVariableOp", "Identity", "Placeholder",
                    "PlaceholderWithDefault", "Assign", "AssignVariableOp"}
_GRADIENT_SCOPE = "gradients"
_GB = 1024**3


def physical_memory_bytes() -> int | None:
    """This machine's RAM in bytes (``SC_PHYS_PAGES`` x page size), or None where it cannot be asked."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def forward_activation_bytes(graph: tf.Graph) -> int:
    """Bytes of every float tensor the forward pass computes (static shapes only, gradients excluded).

    Back-propagation keeps most of them alive at once, so this is about the least a training step needs.
    """
    total = 0
    for op in graph.get_operations():
        if op.type in _NOT_ACTIVATIONS or op.name.split("/", 1)[0].startswith(_GRADIENT_SCOPE):
            continue
        for output in op.outputs:
            if output.dtype.is_floating and output.shape.is_fully_defined():
                total += output.shape.num_elements() * output.dtype.size
    return total


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
