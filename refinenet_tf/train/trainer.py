"""The training session loop shared by train.py, train_msc.py and the Python API.

``Trainer(config).run()`` builds its own graph, restores or resumes, and trains to ``num_steps``
updates, writing snapshots ``model.ckpt-<step>`` (weights after ``step`` updates) with the model
description, TensorBoard summaries and progress lines. SIGINT/SIGTERM save a snapshot and stop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from refinenet_tf import checkpoints, defaults, snapshots
from refinenet_tf.checkpoints import variable_name
from refinenet_tf.data.band_statistics import fit_input_bands
from refinenet_tf.data.images import check_masks_hold_classes
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.data.reader import ON_BAD_SAMPLE, SkipCounter, reader_errors, train_dataset
from refinenet_tf.description import ModelDescription, default_description, has_description, load_description
from refinenet_tf.errors import ConfigError, TrainingError, parameter
from refinenet_tf.models.layers import DEFAULT_BATCH_NORM_DECAY
from refinenet_tf.models.model import FUSIONS, MultiScaleLogits, build_model, multiscale_logits
from refinenet_tf.progress import format_duration
from refinenet_tf.sessions import session_config
from refinenet_tf.train import distributed
from refinenet_tf.train.class_weights import check_choice as check_class_weights
from refinenet_tf.train.loss_setup import choose_loss
from refinenet_tf.train.losses import (
    check_loss_settings,
    multiscale_loss,
    segmentation_loss,
    weight_decay_loss,
)
from refinenet_tf.train.memory import check_fits_in_memory
from refinenet_tf.train.optimizer import build_train_ops
from refinenet_tf.train.precision import check_precision, loss_scale, model_precision
from refinenet_tf.train.run_folder import START_KEY, plan_run, start_record, write_record_entry
from refinenet_tf.train.schedule import make_schedule
from refinenet_tf.train.summaries import comparison_summary
from refinenet_tf.train.validation import build_validation
from refinenet_tf.train.validation import check_replicas as check_validation_replicas
from refinenet_tf.train.validation import check_settings as check_validation
from refinenet_tf.weights.input_bands import adapt_input_kernel

v1 = tf.compat.v1
_LOG = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything a training run needs; defaults are DeepLab-ResNet-TF's."""

    description: ModelDescription
    data_dir: str = defaults.DATA_DIRECTORY
    data_list: str = defaults.DATA_LIST_PATH
    snapshot_dir: str = defaults.SNAPSHOT_DIR
    batch_size: int = defaults.BATCH_SIZE
    input_size: tuple[int, int] = defaults.INPUT_SIZE  # crop (height, width)
    learning_rate: float = defaults.LEARNING_RATE
    momentum: float = defaults.MOMENTUM
    optimizer: str = "momentum"  # or "adam" (for training from random weights)
    weight_decay: float = defaults.WEIGHT_DECAY
    num_steps: int = defaults.NUM_STEPS
    power: float = defaults.POWER
    schedule: str = "poly"
    decoder_lr_mult: float = defaults.DECODER_LR_MULT
    train_batch_norm: bool = False  # batch statistics and trained scale/offset (DeepLab's --is-training)
    batch_norm_decay: float = DEFAULT_BATCH_NORM_DECAY  # moving-average decay; short runs want ~0.9-0.99
    dropout: bool = True
    random_mirror: bool = False
    random_scale: bool = False
    min_scale: float = defaults.MIN_SCALE
    max_scale: float = defaults.MAX_SCALE
    random_seed: int = defaults.RANDOM_SEED
    restore_from: str | None = None
    not_restore_last: bool = False
    save_num_images: int = defaults.SAVE_NUM_IMAGES
    save_pred_every: int = defaults.SAVE_PRED_EVERY
    log_every: int = defaults.LOG_EVERY
    on_bad_sample: str = "fail"
    threads: int | None = None
    grad_update_every: int = 1  # batches whose gradients make one update
    scales: tuple[float, ...] = (1.0,)  # more than one: multi-scale training
    fusion: str = "max"
    devices: str = distributed.ALL_DEVICES  # --devices; with TF_CONFIG set, several machines
    precision: str = "float32"  # compute type: float32, float16 or bfloat16 (variables stay float32)
    # class-balanced training: see refinenet_tf/train/losses.py and class_weights.py
    loss: str = defaults.LOSS  # cross-entropy, ohem or focal
    class_weights: str | None = None  # None, inverse-frequency, median-frequency or a weights file
    ohem_keep: float = defaults.OHEM_KEEP  # fraction of a batch's labelled pixels OHEM keeps
    ohem_min_kept: int = defaults.OHEM_MIN_KEPT  # ... but at least this many
    focal_gamma: float = defaults.FOCAL_GAMMA
    # validation during training: see refinenet_tf/train/validation.py
    val_list: str | None = None  # held-out list scored at single scale while training
    val_data_dir: str | None = None  # the folder its paths are relative to (default: data_dir)
    val_every: int | None = None  # steps between validations (default: save_pred_every)
    keep_best: bool = False  # keep the weights with the best validation mean IoU in snapshot_dir/best

    def __post_init__(self) -> None:
        for name in ("batch_size", "num_steps", "save_pred_every", "log_every", "grad_update_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{parameter(name)} must be at least 1, got {getattr(self, name)}")
        if self.save_num_images < 0:
            raise ConfigError(f"{parameter('save_num_images')} must not be negative, got {self.save_num_images}")
        if self.on_bad_sample not in ON_BAD_SAMPLE:
            raise ConfigError(f"{parameter('on_bad_sample')} must be one of {ON_BAD_SAMPLE}, got {self.on_bad_sample!r}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"{parameter('fusion')} must be one of {FUSIONS}, got {self.fusion!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"{parameter('threads')} must be at least 1, got {self.threads}")
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        self.scales = tuple(float(scale) for scale in self.scales)
        check_precision(self.precision)
        check_loss_settings(self.loss, self.ohem_keep, self.ohem_min_kept, self.focal_gamma)
        self.class_weights = check_class_weights(self.class_weights)
        check_validation(self.val_list, self.val_data_dir, self.val_every, self.keep_best)


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: the global step reached, the last loss, the last snapshot, and whether it was stopped."""

    step: int
    loss: float | None
    snapshot: str | None
    stopped: bool


@dataclass(frozen=True)
class _GraphParts:
    global_step: tf.Variable
    loss: tf.Tensor
    learning_rate: tf.Tensor
    train_ops: object
    scalar_summary: tf.Tensor
    image_summary: tf.Tensor | None
    model_variables: list
    saver_variables: list
    writer: snapshots.SnapshotWriter
    start_writer: snapshots.SnapshotWriter  # the starting weights (model.ckpt-0): the model and the step, no optimizer state
    initialise_inputs: tf.Operation  # local variables and the input pipeline
    # every global variable, under a strategy (mirrored variables start through its own ops)
    initialise_variables: tf.Operation | None = None
    sync_replicas: tf.Operation | None = None  # after a restore, gives every replica the restored values


StepCallback = Callable[[int, float], None]


class Trainer:
    """One training run; owns its graph. ``run()`` once."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.schedule = make_schedule(config.schedule, config.learning_rate, config.num_steps, config.power)
        self.skipped = SkipCounter()
        self._stop_reason: str | None = None
        self._plan = plan_run(config.snapshot_dir, config.restore_from, config.not_restore_last, config.description)
        self._resume_from = self._plan.resume_from
        self.loss = choose_loss(config, self._resume_from)
        self._samples = read_list_file(config.data_dir, config.data_list)
        self.config = config = dataclasses.replace(config, description=fit_input_bands(
            config.description, [sample.image_path for sample in self._samples], config.data_list))
        self.graph = tf.Graph()
        with self.graph.as_default():
            threads = session_config(config.threads, inter_op_threads=config.threads)
            self._placement = distributed.make_placement(config.devices, threads)
            distributed.check_batch_size(config.batch_size, self._placement.replicas)
            check_validation_replicas(config.val_list, self._placement.replicas)
            self._parts = self._build()
        self.graph.finalize()
        check_fits_in_memory(self.graph, config.input_size, config.batch_size)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to save a snapshot and stop after the current step (thread- and signal-safe)."""
        self._stop_reason = reason

    def run(self, on_step: StepCallback | None = None) -> TrainResult:
        """Train until ``num_steps`` updates or a stop request; ``on_step(step, loss)`` after every update."""
        config, parts = self.config, self._parts
        placement = self._placement
        with v1.Session(placement.target, graph=self.graph, config=placement.session_config) as session, \
                self._stop_on_signals():
            restore_from = self._plan.carry_out() if placement.is_chief else config.restore_from
            step = self._initialise(session, restore_from)
            if placement.is_chief:
                self.loss.save(config.snapshot_dir)
                if not self._resume_from:
                    write_record_entry(config.snapshot_dir, START_KEY,
                                       start_record(restore_from, config.not_restore_last))
            last_snapshot, loss = self._resume_from, None
            if not self._resume_from and placement.is_chief:
                # the starting weights as model.ckpt-0: what DeepLab's scripts name after one step, and a
                # resume point before the first snapshot is due; the optimizer's state is its initial one
                last_snapshot = snapshots.save_snapshot(parts.start_writer, session, config.snapshot_dir, 0,
                                                          config.description)
            writer = v1.summary.FileWriter(config.snapshot_dir)
            progress = _Progress(step, config.num_steps, config.batch_size * config.grad_update_every)
            try:
                while step < config.num_steps:
                    if step in self.schedule.stage_starts:
                        session.run(parts.train_ops.reset_momentum)
                        _LOG.info("step %d: new stage, learning rate %.3g, momentum reset", step,
                                  self.schedule.rate_at(step))
                    done = step + 1
                    snapshot_due = done % config.save_pred_every == 0 or done == config.num_steps
                    loss, summaries = self._train_step(session, done % config.log_every == 0, snapshot_due)
                    if not math.isfinite(loss):
                        raise TrainingError(
                            f"the loss became {loss} at step {done}; stopped without saving, the last good "
                            f"snapshot is {last_snapshot or 'none'} (try a lower {parameter('learning_rate')})")
                    step = done
                    for summary in summaries:
                        writer.add_summary(summary, step)
                    if step % config.log_every == 0 or step == config.num_steps:
                        _LOG.info(progress.line(step, loss, self.schedule.rate_at(step - 1)))
                    if on_step is not None:
                        on_step(step, loss)
                    if (snapshot_due or self._stop_reason) and placement.is_chief:
                        last_snapshot = snapshots.save_snapshot(parts.writer, session, config.snapshot_dir, step,
                                                                  config.description)
                        _LOG.info("saved %s", last_snapshot)
                    if self._validation is not None and placement.is_chief and not self._stop_reason:
                        self._validation.after_step(session, step, writer)
                    if self._stop_reason:
                        _LOG.info("%s: stopped at step %d; run the same command to resume", self._stop_reason, step)
                        break
            finally:
                writer.close()
        if self.skipped.count:
            _LOG.warning("%d bad samples were skipped", self.skipped.count)
        return TrainResult(step, loss, last_snapshot, self._stop_reason is not None)

    # --- graph ------------------------------------------------------------------------------------------

    def _build(self) -> _GraphParts:
        config, description = self.config, self.config.description
        v1.set_random_seed(config.random_seed)
        samples = self._samples
        check_masks_hold_classes([sample.mask_path for sample in samples if sample.mask_path], description.ignore_label,
                                 config.data_list)
        dataset = train_dataset(
            samples, description.preprocessing, config.input_size, config.batch_size, description.num_classes,
            description.ignore_label, random_scale=config.random_scale, random_mirror=config.random_mirror,
            min_scale=config.min_scale, max_scale=config.max_scale, seed=config.random_seed,
            on_bad_sample=config.on_bad_sample, num_parallel_calls=config.threads or tf.data.AUTOTUNE,
            skip_counter=self.skipped, start_example=self._examples_already_used())
        placement = self._placement
        with distributed.strategy_scope(placement):
            global_step = v1.train.get_or_create_global_step()
            learning_rate = self.schedule.rate(global_step)

            model_names: list[str] = []

            def replica_step(images, labels, loss_factor):
                collect_update_ops = distributed.collect_new(v1.GraphKeys.UPDATE_OPS)
                logits, loss = self._model_and_loss(images, labels)
                if not model_names:  # the variables the model made, before any optimizer slot exists
                    model_names.extend(name for name in map(variable_name, v1.global_variables())
                                       if name != variable_name(global_step))
                trainable = v1.trainable_variables()
                loss = loss + weight_decay_loss(trainable, config.weight_decay)
                update_ops = collect_update_ops() if config.train_batch_norm else []
                train_ops = build_train_ops(loss * loss_factor if loss_factor != 1.0 else loss, trainable,
                                            learning_rate, config.momentum, global_step, config.decoder_lr_mult,
                                            config.grad_update_every, update_ops, optimizer=config.optimizer,
                                            loss_scale=loss_scale(config.precision))
                return logits, loss, train_ops

            step = distributed.replicate(placement, dataset, replica_step)
            model_variables = [variable for variable in v1.global_variables()
                               if variable_name(variable) in set(model_names)]
            scalar_summary = v1.summary.merge([v1.summary.scalar("loss", step.loss),
                                               v1.summary.scalar("learning_rate", learning_rate)])
            count = min(config.save_num_images, config.batch_size // placement.replicas)
            image_summary = (comparison_summary(step.images, step.labels, step.logits, description, count)
                             if count else None)
            saver_variables = v1.global_variables()  # model, global step and momentum: a resume continues exactly
            writer = snapshots.SnapshotWriter.of(distributed.first_copies(placement, saver_variables))
            start_writer = writer.only(lambda name: name == variable_name(global_step)
                                       or not checkpoints.is_training_state(name))
            initialise_inputs = tf.group(v1.local_variables_initializer(), step.input_initializer)
            initialise_variables = v1.global_variables_initializer() if placement.strategy is not None else None
            sync_replicas = distributed.copy_first_to_all(placement, saver_variables)
        self._validation = build_validation(config, model_variables)
        return _GraphParts(global_step, step.loss, learning_rate, step.train_ops, scalar_summary,
                           image_summary, model_variables, saver_variables, writer, start_writer, initialise_inputs,
                           initialise_variables, sync_replicas)

    def _examples_already_used(self) -> int:
        """Examples the snapshot being resumed has trained on: the data stream continues after them."""
        step = checkpoints.step_of(self._resume_from) if self._resume_from else None
        return (step or 0) * self.config.batch_size * self.config.grad_update_every

    def _model_and_loss(self, images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        config, description = self.config, self.config.description
        # Dropout masks drawn from (seed, step): a resumed run draws the masks an unstopped one would.
        dropout_seed = tf.stack([tf.constant(config.random_seed, tf.int64),
                                 tf.cast(v1.train.get_or_create_global_step(), tf.int64)])
        if config.scales == (1.0,):
            with model_precision(config.precision):
                logits = build_model(images, description, dropout=config.dropout,
                                     train_batch_norm=config.train_batch_norm,
                                     batch_norm_decay=config.batch_norm_decay, dropout_seed=dropout_seed).logits
            logits = tf.cast(logits, tf.float32)
            return logits, segmentation_loss(logits, labels, description.num_classes, self.loss.settings)
        with model_precision(config.precision):
            outputs: MultiScaleLogits = multiscale_logits(images, description, config.scales, config.fusion,
                                                          dropout=config.dropout,
                                                          train_batch_norm=config.train_batch_norm,
                                                          batch_norm_decay=config.batch_norm_decay,
                                                          dropout_seed=dropout_seed)
        outputs = MultiScaleLogits(tf.cast(outputs.fused, tf.float32),
                                   tuple(tf.cast(logits, tf.float32) for logits in outputs.per_scale))
        return outputs.fused, multiscale_loss(outputs, labels, description.num_classes, self.loss.settings)

    # --- session ----------------------------------------------------------------------------------------

    def _input_adapter(self, restore_from: str) -> Callable[[np.ndarray], np.ndarray] | None:
        """How an RGB checkpoint's first kernel becomes this model's, for a model of other bands; else None."""
        preprocessing = self.config.description.preprocessing
        if preprocessing.is_rgb:
            return None
        source = (load_description(restore_from) if has_description(restore_from)
                  else default_description(self.config.description.arch)).preprocessing
        if not source.is_rgb:
            return None
        return functools.partial(adapt_input_kernel, source=source, bands=preprocessing.channels)

    def _initialise(self, session: v1.Session, restore_from: str | None) -> int:
        """Resume the snapshot folder's run or restore ``restore_from``, then initialise every variable neither
        gave a value (restored weights skip their random initialisation); the start step."""
        config, parts = self.config, self._parts
        session.run(parts.initialise_inputs)
        unset = self.graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES)
        if parts.initialise_variables is not None:
            # mirrored variables start through the strategy's own ops (collectives across workers): all, first
            session.run(parts.initialise_variables)
            unset = []
        report = None
        if self._resume_from:
            report = checkpoints.restore(session, self._resume_from, self._first_copies(parts.saver_variables))
        elif restore_from:
            report = checkpoints.initialise_from(session, restore_from, self._first_copies(parts.model_variables),
                                                 not_restore_last=config.not_restore_last,
                                                 adapt_input=self._input_adapter(restore_from))
        elif config.train_batch_norm:
            _LOG.warning("no checkpoint to start from: every weight starts from random initialisation")
        else:
            _LOG.warning("no checkpoint to start from, and batch norm is frozen: training from random weights "
                         "rarely works so; train batch norm and use Adam at one rate (--is-training --optimizer adam "
                         "--decoder-lr-mult 1; in Python train_batch_norm=True, optimizer='adam', "
                         "decoder_lr_mult=1), see the README")
        restored = set(report.restored) if report else set()
        session.run([variable.initializer for variable in unset if variable_name(variable) not in restored])
        if report:
            self._sync_replicas(session)
        return int(session.run(parts.global_step)) if self._resume_from else 0

    def _first_copies(self, variables: list) -> list:
        """The first replica's copies of ``variables``, which a restore loads."""
        return distributed.first_copies(self._placement, variables)

    def _sync_replicas(self, session: v1.Session) -> None:
        """After a restore, give every replica the first replica's values."""
        if self._parts.sync_replicas is not None:
            session.run(self._parts.sync_replicas)

    def _train_step(self, session: v1.Session, want_scalars: bool, want_images: bool) -> tuple[float, list]:
        """One update (over ``grad_update_every`` batches); (mean loss, serialized summaries)."""
        parts, ops = self._parts, self._parts.train_ops
        fetches = {"loss": parts.loss}
        if want_scalars:
            fetches["scalars"] = parts.scalar_summary
        if want_images and parts.image_summary is not None:
            fetches["images"] = parts.image_summary
        with reader_errors():
            if ops.accumulate is None:
                results = session.run({**fetches, "train": ops.apply})
                losses = [results["loss"]]
            else:
                losses = [session.run({"loss": parts.loss, "train": ops.accumulate})["loss"]
                          for _ in range(ops.accumulate_steps - 1)]
                results = session.run({**fetches, "train": ops.accumulate})
                losses.append(results["loss"])
                session.run(ops.apply)
        summaries = [results[key] for key in ("scalars", "images") if key in results]
        return float(np.mean(losses)), summaries

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """While training, the first SIGINT/SIGTERM requests a stop with a snapshot; a second one interrupts."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(number, frame):
            if self._stop_reason:
                raise KeyboardInterrupt
            self.request_stop(f"received {signal.Signals(number).name}")
            _LOG.info("%s: saving a snapshot after this step (send it again to quit at once)",
                      signal.Signals(number).name)

        previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


class _Progress:
    """Progress lines: step, loss, learning rate, images/s and the time left."""

    def __init__(self, start_step: int, num_steps: int, images_per_step: int) -> None:
        self._num_steps = num_steps
        self._images_per_step = images_per_step
        self._last_step, self._last_time = start_step, time.monotonic()

    def line(self, step: int, loss: float, learning_rate: float) -> str:
        now = time.monotonic()
        seconds_per_step = (now - self._last_time) / max(step - self._last_step, 1)
        self._last_step, self._last_time = step, now
        eta = format_duration(seconds_per_step * (self._num_steps - step))
        speed = self._images_per_step / seconds_per_step if seconds_per_step > 0 else float("inf")
        return (f"step {step}/{self._num_steps}  loss {loss:.4f}  lr {learning_rate:.3g}  "
                f"{speed:.1f} images/s  ETA {eta}")


def train(config: TrainConfig, on_step: StepCallback | None = None) -> TrainResult:
    """Build a :class:`Trainer` for ``config`` and run it."""
    return Trainer(config).run(on_step)
