"""The activation-memory estimates: every tensor at once (training) and the peak of those alive at once
(prediction), on graphs small enough to count by hand."""

from __future__ import annotations

import tensorflow as tf

from refinenet_tf.models.memory import forward_activation_bytes, peak_live_activation_bytes

v1 = tf.compat.v1
MAP = 10 * 10 * 4  # bytes of one float32 1x10x10x1 tensor


def _graph(build) -> tf.Graph:
    graph = tf.Graph()
    with graph.as_default():
        build(v1.placeholder(tf.float32, [1, 10, 10, 1]))
    return graph


def test_a_chain_keeps_two_tensors_alive_while_the_sum_counts_all():
    graph = _graph(lambda x: ((x * 2.0) + 1.0) * 3.0)
    assert peak_live_activation_bytes(graph) == 2 * MAP  # each op's input and output
    assert forward_activation_bytes(graph) == 3 * MAP  # neither counts the fed input


def test_a_tensor_read_twice_stays_alive_until_its_last_reader():
    def build(x):
        y = x * 1.0
        return tf.add(y, (y * 2.0) * 3.0)

    assert peak_live_activation_bytes(_graph(build)) == 3 * MAP  # y, y * 2 and (y * 2) * 3


def test_a_view_keeps_its_buffer_alive_without_a_copy():
    graph = _graph(lambda x: tf.reshape(x, [1, 100]) * 2.0 + tf.reduce_sum(x))
    # x (viewed), the product and then the sum: the reshape itself allocates nothing
    assert peak_live_activation_bytes(graph) == 2 * MAP + 4


def test_weights_and_their_initialisers_are_not_activations():
    def build(x):
        big = v1.get_variable("big", [1000, 1000], initializer=v1.random_uniform_initializer())
        return x * tf.reduce_mean(big)

    assert peak_live_activation_bytes(_graph(build)) == MAP  # the product; the fed input is the caller's
