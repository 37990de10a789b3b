"""The loss of a training run (``loss``, ``class_weights`` and their options): chosen from the run's settings,
printed, and recorded in ``training.json`` beside the snapshots, where a resumed run finds what it started with."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol

from refinenet_tf import checkpoints
from refinenet_tf.architectures import OUTPUT_STRIDE
from refinenet_tf.description import ModelDescription
from refinenet_tf.train.class_weights import ClassWeights, resolve_class_weights
from refinenet_tf.train.losses import PixelLoss
from refinenet_tf.train.run_folder import read_record, record_path, write_record_entry

_LOG = logging.getLogger(__name__)
RECORD_KEY = "loss"  # the entry of training.json this module owns


class LossConfig(Protocol):
    """The training settings that choose the loss (fields of :class:`~refinenet_tf.train.trainer.TrainConfig`)."""

    description: ModelDescription
    data_dir: str
    data_list: str
    snapshot_dir: str
    on_bad_sample: str
    batch_size: int
    input_size: tuple[int, int]
    loss: str
    class_weights: str | None
    ohem_keep: float
    ohem_min_kept: int
    focal_gamma: float


@dataclass(frozen=True)
class RunLoss:
    """The loss a run minimises and its entry in ``training.json``."""

    settings: PixelLoss
    record: dict

    def save(self, snapshot_dir: str) -> None:
        """Write the entry into ``snapshot_dir/training.json`` atomically, keeping the file's other entries."""
        write_record_entry(snapshot_dir, RECORD_KEY, self.record)


def choose_loss(config: LossConfig, resume_from: str | None = None) -> RunLoss:
    """The loss ``config`` asks for, its class weights resolved (masks counted or a file read) and printed.

    When resuming from the snapshot ``resume_from`` with other settings than ``training.json`` records, one
    warning line says what changed.
    """
    names = config.description.names()
    weights = resolve_class_weights(config.class_weights, names, config.description.ignore_label, config.data_dir,
                                    config.data_list, config.snapshot_dir, skip_bad=config.on_bad_sample == "skip")
    settings = PixelLoss(config.loss, weights.weights if weights else None, config.ohem_keep, config.ohem_min_kept,
                         config.focal_gamma)
    loss = RunLoss(settings, loss_record(settings, weights, names))
    if weights is not None or settings != PixelLoss():
        _LOG.info("loss: %s", describe(loss.record))
        for line in weights.table(names) if weights else []:
            _LOG.info("  %s", line)
    _warn_if_ohem_keeps_everything(settings, config.batch_size, config.input_size)
    previous = read_record(record_path(config.snapshot_dir)).get(RECORD_KEY)
    if resume_from and isinstance(previous, dict) and previous != loss.record:
        before, after = describe(previous), describe(loss.record)
        _LOG.warning("%s was trained with %s up to step %s; this run continues with %s", config.snapshot_dir, before,
                     checkpoints.step_of(resume_from), after if after != before else f"{after} of other values")
    return loss


def loss_record(settings: PixelLoss, weights: ClassWeights | None, names: list[str]) -> dict:
    """The ``training.json`` entry of a loss: its kind, the options it uses and the class weights by name."""
    record: dict = {"loss": settings.kind}
    if settings.kind == "ohem":
        record.update(ohem_keep=settings.ohem_keep, ohem_min_kept=settings.ohem_min_kept)
    elif settings.kind == "focal":
        record.update(focal_gamma=settings.focal_gamma)
    record["class_weights"] = None if weights is None else {
        "source": weights.source, "weights": dict(zip(names, weights.weights, strict=True))}
    return record


def describe(record: dict) -> str:
    """A ``training.json`` loss entry in words: ``ohem (keep 0.25, at least 6250 pixels), class weights ...``."""
    kind = record.get("loss")
    details = {"ohem": f" (keep {record.get('ohem_keep')}, at least {record.get('ohem_min_kept')} pixels)",
               "focal": f" (gamma {record.get('focal_gamma')})"}.get(kind, "")
    weights = record.get("class_weights")
    source = weights.get("source") if isinstance(weights, dict) else None
    return f"{kind}{details}, " + (f"class weights {source}" if source else "no class weights")


def _warn_if_ohem_keeps_everything(settings: PixelLoss, batch_size: int, input_size: tuple[int, int]) -> None:
    """OHEM whose floor is at least a batch's logit pixels is plain cross-entropy: say so."""
    height, width = (math.ceil(size / OUTPUT_STRIDE) for size in input_size)
    if settings.kind == "ohem" and settings.ohem_min_kept >= batch_size * height * width:
        _LOG.warning("OHEM keeps every pixel: it keeps at least %d but a batch has %d (batch %d, logits %dx%d at "
                     "stride %d), so the loss is plain cross-entropy; lower the minimum (--ohem-min-kept, in Python "
                     "ohem_min_kept)", settings.ohem_min_kept, batch_size * height * width, batch_size, height, width,
                     OUTPUT_STRIDE)
