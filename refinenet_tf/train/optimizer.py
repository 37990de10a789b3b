"""Momentum SGD with per-layer learning-rate multipliers and optional gradient accumulation.

Multipliers follow DeepLab: backbone layers 1x, new (decoder) layers ``decoder_lr_mult`` x, and biases
twice their layer's rate. They scale the gradients fed to one momentum optimiser, which for momentum
SGD is the same update as separate optimisers with scaled rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf

from refinenet_tf.errors import ConfigError
from refinenet_tf.models.registry import is_backbone_variable

v1 = tf.compat.v1

DECODER_LR_MULT = 10.0
BIAS_LR_MULT = 2.0


def learning_rate_multiplier(name: str, decoder_lr_mult: float = DECODER_LR_MULT) -> float:
    """The factor on the base learning rate for variable ``name``."""
    layer = 1.0 if is_backbone_variable(name) else decoder_lr_mult
    return layer * BIAS_LR_MULT if name.endswith("/biases") else layer


@dataclass(frozen=True)
class TrainOps:
    """``accumulate`` adds one batch's gradients (and runs batch-norm updates); ``apply`` performs the
    update from the accumulated gradients, increments the global step and clears the accumulators.
    Without accumulation, ``accumulate`` is None and ``apply`` computes and applies in one run.
    ``reset_momentum`` zeroes the optimiser's momentum (a fresh optimiser, for a new stage)."""

    accumulate: tf.Operation | None
    apply: tf.Operation
    reset_momentum: tf.Operation
    accumulate_steps: int


def build_train_ops(loss: tf.Tensor, variables: Sequence[tf.Variable], learning_rate: tf.Tensor,
                    momentum: float, global_step: tf.Variable, decoder_lr_mult: float = DECODER_LR_MULT,
                    accumulate_steps: int = 1, update_ops: Sequence[tf.Operation] = ()) -> TrainOps:
    """Ops that minimise ``loss`` over ``variables``; gradients averaged over ``accumulate_steps`` batches."""
    if accumulate_steps < 1:
        raise ConfigError(f"gradients must be accumulated over at least 1 step, got {accumulate_steps}")
    variables = list(variables)
    optimizer = v1.train.MomentumOptimizer(learning_rate, momentum)
    with tf.control_dependencies(list(update_ops)):
        gradients = tf.gradients(loss, variables)
    multipliers = [learning_rate_multiplier(variable.op.name, decoder_lr_mult) for variable in variables]
    if accumulate_steps == 1:
        scaled = [(_scale(gradient, factor), variable)
                  for gradient, factor, variable in zip(gradients, multipliers, variables, strict=True)
                  if gradient is not None]
        apply = optimizer.apply_gradients(scaled, global_step=global_step)
        return TrainOps(None, apply, _reset_momentum(optimizer, variables), 1)
    pairs = [(gradient, factor, variable)
             for gradient, factor, variable in zip(gradients, multipliers, variables, strict=True)
             if gradient is not None]
    accumulators = [_accumulator(variable) for _, _, variable in pairs]
    accumulate = tf.group(*[accumulator.assign_add(tf.convert_to_tensor(gradient) / accumulate_steps)
                            for accumulator, (gradient, _, _) in zip(accumulators, pairs, strict=True)],
                          name="accumulate_gradients")
    scaled = [(accumulator.read_value() * factor, variable)
              for accumulator, (_, factor, variable) in zip(accumulators, pairs, strict=True)]
    step = optimizer.apply_gradients(scaled, global_step=global_step)
    with tf.control_dependencies([step]):
        apply = tf.group(*[accumulator.assign(tf.zeros_like(accumulator)) for accumulator in accumulators],
                         name="apply_accumulated_gradients")
    return TrainOps(accumulate, apply, _reset_momentum(optimizer, variables), accumulate_steps)


def _scale(gradient, factor: float):
    if factor == 1.0:
        return gradient
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor


def _accumulator(variable: tf.Variable) -> tf.Variable:
    """A zero-initialised local variable (not saved in snapshots) shaped like ``variable``."""
    return v1.get_variable(f"gradient_accumulators/{variable.op.name}", shape=variable.shape,
                           dtype=variable.dtype.base_dtype, initializer=v1.zeros_initializer(),
                           trainable=False, collections=[v1.GraphKeys.LOCAL_VARIABLES])


def _reset_momentum(optimizer: v1.train.MomentumOptimizer, variables: Sequence[tf.Variable]) -> tf.Operation:
    slots = [optimizer.get_slot(variable, "momentum") for variable in variables]
    return tf.group(*[slot.assign(tf.zeros_like(slot)) for slot in slots if slot is not None],
                    name="reset_momentum")
