"""Momentum SGD (or Adam) with per-layer learning-rate multipliers and optional gradient accumulation.

Multipliers follow DeepLab: backbone layers 1x, new (decoder) layers ``decoder_lr_mult`` x, and biases
twice their layer's rate. Each group of variables sharing a multiplier gets its own optimiser running at
the scaled rate, which is right for Adam too (Adam ignores a scale on the gradients).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf

from refinenet_tf.architectures import is_backbone_variable
from refinenet_tf.checkpoints import variable_name
from refinenet_tf.defaults import DECODER_LR_MULT
from refinenet_tf.errors import ConfigError, parameter

v1 = tf.compat.v1

BIAS_LR_MULT = 2.0
OPTIMIZERS = ("momentum", "adam")


def learning_rate_multiplier(name: str, decoder_lr_mult: float = DECODER_LR_MULT) -> float:
    """The factor on the base learning rate for variable ``name``."""
    layer = 1.0 if is_backbone_variable(name) else decoder_lr_mult
    return layer * BIAS_LR_MULT if name.endswith("/biases") else layer


@dataclass(frozen=True)
class TrainOps:
    """``accumulate`` adds one batch's gradients (and runs batch-norm updates); ``apply`` performs the
    update from the accumulated gradients, increments the global step and clears the accumulators.
    Without accumulation, ``accumulate`` is None and ``apply`` computes and applies in one run.
    ``reset_momentum`` zeroes the optimisers' slots (a fresh optimiser, for a new stage)."""

    accumulate: tf.Operation | None
    apply: tf.Operation
    reset_momentum: tf.Operation
    accumulate_steps: int


def make_optimizer(name: str, learning_rate, momentum: float) -> v1.train.Optimizer:
    """'momentum' (DeepLab's SGD) or 'adam' (steadier when training from random weights)."""
    if name == "momentum":
        return v1.train.MomentumOptimizer(learning_rate, momentum)
    if name == "adam":
        return v1.train.AdamOptimizer(learning_rate)
    raise ConfigError(f"{parameter('optimizer')} must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def build_train_ops(loss: tf.Tensor, variables: Sequence[tf.Variable], learning_rate: tf.Tensor,
                    momentum: float, global_step: tf.Variable, decoder_lr_mult: float = DECODER_LR_MULT,
                    accumulate_steps: int = 1, update_ops: Sequence[tf.Operation] = (),
                    optimizer: str = "momentum", loss_scale: float = 1.0) -> TrainOps:
    """Ops that minimise ``loss`` over ``variables``; gradients averaged over ``accumulate_steps`` batches.

    ``loss_scale`` multiplies the loss before differentiation and divides the gradients after (float16).
    Under a distribution strategy, call it on every replica: ``apply`` sums the replicas' gradients.
    """
    if accumulate_steps < 1:
        raise ConfigError(f"gradients must be accumulated over at least 1 step, got {accumulate_steps}")
    variables = list(variables)
    with tf.control_dependencies(list(update_ops)):
        gradients = tf.gradients(loss * loss_scale if loss_scale != 1.0 else loss, variables)
    pairs = [(gradient if loss_scale == 1.0 else gradient / loss_scale, variable)
             for gradient, variable in zip(gradients, variables, strict=True) if gradient is not None]
    accumulate, accumulators = None, []
    sources = [gradient for gradient, _ in pairs]
    if accumulate_steps > 1:
        accumulators = [_accumulator(variable) for _, variable in pairs]
        accumulate = tf.group(*[accumulator.assign_add(tf.convert_to_tensor(gradient) / accumulate_steps)
                                for accumulator, gradient in zip(accumulators, sources, strict=True)],
                              name="accumulate_gradients")
        sources = [accumulator.read_value() for accumulator in accumulators]

    groups: dict[float, list] = {}
    for source, (_, variable) in zip(sources, pairs, strict=True):
        groups.setdefault(learning_rate_multiplier(variable_name(variable), decoder_lr_mult), []).append(
            (source, variable))
    optimizers, updates = [], []
    for factor, grads_and_vars in sorted(groups.items()):
        group_optimizer = make_optimizer(optimizer, learning_rate * factor, momentum)
        updates.append(group_optimizer.apply_gradients(grads_and_vars))
        optimizers.append((group_optimizer, [variable for _, variable in grads_and_vars]))
    with tf.control_dependencies(updates):
        finish = [global_step.assign_add(1)]
        finish += [accumulator.assign(tf.zeros_like(accumulator)) for accumulator in accumulators]
    apply = tf.group(*finish, name="apply_gradients")
    return TrainOps(accumulate, apply, _reset_slots(optimizers), accumulate_steps)


def _accumulator(variable: tf.Variable) -> tf.Variable:
    """A zero-initialised local variable (not saved in snapshots) shaped like ``variable``; under a
    distribution strategy each replica sums into its own copy (on-read synchronisation)."""
    return v1.get_variable(f"gradient_accumulators/{variable_name(variable)}", shape=variable.shape,
                           dtype=variable.dtype.base_dtype, initializer=v1.zeros_initializer(),
                           trainable=False, collections=[v1.GraphKeys.LOCAL_VARIABLES],
                           synchronization=tf.VariableSynchronization.ON_READ,
                           aggregation=tf.VariableAggregation.SUM)


def _reset_slots(optimizers) -> tf.Operation:
    slots = [group_optimizer.get_slot(variable, slot_name)
             for group_optimizer, group_variables in optimizers
             for slot_name in group_optimizer.get_slot_names()
             for variable in group_variables]
    # every slot starts at zero: running the slots' own initializers adds no operation per slot
    return tf.group(*[slot.initializer for slot in slots if slot is not None], name="reset_momentum")
