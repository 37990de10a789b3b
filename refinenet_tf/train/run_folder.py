"""What a training command does with a snapshot folder that already holds a run: resume it, or start anew.

The run in the folder is **resumed** when the command continues it: no checkpoint to start from is named, the
named one is a snapshot of this folder, or it is the checkpoint the run in the folder started from (with the same
``not_restore_last``), and the model (architecture and class count) is the one the folder holds.

Otherwise a **new run** starts in the folder, and the earlier run's files (snapshots, ``model.json``,
``training.json``, TensorBoard events, ``best/``) move into ``<folder>/run-<time>/`` first: nothing trained is
lost. Either way one line says what happened. Where each run started is recorded in ``training.json``.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import time
from dataclasses import dataclass

from refinenet_tf import checkpoints
from refinenet_tf.defaults import TRAINING_RECORD_FILE
from refinenet_tf.description import FILE_NAME as DESCRIPTION_FILE
from refinenet_tf.description import ModelDescription, has_description, load_description
from refinenet_tf.errors import DataError
from refinenet_tf.files import write_text_atomically
from refinenet_tf.train.validation import BEST_FOLDER

_LOG = logging.getLogger(__name__)
START_KEY = "start"  # the entry of training.json recording where a run's weights came from
EARLIER_RUN_PREFIX = "run-"
# what a run writes into its folder (class_frequencies.json is a cache of the data, valid for any run)
RUN_FILES = (f"{checkpoints.SNAPSHOT_PREFIX}-*", f".tmp-{checkpoints.SNAPSHOT_PREFIX}-*", checkpoints.STATE_FILE,
             DESCRIPTION_FILE, TRAINING_RECORD_FILE, "events.out.tfevents.*", BEST_FOLDER)


def record_path(snapshot_dir: str) -> str:
    """Where the training record of the snapshots in ``snapshot_dir`` is."""
    return os.path.join(snapshot_dir, TRAINING_RECORD_FILE)


def read_record(path: str) -> dict:
    """A ``training.json``'s content, {} when there is none yet."""
    try:
        with open(path, encoding="utf-8") as stream:
            content = json.load(stream)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read the training record ({error}); fix or delete it") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: the training record is not a JSON object; fix or delete it")
    return content


def write_record_entry(snapshot_dir: str, key: str, value: object) -> None:
    """Set one entry of ``snapshot_dir/training.json`` atomically, keeping the file's other entries."""
    path = record_path(snapshot_dir)
    content = {**read_record(path), key: value}
    os.makedirs(snapshot_dir, exist_ok=True)
    write_text_atomically(path, json.dumps(content, indent=2) + "\n")


def start_record(restore_from: str | None, not_restore_last: bool) -> dict:
    """The ``training.json`` entry naming where a run's weights came from (an absolute checkpoint prefix)."""
    if not restore_from:
        return {"restore_from": None, "not_restore_last": False}
    prefix = os.path.abspath(checkpoints.resolve_checkpoint(restore_from))
    return {"restore_from": prefix, "not_restore_last": bool(not_restore_last)}


def continued_snapshot(snapshot_dir: str, restore_from: str | None = None,
                       not_restore_last: bool = False) -> tuple[str | None, str]:
    """The snapshot of ``snapshot_dir`` that a command starting from ``restore_from`` continues, and why; or
    ``(None, why not)`` when the folder holds no snapshot or the command names another starting point."""
    latest = checkpoints.latest_snapshot(snapshot_dir)
    if latest is None:
        return None, "the folder holds no snapshot"
    if not restore_from:
        return latest, "no checkpoint to start from was named"
    chosen = checkpoints.resolve_checkpoint(restore_from)
    if os.path.realpath(os.path.dirname(chosen)) == os.path.realpath(snapshot_dir):
        return chosen, f"{restore_from} is one of its snapshots"
    started, wanted = read_record(record_path(snapshot_dir)).get(START_KEY), start_record(restore_from, not_restore_last)
    if started == wanted:
        return latest, f"it started from {restore_from} too"
    earlier = started.get("restore_from") if isinstance(started, dict) else None
    if earlier == wanted["restore_from"]:
        return None, (f"it started from {restore_from} {_classifier(started.get('not_restore_last'))}, this command "
                      f"{_classifier(not_restore_last)}")
    if earlier:
        return None, f"it started from {earlier}, this command from {restore_from}"
    return None, f"it did not start from {restore_from}"


@dataclass(frozen=True)
class RunPlan:
    """What a training run does with its folder: resume ``resume_from``, or start from ``restore_from`` after
    moving the earlier run (if any) aside."""

    snapshot_dir: str
    resume_from: str | None
    restore_from: str | None
    reason: str = ""  # why the run is resumed, or why the earlier run in the folder is moved aside
    new_run: bool = False  # an earlier run in the folder is moved aside first

    def carry_out(self) -> str | None:
        """Move the earlier run aside when the plan says so and say what happened; the new ``restore_from``
        (a checkpoint of the earlier run has moved with it)."""
        if self.resume_from:
            _LOG.info("resuming from %s at step %s: the run in %s continues (%s)", self.resume_from,
                      checkpoints.step_of(self.resume_from), self.snapshot_dir, self.reason)
            return self.restore_from
        if not self.new_run:
            return self.restore_from
        start = checkpoints.resolve_checkpoint(self.restore_from) if self.restore_from else None
        moved_to = set_aside(self.snapshot_dir)
        _LOG.info("starting a new run in %s (%s); the earlier run's files are now in %s", self.snapshot_dir,
                  self.reason, moved_to)
        if start and os.path.realpath(os.path.dirname(start)) == os.path.realpath(self.snapshot_dir):
            return os.path.join(moved_to, os.path.basename(start))
        return self.restore_from


def plan_run(snapshot_dir: str, restore_from: str | None, not_restore_last: bool,
             description: ModelDescription) -> RunPlan:
    """Decide, without touching the folder, whether a run of ``description`` resumes ``snapshot_dir``'s run."""
    if restore_from:
        checkpoints.resolve_checkpoint(restore_from)  # a missing checkpoint is an error before anything moves
    resume_from, reason = continued_snapshot(snapshot_dir, restore_from, not_restore_last)
    if checkpoints.latest_snapshot(snapshot_dir) is None:
        return RunPlan(snapshot_dir, None, restore_from)
    held = load_description(snapshot_dir) if has_description(snapshot_dir) else None
    if held is not None and (held.arch, held.num_classes) != (description.arch, description.num_classes):
        reason = (f"it held {held.arch} with {held.num_classes} classes, this command trains {description.arch} "
                  f"with {description.num_classes}")
        resume_from = None
    if resume_from is not None:
        return RunPlan(snapshot_dir, resume_from, restore_from, reason)
    return RunPlan(snapshot_dir, None, restore_from, reason, new_run=True)


def set_aside(snapshot_dir: str) -> str:
    """Move the run's files in ``snapshot_dir`` into a new ``run-<time>`` folder beside them; that folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, number = os.path.join(snapshot_dir, EARLIER_RUN_PREFIX + stamp), 1
    while os.path.lexists(target):
        number += 1
        target = os.path.join(snapshot_dir, f"{EARLIER_RUN_PREFIX}{stamp}-{number}")
    os.makedirs(target)
    for pattern in RUN_FILES:
        for path in sorted(glob.glob(os.path.join(glob.escape(snapshot_dir), pattern))):
            os.replace(path, os.path.join(target, os.path.basename(path)))
    return target



def _classifier(skipped: bool) -> str:
    return "without its classifier" if skipped else "with its classifier"
