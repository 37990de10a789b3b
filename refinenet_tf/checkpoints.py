"""Checkpoints: find them, restore them strictly with clear messages, and save snapshots safely.

Snapshots are DeepLab-style ``model.ckpt-<step>`` files in one directory, listed by TensorFlow's
``checkpoint`` state file, with the model description (``model.json``) beside them.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from refinenet_tf.description import ModelDescription, write_text_atomically
from refinenet_tf.errors import CheckpointError
from refinenet_tf.models.registry import is_backbone_variable, is_classifier_variable

v1 = tf.compat.v1

SNAPSHOT_PREFIX = "model.ckpt"
STATE_FILE = "checkpoint"
KEEP_SNAPSHOTS = 10
_TEMPORARY_MARK = ".tmp-"
_CHECKPOINT_SUFFIX = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")
_MAX_LISTED = 5
_TF_ERROR_FRAME = ("Graph execution error", "Detected at node", "File ", "Node:", "[[", "Hint:")
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreReport:
    """What :func:`restore` did, by variable name."""

    checkpoint: str
    restored: tuple[str, ...]
    fresh: tuple[str, ...]  # model variables left at their initial values
    unused: tuple[str, ...]  # checkpoint variables the model does not have


def resolve_checkpoint(path: str) -> str:
    """The checkpoint prefix for ``path``: a prefix (``.../model.ckpt-100``), one of its files, or a directory."""
    if not path:
        raise CheckpointError("no checkpoint path given")
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"{path}: the directory holds no checkpoint (no usable 'checkpoint' state file)")
        return latest
    prefix = _CHECKPOINT_SUFFIX.sub("", path)
    if os.path.isfile(prefix + ".index") or os.path.isfile(prefix):  # TF2-style files or a TF1 single file
        return prefix
    raise CheckpointError(f"{path}: checkpoint not found (expected {prefix}.index or a directory of snapshots)")


def latest_snapshot(snapshot_dir: str) -> str | None:
    """The newest snapshot in ``snapshot_dir``, or None when there is none yet."""
    if not os.path.isdir(snapshot_dir):
        return None
    return tf.train.latest_checkpoint(snapshot_dir)


def checkpoint_shapes(path: str) -> dict[str, list[int]]:
    """``{variable name: shape}`` of every tensor in a checkpoint."""
    prefix = resolve_checkpoint(path)
    try:
        return tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError(f"{prefix}: cannot read the checkpoint ({_first_line(error)})") from None


def restore(session: v1.Session, path: str, variables: Sequence[tf.Variable],
            skip_classifier: bool = False) -> RestoreReport:
    """Load ``variables`` from a checkpoint, strictly.

    Every variable must be in the checkpoint with the same shape, except the classifier when
    ``skip_classifier`` (``--not-restore-last``), and the decoder when the checkpoint holds backbone
    variables only (an ImageNet initialisation). Skipped variables keep their current values.
    Checkpoint variables the model lacks (optimizer slots, other heads) are logged.
    """
    prefix = resolve_checkpoint(path)
    reader = _open_reader(prefix)
    shapes = reader.get_variable_to_shape_map()
    by_name = {variable.op.name: variable for variable in variables}
    wanted = {name: variable for name, variable in by_name.items()
              if not (skip_classifier and is_classifier_variable(name))}
    _check_shapes(prefix, wanted, shapes, skip_classifier)
    fresh = sorted(set(by_name) - set(wanted))
    missing = sorted(name for name in wanted if name not in shapes)
    if missing:
        fresh += _allow_backbone_only(prefix, wanted, missing, shapes)
    loadable = {name: variable for name, variable in wanted.items() if name in shapes}
    _assign(session, loadable, reader)
    unused = sorted(set(shapes) - set(by_name))
    report = RestoreReport(prefix, tuple(sorted(loadable)), tuple(sorted(fresh)), tuple(unused))
    _log_report(report)
    return report


def save_snapshot(saver: v1.train.Saver, session: v1.Session, snapshot_dir: str, step: int,
                  description: ModelDescription, keep: int = KEEP_SNAPSHOTS) -> str:
    """Write ``snapshot_dir/model.ckpt-<step>`` and ``model.json``; returns the checkpoint prefix.

    The files are written under a temporary name and renamed (data first, the index last), and only
    then is the ``checkpoint`` state file replaced atomically: a kill at any moment leaves the previous
    snapshot listed and complete. Only the newest ``keep`` snapshots are kept. A failed write (a full
    disk, say) removes its partial files and raises :class:`CheckpointError` naming the intact snapshot.
    """
    name = f"{SNAPSHOT_PREFIX}-{step}"
    previous = _listed_snapshots(snapshot_dir) if os.path.isdir(snapshot_dir) else []
    kept = ([p for p in previous if p != name][-(keep - 1):] if keep > 1 else []) + [name]
    try:
        os.makedirs(snapshot_dir, exist_ok=True)
        _remove_files(glob.glob(os.path.join(snapshot_dir, _TEMPORARY_MARK + SNAPSHOT_PREFIX + "*")))
        _write_snapshot_files(saver, session, snapshot_dir, name)
        description.save(snapshot_dir)
        _write_state(snapshot_dir, kept)
    except (OSError, tf.errors.OpError) as error:
        _remove_files(glob.glob(os.path.join(snapshot_dir, _TEMPORARY_MARK + SNAPSHOT_PREFIX + "*")))
        if name not in previous:
            _remove_files(glob.glob(glob.escape(os.path.join(snapshot_dir, name)) + ".*"))
        raise _save_error(snapshot_dir, name, previous, error) from None
    for old in previous:
        if old not in kept:
            _remove_files(glob.glob(glob.escape(os.path.join(snapshot_dir, old)) + ".*"))
    return os.path.join(snapshot_dir, name)


def _write_snapshot_files(saver: v1.train.Saver, session: v1.Session, snapshot_dir: str, name: str) -> None:
    """Save under a temporary name, then rename each file into place, the index last."""
    temporary = os.path.join(snapshot_dir, _TEMPORARY_MARK + name)
    saver.save(session, temporary, write_meta_graph=False, write_state=False)
    files = sorted(glob.glob(glob.escape(temporary) + ".*"), key=lambda file: file.endswith(".index"))
    for file in files:
        os.replace(file, os.path.join(snapshot_dir, name + file[len(temporary):]))


def _save_error(snapshot_dir: str, name: str, previous: Sequence[str], error: Exception) -> CheckpointError:
    """A one-line message: what failed, whether the disk is full, and which snapshot is still good."""
    if _is_disk_full(error):
        problem = "the disk is full (no space left on device); free some space"
    else:
        problem = f"{_error_reason(error)}; fix the problem"
    intact = (f"the previous snapshot {os.path.join(snapshot_dir, previous[-1])} is intact"
              if previous else "there is no earlier snapshot")
    return CheckpointError(f"{snapshot_dir}: cannot save {name}: {problem} and run the same command to resume; "
                           f"{intact}")


def _is_disk_full(error: Exception) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = (getattr(error, "message", None) or str(error)).lower()
    return "no space left" in text or "quota exceeded" in text


def _error_reason(error: Exception) -> str:
    """The informative line of an OSError or of a TensorFlow error (skipping its 'Graph execution' frame)."""
    text = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_TF_ERROR_FRAME)]
    return (useful or lines or [type(error).__name__])[0]


def step_of(prefix: str) -> int | None:
    """The step number at the end of ``model.ckpt-<step>``, if any."""
    found = re.search(r"-(\d+)$", prefix)
    return int(found.group(1)) if found else None


def _open_reader(prefix: str):
    try:
        return tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError(f"{prefix}: cannot read the checkpoint ({_first_line(error)})") from None


def _check_shapes(prefix: str, wanted: dict[str, tf.Variable], shapes: dict[str, list[int]],
                  skip_classifier: bool) -> None:
    for name, variable in sorted(wanted.items()):
        if name not in shapes:
            continue
        model_shape = variable.shape.as_list()
        saved_shape = list(shapes[name])
        if model_shape == saved_shape:
            continue
        message = (f"{prefix}: variable {name} has shape {saved_shape} in the checkpoint "
                   f"but {model_shape} in the model")
        if is_classifier_variable(name) and not skip_classifier:
            if saved_shape[:-1] == model_shape[:-1]:
                message += f"; the checkpoint has {saved_shape[-1]} classes, the model {model_shape[-1]} (--num-classes)"
            message += "; use --not-restore-last to train a new classifier"
        else:
            message += " (a different architecture or layout: check --arch, --stride-on)"
        raise CheckpointError(message)


def _allow_backbone_only(prefix: str, wanted: dict[str, tf.Variable], missing: list[str],
                         shapes: dict[str, list[int]]) -> list[str]:
    """Accept missing decoder variables when the checkpoint is a backbone initialisation; else fail."""
    decoder_in_checkpoint = any(name in shapes for name in wanted if not is_backbone_variable(name))
    missing_backbone = [name for name in missing if is_backbone_variable(name)]
    backbone_in_checkpoint = any(name in shapes for name in wanted if is_backbone_variable(name))
    if decoder_in_checkpoint or missing_backbone or not backbone_in_checkpoint:
        listed = ", ".join(missing[:_MAX_LISTED]) + (f" and {len(missing) - _MAX_LISTED} more"
                                                      if len(missing) > _MAX_LISTED else "")
        raise CheckpointError(f"{prefix}: {len(missing)} model variables are not in the checkpoint: {listed} "
                              "(a different architecture? check --arch)")
    _LOG.info("%s holds backbone weights only: the %d decoder variables start freshly initialised",
              prefix, len(missing))
    return missing


def _assign(session: v1.Session, variables: dict[str, tf.Variable], reader) -> None:
    """Set the variables' values with one run of their initializers (adds no op to the graph)."""
    if not variables:
        return
    feed = {}
    for name, variable in variables.items():
        feed[variable.initializer.inputs[1]] = np.asarray(reader.get_tensor(name),
                                                          dtype=variable.dtype.base_dtype.as_numpy_dtype)
    session.run([variable.initializer for variable in variables.values()], feed_dict=feed)


def _log_report(report: RestoreReport) -> None:
    _LOG.info("restored %d variables from %s", len(report.restored), report.checkpoint)
    if report.fresh:
        _LOG.info("not restored (freshly initialised): %s", _summarise(report.fresh))
    if report.unused:
        _LOG.info("in the checkpoint but not used by the model: %s", _summarise(report.unused))


def _summarise(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _listed_snapshots(snapshot_dir: str) -> list[str]:
    state = tf.train.get_checkpoint_state(snapshot_dir)
    if state is None:
        return []
    return [os.path.basename(path) for path in state.all_model_checkpoint_paths]


def _write_state(snapshot_dir: str, names: Sequence[str]) -> None:
    """Replace the ``checkpoint`` state file atomically; the last name is the latest snapshot."""
    lines = [f'model_checkpoint_path: "{names[-1]}"'] + [f'all_model_checkpoint_paths: "{n}"' for n in names]
    write_text_atomically(os.path.join(snapshot_dir, STATE_FILE), "\n".join(lines) + "\n")


def _remove_files(paths: Sequence[str]) -> None:
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _first_line(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
