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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from refinenet_tf.architectures import is_backbone_variable, is_classifier_variable
from refinenet_tf.defaults import KEEP_SNAPSHOTS
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import CheckpointError, parameter
from refinenet_tf.files import write_text_atomically
from refinenet_tf.weights.source import describe_names

v1 = tf.compat.v1

SNAPSHOT_PREFIX = "model.ckpt"
STATE_FILE = "checkpoint"
_TEMPORARY_MARK = ".tmp-"
_CHECKPOINT_SUFFIX = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")
_MAX_LISTED = 5
_TF_ERROR_FRAME = ("Graph execution error", "Detected at node", "File ", "Node:", "[[", "Hint:")
_LOG = logging.getLogger(__name__)
_GROUPS = ("backbone", "decoder", "classifier")
_TRAINING_STATE = re.compile(r"(/Momentum(_\d+)?|/Adam(_\d+)?|^beta[12]_power(_\d+)?)$")


@dataclass(frozen=True)
class RestoreReport:
    """What a restore did, by variable name."""

    checkpoint: str
    restored: tuple[str, ...]
    fresh: tuple[str, ...]  # model variables left at their initial values
    unused: tuple[str, ...]  # checkpoint variables the model does not have

    def summary(self) -> str:
        """One line: restored and initialised counts by group, and what the checkpoint held that was not used."""
        line = f"restored {len(self.restored)} variables from {self.checkpoint} ({_by_group(self.restored)})"
        if self.fresh:
            line += f"; initialised {len(self.fresh)} ({_by_group(self.fresh, skip_empty=True)})"
        if self.unused:
            state = [name for name in self.unused if is_training_state(name)]
            others = [name for name in self.unused if not is_training_state(name)]
            parts = [f"{_scopes(others)} ({len(others)} variables)"] if others else []
            parts += [f"optimizer state and step ({len(state)} variables)"] if state else []
            line += "; not used from the checkpoint: " + ", ".join(parts)
        return line


def variable_name(variable: tf.Variable) -> str:
    """The variable's name without ``:0``: its name in checkpoints, the same on every replica of a distribution
    strategy (where ``variable.op.name`` names the replica's own copy)."""
    return variable.name.rsplit(":", 1)[0]


def variable_group(name: str) -> str:
    """'backbone', 'classifier' or 'decoder': how a model variable is restored and reported."""
    if is_classifier_variable(name):
        return "classifier"
    return "backbone" if is_backbone_variable(name) else "decoder"


def is_training_state(name: str) -> bool:
    """True for what a trainer adds to a model's variables: optimizer slots, Adam's powers and the step."""
    return name == "global_step" or bool(_TRAINING_STATE.search(name))


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


def restore(session: v1.Session, path: str, variables: Sequence[tf.Variable]) -> RestoreReport:
    """Load every one of ``variables`` from a checkpoint, strictly: resuming a run.

    Each variable must be in the checkpoint with the same shape, else CheckpointError naming them and
    what the checkpoint holds. Checkpoint variables the model lacks are reported as unused. A run's starting
    weights (``model.ckpt-0``, global step 0) hold no optimizer state: there the optimizer's variables are left
    as they are (reported as ``fresh``), for the caller to initialise: their initial values are its state at step 0.
    """
    prefix = resolve_checkpoint(path)
    reader = open_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    by_name = _by_name(variables)
    fresh: tuple[str, ...] = ()
    if "global_step" in shapes and np.asarray(reader.get_tensor("global_step")).tolist() in (0, [0]):
        fresh = tuple(sorted(name for name in by_name if name not in shapes and is_training_state(name)))
        by_name = {name: variable for name, variable in by_name.items() if name not in fresh}
    _check_complete(prefix, _shapes_of(by_name), shapes)
    _assign(session, by_name, reader)
    report = RestoreReport(prefix, tuple(sorted(by_name)), fresh, tuple(sorted(set(shapes) - set(by_name))))
    _LOG.info("restored %d variables from %s", len(report.restored), prefix)
    return report


