"""Data-parallel training with TensorFlow's distribution strategies, in graph mode with sessions.

One machine: ``tf.compat.v1.distribute.MirroredStrategy`` over the chosen devices. Several machines:
``MultiWorkerMirroredStrategy`` configured by the ``TF_CONFIG`` environment variable, with an in-process
``tf.distribute.Server`` that the session connects to. Each global batch is split evenly between the
replicas; every replica builds the model and its loss on its share, scaled by 1/replicas because the v1
optimisers sum the replicas' gradients, so the update equals the one-device update on the whole batch.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.train.optimizer import TrainOps

v1 = tf.compat.v1

ALL_DEVICES = "all"
DEVICES_HELP = ("'all' (every GPU, else the CPU), a number N (the first N GPUs), or a comma-separated device "
                "list such as /gpu:0,/gpu:2; with TF_CONFIG set, each machine uses its GPUs (else its CPU)")

# step_fn(images, labels, loss_factor) -> (logits, loss, train ops); the loss it returns is unscaled.
StepFunction = Callable[[tf.Tensor, tf.Tensor, float], tuple[tf.Tensor, tf.Tensor, TrainOps]]


@dataclass(frozen=True)
class Placement:
    """Where a run trains: its strategy (None: the plain one-device graph), how many replicas in all,
    whether this process writes checkpoints, and the session target (a server's address, or local)."""

    strategy: object | None
    replicas: int
    is_chief: bool
    target: str = ""
    session_config: v1.ConfigProto | None = None
    server: object | None = None  # keeps a multi-worker run's server alive


@dataclass(frozen=True)
class ReplicatedStep:
    """The training step built on every replica: the first replica's images, labels and logits (for
    summaries), the loss averaged over replicas, the train ops of all replicas, and the input initialiser."""

    images: tf.Tensor
    labels: tf.Tensor
    logits: tf.Tensor
    loss: tf.Tensor
    train_ops: TrainOps
    input_initializer: tf.Operation


def cluster_from_environment() -> dict | None:
    """The parsed ``TF_CONFIG`` when it describes more than one task, else None."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        setting = json.loads(text)
        tasks = sum(len(addresses) for addresses in setting.get("cluster", {}).values())
        task_type, task_index = setting["task"]["type"], int(setting["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"TF_CONFIG is not a valid cluster description ({error}); see docs/DISTRIBUTED.md") from None
    if task_type not in ("chief", "worker"):
        raise ConfigError(f"TF_CONFIG task type must be 'chief' or 'worker', got {task_type!r}")
    if task_index >= len(setting["cluster"].get(task_type, [])):
        raise ConfigError(f"TF_CONFIG task {task_type} {task_index} is not listed in its cluster")
    return setting if tasks > 1 else None


def resolve_devices(devices: str = ALL_DEVICES) -> list[str]:
    """The device names a ``--devices`` value means on this machine (see :data:`DEVICES_HELP`)."""
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    text = (devices or ALL_DEVICES).strip()
    if text == ALL_DEVICES:
        return gpus or [tf.config.list_logical_devices("CPU")[0].name]
    if text.isdigit():
        count = int(text)
        if not gpus:
            raise ConfigError(f"{parameter('devices')} {count} asks for {count} GPU{'' if count == 1 else 's'} but this machine "
                              f"has none visible; use {parameter('devices')} all (the CPU) or a device list such as /cpu:0 "
                              "(see docs/DISTRIBUTED.md)")
        if not 1 <= count <= len(gpus):
            raise ConfigError(f"{parameter('devices')} {count}: {len(gpus)} GPU(s) are visible; give 1 to {len(gpus)} or "
                              "a device list such as /cpu:0")
        return gpus[:count]
    known = {_canonical(device.name): device.name for device in tf.config.list_logical_devices()}
    chosen = []
    for name in (part.strip() for part in text.split(",")):
        if _canonical(name) not in known:
            raise ConfigError(f"{parameter('devices')}: no device {name!r}; visible: {', '.join(known.values())}")
        chosen.append(known[_canonical(name)])
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"{parameter('devices')} lists a device twice: {text}")
    return chosen


def make_placement(devices: str = ALL_DEVICES, base_config: v1.ConfigProto | None = None) -> Placement:
    """Choose the strategy for ``--devices`` and ``TF_CONFIG``; call it inside the training graph.

    One device (the default one when there are no GPUs or a single GPU) keeps the plain graph.
    """
    base_config = base_config or v1.ConfigProto()
    logical_cpus = len(tf.config.list_logical_devices("CPU"))
    if logical_cpus > 1:  # a session sees one CPU device unless told about the logical ones
        base_config.device_count["CPU"] = logical_cpus
    cluster = cluster_from_environment()
    if cluster is not None:
        return _multi_worker_placement(base_config)
    chosen = resolve_devices(devices)
    if len(chosen) == 1 and (devices or ALL_DEVICES).strip() == ALL_DEVICES:
        return Placement(None, 1, True, session_config=base_config)
    strategy = v1.distribute.MirroredStrategy(chosen)
    return Placement(strategy, strategy.num_replicas_in_sync, True, session_config=base_config)


def check_batch_size(batch_size: int, replicas: int) -> None:
    """The global batch must split evenly between the replicas."""
    if batch_size % replicas:
        raise ConfigError(f"{parameter('batch_size')} {batch_size} (the global batch) must be a multiple of the number of "
                          f"replicas, {replicas}")


def strategy_scope(placement: Placement):
    """The strategy's scope (variables created inside are mirrored), or nothing for the plain graph."""
    return placement.strategy.scope() if placement.strategy is not None else contextlib.nullcontext()


def replicate(placement: Placement, dataset: tf.data.Dataset, step_fn: StepFunction) -> ReplicatedStep:
    """Build ``step_fn`` on each replica's share of every global batch of ``dataset`` and merge the results.

    Call inside :func:`strategy_scope`. Each replica's gradients come from its loss times 1/replicas.
    """
    strategy = placement.strategy
    if strategy is None:
        iterator = v1.data.make_initializable_iterator(dataset)
        images, labels = iterator.get_next()
        logits, loss, train_ops = step_fn(images, labels, 1.0)
        return ReplicatedStep(images, labels, logits, loss, train_ops, iterator.initializer)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    iterator = strategy.make_dataset_iterator(dataset.with_options(options))
    loss_factor = 1.0 / strategy.num_replicas_in_sync

    def replica_step(batch):
        images, labels = batch
        logits, loss, ops = step_fn(images, labels, loss_factor)
        return images, labels, logits, loss, ops.accumulate, ops.apply, ops.reset_momentum, ops.accumulate_steps

    results = strategy.extended.call_for_each_replica(replica_step, args=(iterator.get_next(),))
    images, labels, logits = (strategy.experimental_local_results(value)[0] for value in results[:3])
    loss = strategy.reduce(tf.distribute.ReduceOp.MEAN, results[3], axis=None)
    accumulate = None if _first(strategy, results[4]) is None else _group(strategy, results[4], "accumulate")
    train_ops = TrainOps(accumulate, _group(strategy, results[5], "apply"),
                         _group(strategy, results[6], "reset_momentum"), _first(strategy, results[7]))
    return ReplicatedStep(images, labels, logits, loss, train_ops, iterator.initializer)


def collect_new(collection: str) -> Callable[[], list]:
    """Returns a function giving the items added to graph ``collection`` since this call.

    Replicas are built one after another, so this picks out one replica's batch-norm update ops.
    """
    before = len(v1.get_collection(collection))
    return lambda: v1.get_collection(collection)[before:]


def _multi_worker_placement(base_config: v1.ConfigProto) -> Placement:
    strategy = v1.distribute.experimental.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    config = strategy.update_config_proto(base_config)
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                  task_index=resolver.task_id, config=config, start=True)
    return Placement(strategy, strategy.num_replicas_in_sync, bool(strategy.extended.should_checkpoint),
                     server.target, config, server)


def _first(strategy, value):
    return strategy.experimental_local_results(value)[0]


def _group(strategy, per_replica, name: str) -> tf.Operation:
    return tf.group(*strategy.experimental_local_results(per_replica), name=f"all_replicas_{name}")


def _canonical(name: str) -> str:
    """'/gpu:0', 'GPU:0' and '/job:localhost/replica:0/task:0/device:GPU:0' -> 'gpu:0'."""
    return name.rsplit("/", 1)[-1].lower().replace("device:", "")


def first_copies(placement: Placement, variables: list) -> list:
    """Each variable's first-replica copy (named as the variable), which a restore loads directly."""
    if placement.strategy is None:
        return list(variables)
    return [placement.strategy.experimental_local_results(variable)[0] for variable in variables]


def copy_first_to_all(placement: Placement, variables: list) -> tf.Operation | None:
    """An op giving every replica's copy of ``variables`` the first copy's value (after a restore)."""
    if placement.strategy is None:
        return None
    copies = [placement.strategy.experimental_local_results(variable) for variable in variables]
    return tf.group(*[other.assign(group[0].read_value()) for group in copies for other in group[1:]],
                    name="copy_first_replica_to_all")
