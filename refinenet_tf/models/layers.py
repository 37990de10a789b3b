"""Graph-mode layer primitives on ``tf.compat.v1.get_variable`` (no Keras layers).

Variable names follow DeepLab-ResNet-TF: a convolution's scope holds ``weights`` (HWIO) and, where it has
one, ``biases``; a batch norm's scope holds ``gamma``, ``beta``, ``moving_mean`` and ``moving_variance``.

Stride-2 layers pad in one of two ways: TF ``same`` (the extra row/column goes bottom/right) or PyTorch's
``symmetric`` (``k // 2`` on every side, then ``VALID``). Stride-1 layers pad the same way in both modes,
so the choice only matters where a layer downsamples, but there it decides whether imported weights match.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

v1 = tf.compat.v1

DEFAULT_BATCH_NORM_DECAY = 0.9997


def default_conv_initializer():
    """PyTorch's default convolution initialisation (uniform, variance 1 / (3 fan_in)), as the official code.

    Used for the decoder, which has no batch norm: He initialisation would double the variance at every
    conv, and chained residual pooling adds four such branches per block, so logits would start out huge.
    """
    return v1.variance_scaling_initializer(1.0 / 3.0, "fan_in", "uniform")


def he_initializer():
    """He initialisation for backbone convs: keeps the signal alive through deep stacks even when batch norm
    is frozen at its initial statistics (training from scratch); pretrained weights replace it anyway."""
    return v1.variance_scaling_initializer(2.0, "fan_in", "truncated_normal")


@dataclass(frozen=True)
class LayerOptions:
    """Per-model settings every layer needs."""

    padding: str = "same"  # 'same' or 'symmetric' for stride-2 layers
    batch_norm_epsilon: float = 1e-3
    train_batch_norm: bool = False  # use batch statistics and update the moving averages
    dropout: bool = False  # dropout layers are active (training)
    batch_norm_decay: float = DEFAULT_BATCH_NORM_DECAY  # moving-average decay when batch norm is trained
    dropout_seed: tf.Tensor | None = None  # int64 [2]: stateless dropout, reproducible (e.g. across a resume)


def _pad_symmetric(x: tf.Tensor, kernel_size: int, constant: float = 0.0) -> tf.Tensor:
    pad = kernel_size // 2
    return tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=constant)


def _needs_explicit_pad(kernel_size: int, stride: int, options: LayerOptions) -> bool:
    return options.padding == "symmetric" and stride > 1 and kernel_size > 1


def conv2d(x: tf.Tensor, name: str, filters: int, kernel_size: int, options: LayerOptions, stride: int = 1,
           bias: bool = False, initializer=None) -> tf.Tensor:
    """Convolution with ``weights`` (and ``biases``) in scope ``name``."""
    in_channels = int(x.shape[-1])
    with v1.variable_scope(name):
        weights = v1.get_variable(
            "weights", [kernel_size, kernel_size, in_channels, filters],
            initializer=initializer or default_conv_initializer())
        x = tf.cast(x, weights.dtype)  # mixed precision: computes in the (cast) kernel's type; no-op otherwise
        if _needs_explicit_pad(kernel_size, stride, options):
            x = _pad_symmetric(x, kernel_size)
            padding = "VALID"
        else:
            padding = "SAME"
        y = tf.nn.conv2d(x, weights, strides=[1, stride, stride, 1], padding=padding)
        if bias:
            biases = v1.get_variable("biases", [filters], initializer=v1.zeros_initializer())
            y = tf.nn.bias_add(y, biases)
    return y


def depthwise_conv2d(x: tf.Tensor, name: str, kernel_size: int, options: LayerOptions, stride: int = 1) -> tf.Tensor:
    """Depthwise convolution (multiplier 1), ``weights`` shaped (k, k, C, 1)."""
    channels = int(x.shape[-1])
    with v1.variable_scope(name):
        weights = v1.get_variable(
            "weights", [kernel_size, kernel_size, channels, 1],
            # each output sees k*k inputs; variance scaling's 'fan_in' would count k*k*C for this shape
            initializer=v1.variance_scaling_initializer(2.0, "fan_out", "truncated_normal"))
        x = tf.cast(x, weights.dtype)
        if _needs_explicit_pad(kernel_size, stride, options):
            x = _pad_symmetric(x, kernel_size)
            padding = "VALID"
        else:
            padding = "SAME"
        return tf.nn.depthwise_conv2d(x, weights, strides=[1, stride, stride, 1], padding=padding)


def batch_norm(x: tf.Tensor, name: str, options: LayerOptions) -> tf.Tensor:
    """Fused batch norm; frozen (moving statistics, not trainable) unless ``options.train_batch_norm``."""
    channels = int(x.shape[-1])
    train = options.train_batch_norm
    with v1.variable_scope(name):
        gamma = v1.get_variable("gamma", [channels], initializer=v1.ones_initializer(), trainable=train)
        beta = v1.get_variable("beta", [channels], initializer=v1.zeros_initializer(), trainable=train)
        moving_mean = v1.get_variable("moving_mean", [channels], initializer=v1.zeros_initializer(), trainable=False)
        moving_variance = v1.get_variable("moving_variance", [channels], initializer=v1.ones_initializer(),
                                          trainable=False)
        if not train:
            y, _, _ = v1.nn.fused_batch_norm(x, gamma, beta, mean=moving_mean, variance=moving_variance,
                                             epsilon=options.batch_norm_epsilon, is_training=False)
            return y
        y, batch_mean, batch_variance = v1.nn.fused_batch_norm(x, gamma, beta, epsilon=options.batch_norm_epsilon,
                                                               is_training=True)
        for variable, value in ((moving_mean, batch_mean), (moving_variance, batch_variance)):
            update = v1.assign_sub(variable, (1.0 - options.batch_norm_decay) * (variable - value))
            v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, update)
        return y


def max_pool(x: tf.Tensor, kernel_size: int, stride: int, options: LayerOptions) -> tf.Tensor:
    """Max pooling; in symmetric mode stride-2 pools pad with the lowest float, as PyTorch does."""
    if _needs_explicit_pad(kernel_size, stride, options):
        x = _pad_symmetric(x, kernel_size, constant=x.dtype.min)
        padding = "VALID"
    else:
        padding = "SAME"
    return tf.nn.max_pool2d(x, ksize=kernel_size, strides=stride, padding=padding)


def dropout(x: tf.Tensor, rate: float, options: LayerOptions, site: int) -> tf.Tensor:
    """Dropout in training only. With ``options.dropout_seed`` the mask is a function of that seed and of
    ``site`` (which numbers the dropout layers of a model), so a rerun or a resumed run draws the same masks."""
    if not options.dropout:
        return x
    if options.dropout_seed is None:
        return tf.nn.dropout(x, rate=rate)
    seed = tf.cast(options.dropout_seed, tf.int64) + tf.constant([0, 1_000_003 * site], tf.int64)
    return tf.nn.experimental.stateless_dropout(x, rate=rate, seed=seed)


def spatial_size(x: tf.Tensor):
    """(height, width) as Python ints when static, else as a tensor."""
    height, width = x.shape[1], x.shape[2]
    if height is not None and width is not None:
        return [int(height), int(width)]
    return tf.shape(x)[1:3]


def upsample_like(x: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
    """Bilinear resize of ``x`` to ``reference``'s height and width with aligned corners (as the PyTorch code)."""
    resized = tf.raw_ops.ResizeBilinear(images=x, size=spatial_size(reference), align_corners=True,
                                        half_pixel_centers=False)
    return tf.cast(resized, x.dtype)  # ResizeBilinear always returns float32