def check_trained_model(path: str, model_shapes: dict[str, list[int]]) -> str:
    """The checkpoint prefix, after checking it holds every model variable (``{name: shape}``) for prediction.

    A checkpoint without a RefineNet decoder (a DeepLab or ImageNet model, a converted backbone) is refused
    with one line saying what it is and what to do with it; missing or mis-shaped variables are named.
    """
    prefix = resolve_checkpoint(path)
    shapes = open_checkpoint(prefix).get_variable_to_shape_map()
    decoder = [name for name in model_shapes if variable_group(name) == "decoder"]
    if decoder and not any(name in shapes for name in decoder):
        raise CheckpointError(f"{prefix}: a {describe_names(shapes)} checkpoint with no RefineNet decoder; it can "
                              f"start training (train.py {parameter('restore_from')} {path}), then predict with the "
                              "snapshots")
    _check_complete(prefix, model_shapes, shapes)
    return prefix


def initialise_from(session: v1.Session, path: str, variables: Sequence[tf.Variable],
                    not_restore_last: bool = False) -> RestoreReport:
    """Start a model from another checkpoint: every model variable it holds, by name and shape.

    For converted, DeepLab and ImageNet backbone-only checkpoints and snapshots of other runs. Optimizer
    state and the step are never read from it. The backbone and the decoder are each restored whole or
    not at all (a checkpoint holding part of one is another architecture), and a shape clash outside the
    classifier is an error naming the variable. The classifier is restored when its shape fits, unless
    ``not_restore_last`` (``--not-restore-last``). Variables not restored, and any optimizer slot or step
    among ``variables``, keep their current values.
    """
    prefix = resolve_checkpoint(path)
    reader = open_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    by_name = {name: variable for name, variable in _by_name(variables).items() if not is_training_state(name)}
    wanted = {name: variable for name, variable in by_name.items()
              if not (not_restore_last and is_classifier_variable(name))}
    _check_shapes(prefix, _shapes_of(wanted), shapes, suggest_not_restore_last=True)
    loadable = {name: variable for name, variable in wanted.items() if name in shapes}
    if not loadable:
        raise CheckpointError(f"{prefix}: shares no variable with the model ({_holds(shapes, by_name)}); "
                              f"check {parameter('arch')}")
    for group in ("backbone", "decoder"):
        members = [name for name in by_name if variable_group(name) == group]
        held = [name for name in members if name in shapes]
        if held and len(held) < len(members):
            missing = sorted(set(members) - set(held))
            raise CheckpointError(f"{prefix}: holds {len(held)} of the model's {len(members)} {group} variables, "
                                  f"not {_summarise(missing)} ({_holds(shapes, by_name)}); check {parameter('arch')}")
    _assign(session, loadable, reader)
    report = RestoreReport(prefix, tuple(sorted(loadable)), tuple(sorted(set(by_name) - set(loadable))),
                           tuple(sorted(set(shapes) - set(by_name))))
    _LOG.info(report.summary())
    if any(variable_group(name) == "backbone" for name in report.fresh):
        _LOG.warning("%s holds no backbone: the backbone starts from random weights", prefix)
    return report


class SnapshotWriter:
    """Writes variables as one TensorFlow checkpoint, the format ``tf.train.Saver`` writes and
    ``tf.train.load_checkpoint`` reads, through a single save op.

    A Saver also builds restore ops for every variable (a fifth of a small training graph's operations, each
    costing Python time to build); snapshots are read by :func:`restore` and :func:`initialise_from` through the
    variables' initializers, so only the save op is built. Build it before the graph is finalized.
    """

    def __init__(self, values: dict[str, tf.Tensor]) -> None:
        """``values``: checkpoint name -> the tensor to save under it."""
        self.values = dict(values)
        self._prefix = v1.placeholder(tf.string, [], name="snapshot_prefix")
        names = sorted(self.values)
        self._save = tf.raw_ops.SaveV2(prefix=self._prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                                       tensors=[self.values[name] for name in names], name="save_snapshot")

    @classmethod
    def of(cls, variables: Sequence[tf.Variable]) -> SnapshotWriter:
        """A writer of ``variables`` under their names (``name`` without ``:0``)."""
        return cls({variable_name(variable): _read(variable) for variable in variables})

    def only(self, keep: Callable[[str], bool]) -> SnapshotWriter:
        """A writer of the names ``keep`` accepts, reading the same tensors."""
        return SnapshotWriter({name: value for name, value in self.values.items() if keep(name)})

    def save(self, session: v1.Session, prefix: str) -> str:
        """Write ``prefix.index`` and ``prefix.data-00000-of-00001``; returns ``prefix``."""
        session.run(self._save, {self._prefix: prefix})
        return prefix


def _read(variable: tf.Variable) -> tf.Tensor:
    """One read of a resource variable's value: the bare operation, which TensorFlow builds in a fraction of the
    Python time that ``variable.value()`` takes (that also records the read for gradients and copies shape data)."""
    return tf.raw_ops.ReadVariableOp(resource=variable.handle, dtype=variable.dtype.base_dtype)


