"""Mixed precision for graph-mode training: float32 variables, float16/bfloat16 computation.

Convolution kernels and biases are stored in float32 and cast to the compute type where they are used
(a custom variable getter), so the optimiser updates float32 master weights. Batch-norm parameters stay
float32, as fused batch norm wants them. Logits go back to float32 for the loss. float16 has a narrow
exponent range, so its loss is multiplied by a constant loss scale before differentiation and the
gradients are divided by it again; bfloat16 has float32's range and needs no scaling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import tensorflow as tf

from refinenet_tf.errors import ConfigError, parameter

v1 = tf.compat.v1

PRECISIONS = ("float32", "float16", "bfloat16")
FLOAT16_LOSS_SCALE = 1024.0
_CAST_VARIABLES = ("weights", "biases")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ConfigError."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{parameter('precision')} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def loss_scale(precision: str) -> float:
    """The factor on the loss before differentiation (and the divisor of the gradients)."""
    return FLOAT16_LOSS_SCALE if check_precision(precision) == "float16" else 1.0


@contextlib.contextmanager
def model_precision(precision: str) -> Iterator[tf.DType]:
    """Within this context, models built with ``get_variable`` compute in ``precision``; yields its dtype.

    float32 changes nothing. Otherwise kernels and biases are read through a cast to the compute type.
    """
    dtype = tf.as_dtype(check_precision(precision))
    if dtype == tf.float32:
        yield dtype
        return

    def cast_getter(getter, name, *args, **kwargs):
        variable = getter(name, *args, **kwargs)
        if name.rsplit("/", 1)[-1] in _CAST_VARIABLES and variable.dtype.base_dtype == tf.float32:
            return tf.cast(variable, dtype)
        return variable

    with v1.variable_scope(v1.get_variable_scope(), custom_getter=cast_getter):
        yield dtype
