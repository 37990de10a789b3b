"""Validation during training: the current weights scored on a held-out list, in the training process.

The single-scale prediction graph of :mod:`refinenet_tf.predict.graph` (preprocessing, the model, logits
resized to the image, argmax) is built inside the training graph on the trainer's own variables
(``reuse=True``; batch norm uses its moving statistics, dropout is off) and fed by
:func:`refinenet_tf.data.reader.eval_dataset`. Mean and per-class IoU go to TensorBoard (``val/mean_iou``,
``val/iou/<class name>``) and to a progress line.

With ``keep_best`` the weights with the best mean IoU so far are kept in ``<snapshot_dir>/best/``:
``model.ckpt-<step>``, ``model.json`` and ``best.json`` (step and mean IoU), each written atomically. The
rotation of the latest snapshots never looks into that folder, and a resumed run reads ``best.json``, so
only a better score replaces the kept weights.

Validation runs on one replica: with several (``devices`` or ``TF_CONFIG``) it is refused; evaluate the
snapshots with evaluate.py instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import tensorflow as tf

from refinenet_tf import snapshots
from refinenet_tf.data.images import check_labels, load_mask
from refinenet_tf.data.listfile import Sample, read_list_file
from refinenet_tf.data.reader import eval_dataset, reader_errors
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError, DataError, parameter
from refinenet_tf.evaluate.metrics import ConfusionMatrix, Scores
from refinenet_tf.files import write_text_atomically
from refinenet_tf.predict.graph import SINGLE_SCALE, build_predictor_graph

v1 = tf.compat.v1
_LOG = logging.getLogger(__name__)

BEST_FOLDER = "best"
BEST_RECORD = "best.json"


class ValidationConfig(Protocol):
    """The training settings validation reads (a :class:`~refinenet_tf.train.trainer.TrainConfig`)."""

    description: ModelDescription
    data_dir: str
    snapshot_dir: str
    num_steps: int
    save_pred_every: int
    on_bad_sample: str
    val_list: str | None
    val_data_dir: str | None
    val_every: int | None
    keep_best: bool


@dataclass(frozen=True)
class BestRecord:
    """The best validation so far: its step and mean IoU (a fraction)."""

    step: int
    mean_iou: float


def check_settings(val_list: str | None, val_data_dir: str | None, val_every: int | None, keep_best: bool) -> None:
    """Refuse validation settings that cannot be used (ConfigError naming the parameter)."""
    if val_every is not None and val_every < 1:
        raise ConfigError(f"{parameter('val_every')} must be at least 1, got {val_every}")
    if not val_list:
        given = [name for name, value in (("val_data_dir", val_data_dir), ("val_every", val_every),
                                          ("keep_best", keep_best)) if value]
        if given:
            raise ConfigError(f"{parameter(given[0])} needs {parameter('val_list')}, the held-out list to validate on")


def best_dir(snapshot_dir: str) -> str:
    """Where ``keep_best`` keeps the best weights."""
    return os.path.join(snapshot_dir, BEST_FOLDER)


def read_best(snapshot_dir: str) -> BestRecord | None:
    """The record of the best weights kept in ``snapshot_dir``, or None when there is none."""
    path = os.path.join(best_dir(snapshot_dir), BEST_RECORD)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return BestRecord(int(data["step"]), float(data["mean_iou"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path}: cannot read the record of the best snapshot ({error}); delete the "
                          f"{BEST_FOLDER} folder to start a new record") from None


def check_replicas(val_list: str | None, replicas: int) -> None:
    """Refuse validation in a run of several replicas (ConfigError), before any graph is built."""
    if val_list and replicas > 1:
        raise ConfigError(f"{parameter('val_list')} validates on one device, but this run trains {replicas} "
                          f"replicas ({parameter('devices')} or TF_CONFIG); leave it out and evaluate the snapshots "
                          "with evaluate.py")


def build_validation(config: ValidationConfig, model_variables: list) -> Validation | None:
    """The validation of ``config`` built into the current (training) graph, or None without ``val_list``.

    Call after the model's variables exist; ``model_variables`` are what a kept best snapshot holds.
    """
    if not config.val_list:
        return None
    data_dir = config.val_data_dir or config.data_dir
    samples = read_list_file(data_dir, config.val_list)
    description = config.description
    if config.on_bad_sample == "fail":
        check_masks(samples, description.num_classes, description.ignore_label)
    return Validation(config, samples, model_variables)


def check_masks(samples: list[Sample], num_classes: int, ignore_label: int) -> None:
    """Every mask readable and holding only class indices or the ignore label, checked before training starts."""
    for sample in samples:
        if sample.mask_path is None:
            raise DataError(f"{sample.origin}: validation needs a mask for every image, this line has none")
        try:
            check_labels(load_mask(sample.mask_path), num_classes, ignore_label, sample.mask_path)
        except DataError as error:
            raise DataError(f"{error.args[0]} (listed at {sample.origin})") from None


class Validation:
    """Scores the training graph's current weights on the held-out list; see the module's description."""

    def __init__(self, config: ValidationConfig, samples: list[Sample], model_variables: list) -> None:
        self.description = config.description
        self.every = config.val_every or config.save_pred_every
        self.num_steps = config.num_steps
        self._best_dir = best_dir(config.snapshot_dir) if config.keep_best else None
        self.best = read_best(config.snapshot_dir) if config.keep_best else None
        description = self.description
        with v1.name_scope("validation"), v1.variable_scope(v1.get_variable_scope(), reuse=True):
            dataset = eval_dataset(samples, description.preprocessing, description.num_classes,
                                   description.ignore_label, config.on_bad_sample)
            self._iterator = v1.data.make_initializable_iterator(dataset)
            example = self._iterator.get_next()
            labels = build_predictor_graph(description, SINGLE_SCALE, image=example["raw"]).labels
        self._fetches = {"truth": example["label"][0], "predicted": labels}
        self._writer = snapshots.SnapshotWriter.of(model_variables) if config.keep_best else None

    def after_step(self, session: v1.Session, step: int, writer: v1.summary.FileWriter) -> None:
        """Validate when ``step`` is due (every ``every`` steps and the last one)."""
        if step % self.every and step != self.num_steps:
            return
        started = time.monotonic()
        scores, images = self.score(session)
        writer.add_summary(self._summary(scores), step)
        writer.flush()
        line = (f"step {step}/{self.num_steps}  validation mean IoU {100 * scores.mean_iou:.2f}%  "
                f"({images} images, {time.monotonic() - started:.1f} s)")
        if self._best_dir is not None:
            line += self._keep_if_best(session, step, scores.mean_iou)
        _LOG.info(line)

    def score(self, session: v1.Session) -> tuple[Scores, int]:
        """Predict every held-out image with the current weights; (scores, images scored)."""
        confusion = ConfusionMatrix(self.description.num_classes)
        images = 0
        session.run(self._iterator.initializer)
        while True:
            try:
                with reader_errors():
                    fetched = session.run(self._fetches)
            except tf.errors.OutOfRangeError:
                break
            confusion.update(fetched["truth"], fetched["predicted"])
            images += 1
        return confusion.scores(), images

    def _summary(self, scores: Scores) -> v1.Summary:
        values = [v1.Summary.Value(tag="val/mean_iou", simple_value=scores.mean_iou)]
        values += [v1.Summary.Value(tag=f"val/iou/{name}", simple_value=float(iou))
                   for name, iou in zip(self.description.names(), scores.class_iou, strict=True)
                   if not np.isnan(iou)]
        return v1.Summary(value=values)

    def _keep_if_best(self, session: v1.Session, step: int, mean_iou: float) -> str:
        """Save the weights as the new best when they beat the record; the progress line's ending."""
        best = self.best
        if math.isnan(mean_iou) or (best is not None and mean_iou <= best.mean_iou):
            return f"  best {100 * best.mean_iou:.2f}% at step {best.step}" if best else ""
        kept = snapshots.save_snapshot(self._writer, session, self._best_dir, step, self.description, keep=1)
        self.best = BestRecord(step, float(mean_iou))
        write_text_atomically(os.path.join(self._best_dir, BEST_RECORD), json.dumps(asdict(self.best), indent=2) + "\n")
        return f"  new best, kept as {kept}"