def save_snapshot(writer: SnapshotWriter, session: v1.Session, snapshot_dir: str, step: int,
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
        _write_snapshot_files(writer, session, snapshot_dir, name)
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


def _write_snapshot_files(writer: SnapshotWriter, session: v1.Session, snapshot_dir: str, name: str) -> None:
    """Save under a temporary name, then rename each file into place, the index last."""
    temporary = os.path.join(snapshot_dir, _TEMPORARY_MARK + name)
    writer.save(session, temporary)
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


def open_checkpoint(prefix: str):
    """A reader of the checkpoint's tensors (``get_tensor(name)``), with a clear error for unreadable files."""
    try:
        return tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError(f"{prefix}: cannot read the checkpoint ({_first_line(error)})") from None


def _check_complete(prefix: str, model_shapes: dict[str, list[int]], shapes: dict[str, list[int]]) -> None:
    """Every model variable in the checkpoint, with its shape; else CheckpointError naming them."""
    _check_shapes(prefix, model_shapes, shapes)
    missing = sorted(name for name in model_shapes if name not in shapes)
    if missing:
        raise CheckpointError(f"{prefix}: {len(missing)} variables are not in the checkpoint: "
                              f"{_summarise(missing)} ({_what_is_missing(missing, shapes, model_shapes)})")


def _check_shapes(prefix: str, wanted: dict[str, list[int]], shapes: dict[str, list[int]],
                  suggest_not_restore_last: bool = False) -> None:
    for name, model_shape in sorted(wanted.items()):
        if name not in shapes:
            continue
        model_shape = list(model_shape)
        saved_shape = list(shapes[name])
        if model_shape == saved_shape:
            continue
        message = (f"{prefix}: variable {name} has shape {saved_shape} in the checkpoint "
                   f"but {model_shape} in the model")
        if is_classifier_variable(name):
            if saved_shape[:-1] == model_shape[:-1]:
                message += f"; the checkpoint has {saved_shape[-1]} classes, the model {model_shape[-1]} ({parameter('num_classes')})"
            if suggest_not_restore_last:
                message += f"; use {parameter('not_restore_last')} to train a new classifier"
        else:
            message += f" (a different architecture or layout: check {parameter('arch')}, {parameter('stride_on')})"
        raise CheckpointError(message)


def _assign(session: v1.Session, variables: dict[str, tf.Variable], reader) -> None:
    """Set the variables' values with one run of their initializers (adds no op to the graph)."""
    if not variables:
        return
    feed = {}
    for name, variable in variables.items():
        feed[variable.initializer.inputs[1]] = np.asarray(reader.get_tensor(name),
                                                          dtype=variable.dtype.base_dtype.as_numpy_dtype)
    session.run([variable.initializer for variable in variables.values()], feed_dict=feed)


def _by_name(variables: Sequence[tf.Variable]) -> dict[str, tf.Variable]:
    return {variable.op.name: variable for variable in variables}


def _shapes_of(variables: dict[str, tf.Variable]) -> dict[str, list[int]]:
    return {name: variable.shape.as_list() for name, variable in variables.items()}


def _holds(shapes: dict[str, list[int]], model: dict) -> str:
    """'it holds X weights, the model is Y': what a checkpoint looks like, from its variable names."""
    return f"it holds {describe_names(shapes)} weights, the model is {describe_names(model)}"


def _what_is_missing(missing: Sequence[str], shapes: dict[str, list[int]], model: dict) -> str:
    if all(is_training_state(name) for name in missing):
        return (f"the checkpoint has no optimizer state for them: it was written with another {parameter('optimizer')} "
                f"or by another program; resume with the same settings or start a new {parameter('snapshot_dir')}")
    return _holds(shapes, model)


def _by_group(names: Sequence[str], skip_empty: bool = False) -> str:
    counts = {group: sum(1 for name in names if variable_group(name) == group) for group in _GROUPS}
    return ", ".join(f"{group} {count}" for group, count in counts.items() if count or not skip_empty)


def _scopes(names: Sequence[str]) -> str:
    """The distinct layer scopes of ``names`` (``fc1_voc12_c0, fc1_voc12_c1, ...``), a few at most."""
    return _summarise(list(dict.fromkeys(name.rsplit("/", 1)[0] for name in names)))


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
