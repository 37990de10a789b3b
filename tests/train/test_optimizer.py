"""Learning-rate multipliers and gradient accumulation."""

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.description import default_description
from refinenet_tf.models.model import build_model
from refinenet_tf.train.losses import pixel_cross_entropy
from refinenet_tf.train.optimizer import build_train_ops, learning_rate_multiplier

v1 = tf.compat.v1


def test_multipliers_backbone_decoder_and_biases():
    assert learning_rate_multiplier("res4b22_branch2a/weights", 10) == 1
    assert learning_rate_multiplier("bn_conv1/beta", 10) == 1
    assert learning_rate_multiplier("layer3/conv/weights", 10) == 1
    assert learning_rate_multiplier("p_ims1d2_outl1_dimred/weights", 10) == 10
    assert learning_rate_multiplier("clf_conv/weights", 10) == 10
    assert learning_rate_multiplier("clf_conv/biases", 10) == 20
    assert learning_rate_multiplier("mflow_conv_g1_b/biases", 4) == 8


def test_first_update_is_rate_times_multiplier_times_gradient():
    graph = tf.Graph()
    with graph.as_default():
        backbone = v1.get_variable("conv1/weights", initializer=np.array([1.0, 2.0], np.float32))
        decoder = v1.get_variable("clf_conv/weights", initializer=np.array([3.0], np.float32))
        bias = v1.get_variable("clf_conv/biases", initializer=np.array([0.5], np.float32))
        loss = tf.reduce_sum(backbone**2) + tf.reduce_sum(decoder * 2.0) + tf.reduce_sum(bias)
        step = v1.train.get_or_create_global_step()
        ops = build_train_ops(loss, [backbone, decoder, bias], tf.constant(0.01), 0.9, step, decoder_lr_mult=10)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            session.run(ops.apply)
            values = session.run([backbone, decoder, bias, step])
    np.testing.assert_allclose(values[0], [1.0 - 0.01 * 2.0, 2.0 - 0.01 * 4.0], rtol=1e-6)
    np.testing.assert_allclose(values[1], [3.0 - 0.1 * 2.0], rtol=1e-6)
    np.testing.assert_allclose(values[2], [0.5 - 0.2 * 1.0], rtol=1e-6)
    assert values[3] == 1


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_reset_momentum_zeroes_every_slot_and_keeps_the_weights(optimizer):
    """What a new stage of a staged schedule runs: the optimizer's slots back to zero, its weights kept."""
    graph = tf.Graph()
    with graph.as_default():
        backbone = v1.get_variable("conv1/weights", initializer=np.array([1.0, 2.0], np.float32))
        decoder = v1.get_variable("clf_conv/weights", initializer=np.array([3.0], np.float32))
        loss = tf.reduce_sum(backbone**2) + tf.reduce_sum(decoder * 2.0)
        step = v1.train.get_or_create_global_step()
        ops = build_train_ops(loss, [backbone, decoder], tf.constant(0.01), 0.9, step, decoder_lr_mult=10,
                              optimizer=optimizer)
        slots = [variable for variable in v1.global_variables()
                 if variable.name.split(":")[0].rsplit("/", 1)[-1] in ("Momentum", "Adam", "Adam_1")]
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            session.run(ops.apply)
            assert all(np.any(value != 0) for value in session.run(slots))
            weights = session.run([backbone, decoder])
            session.run(ops.reset_momentum)
            assert all(np.all(value == 0) for value in session.run(slots))
            for value, before in zip(session.run([backbone, decoder]), weights, strict=True):
                np.testing.assert_array_equal(value, before)
    assert len(slots) == (2 if optimizer == "momentum" else 4)


@pytest.mark.slow  # several training steps
def test_accumulating_batches_of_one_equals_one_batch_of_n():
    """Frozen batch norm, no dropout: 3 accumulated batches of 1 make the same update as a batch of 3."""
    accumulate_steps = 3
    rng = np.random.default_rng(0)
    images = rng.normal(size=(accumulate_steps, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=(accumulate_steps, 32, 32, 1)).astype(np.int32)
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(1)
        image_input = v1.placeholder(tf.float32, [None, 32, 32, 3])
        label_input = v1.placeholder(tf.int32, [None, 32, 32, 1])
        logits = build_model(image_input, default_description("lw-refinenet-mobilenetv2", 3)).logits
        loss = pixel_cross_entropy(logits, label_input, 3)
        variables = v1.trainable_variables()
        step = v1.train.get_or_create_global_step()
        whole = build_train_ops(loss, variables, tf.constant(0.05), 0.9, step)
        accumulated = build_train_ops(loss, variables, tf.constant(0.05), 0.9, step,
                                      accumulate_steps=accumulate_steps)
        with v1.Session() as session:
            session.run([v1.global_variables_initializer(), v1.local_variables_initializer()])
            initial = session.run(variables)
            session.run(whole.apply, {image_input: images, label_input: labels})
            after_batch = session.run(variables)
            for variable, value in zip(variables, initial, strict=True):
                variable.load(value, session)
            for i in range(accumulate_steps):
                session.run(accumulated.accumulate, {image_input: images[i:i + 1], label_input: labels[i:i + 1]})
            session.run(accumulated.apply)
            after_accumulation = session.run(variables)
            assert session.run(step) == 2
    changed = 0
    for before, batch, accumulation in zip(initial, after_batch, after_accumulation, strict=True):
        update_batch, update_accumulated = batch - before, accumulation - before
        np.testing.assert_allclose(update_accumulated, update_batch, rtol=1e-3, atol=1e-6)
        changed += bool(np.any(update_batch != 0))
    assert changed > len(initial) // 2


def test_accumulate_steps_must_be_positive():
    from refinenet_tf.errors import ConfigError

    with tf.Graph().as_default(), pytest.raises(ConfigError, match="at least 1"):
        variable = v1.get_variable("w/weights", [1])
        build_train_ops(tf.reduce_sum(variable), [variable], tf.constant(0.1), 0.9,
                        v1.train.get_or_create_global_step(), accumulate_steps=0)
