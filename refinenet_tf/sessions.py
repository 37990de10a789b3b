"""Session settings shared by training, prediction and the frozen inference graph."""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from refinenet_tf.errors import ConfigError, parameter

v1 = tf.compat.v1

XLA_CPU_FLAG = "--tf_xla_cpu_global_jit"


def session_config(threads: int | None = None, inter_op_threads: int | None = None,
                   xla: bool = False) -> v1.ConfigProto:
    """Session settings: ``threads`` bounds intra-op parallelism (0/None: TF's default, all cores),
    ``inter_op_threads`` defaults to 1 when ``threads`` is given (the graph is one chain of large ops);
    ``xla`` turns on XLA auto-clustering, which on CPU also needs ``TF_XLA_FLAGS=--tf_xla_cpu_global_jit``
    in the environment before TensorFlow starts (measure it: see docs/BENCHMARKS.md).

    Grappler optimises each graph once (one pass of its optimizers, not two) and leaves out its layout and memory
    optimizers, which rewrite for GPUs: a RefineNet ResNet-101 training run reached its first update about 3 s
    sooner (10 s to 7 s), with the same fused kernels (the remapper still runs)."""
    if threads is not None and threads < 1:
        raise ConfigError(f"{parameter('threads')} must be at least 1, got {threads}")
    if xla and XLA_CPU_FLAG not in os.environ.get("TF_XLA_FLAGS", ""):
        raise ConfigError(f"XLA on CPU needs TF_XLA_FLAGS={XLA_CPU_FLAG} set before TensorFlow is imported")
    config = v1.ConfigProto()
    rewrites = config.graph_options.rewrite_options
    rewrites.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    rewrites.layout_optimizer = rewriter_config_pb2.RewriterConfig.OFF
    rewrites.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
    if threads:
        config.intra_op_parallelism_threads = threads
        config.inter_op_parallelism_threads = inter_op_threads or 1
    elif inter_op_threads:
        config.inter_op_parallelism_threads = inter_op_threads
    if xla:
        config.graph_options.optimizer_options.global_jit_level = v1.OptimizerOptions.ON_1
    return config


def new_session(graph: tf.Graph, threads: int | None = None, inter_op_threads: int | None = None,
                xla: bool = False) -> v1.Session:
    """A session on ``graph`` with :func:`session_config`'s settings."""
    return v1.Session(graph=graph, config=session_config(threads, inter_op_threads, xla))
