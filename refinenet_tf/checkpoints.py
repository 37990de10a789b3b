"""Checkpoints: find them, and restore them strictly with clear messages (:mod:`refinenet_tf.snapshots` saves them).

Snapshots are DeepLab-style ``model.ckpt-<step>`` files in one directory, listed by TensorFlow's
``checkpoint`` state file, with the model description (``model.json``) beside them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from refinenet_tf.architectures import is_backbone_variable, is_classifier_variable
from refinenet_tf.errors import CheckpointError, parameter
from refinenet_tf.weights.input_bands import is_rgb_input_kernel
from refinenet_tf.weights.source import describe_names

v1 = tf.compat.v1

SNAPSHOT_PREFIX = "model.ckpt"
STATE_FILE = "checkpoint"
_CHECKPOINT_SUFFIX = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")
_MAX_LISTED = 5
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
                    not_restore_last: bool = False,
                    adapt_input: Callable[[np.ndarray], np.ndarray] | None = None) -> RestoreReport:
    """Start a model from another checkpoint: every model variable it holds, by name and shape.

    For converted, DeepLab and ImageNet backbone-only checkpoints and snapshots of other runs. Optimizer
    state and the step are never read from it. The backbone and the decoder are each restored whole or
    not at all (a checkpoint holding part of one is another architecture), and a shape clash outside the
    classifier is an error naming the variable. The classifier is restored when its shape fits, unless
    ``not_restore_last`` (``--not-restore-last``). Variables not restored, and any optimizer slot or step
    among ``variables``, keep their current values. ``adapt_input`` turns the checkpoint's RGB first kernel
    ``[k, k, 3, filters]`` into the model's (a model of other bands, see :mod:`refinenet_tf.weights.input_bands`).
    """
    prefix = resolve_checkpoint(path)
    reader = open_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    by_name = {name: variable for name, variable in _by_name(variables).items() if not is_training_state(name)}
    wanted = {name: variable for name, variable in by_name.items()
              if not (not_restore_last and is_classifier_variable(name))}
    adapted = {} if adapt_input is None else {
        name: adapt_input for name, variable in wanted.items()
        if name in shapes and is_rgb_input_kernel(shapes[name], variable.shape.as_list())}
    _check_shapes(prefix, _shapes_of({name: v for name, v in wanted.items() if name not in adapted}), shapes,
                  suggest_not_restore_last=True)
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
    _assign(session, loadable, reader, adapted)
    for name in adapted:
        _LOG.info("%s: the checkpoint's RGB filters %s adapted to the model's %d input bands %s", name,
                  shapes[name], wanted[name].shape[2], "(RGB kept, further bands from their mean)"
                  if wanted[name].shape[2] >= 3 else "(from their sum: a grey image is R = G = B)")
    report = RestoreReport(prefix, tuple(sorted(loadable)), tuple(sorted(set(by_name) - set(loadable))),
                           tuple(sorted(set(shapes) - set(by_name))))
    _LOG.info(report.summary())
    if any(variable_group(name) == "backbone" for name in report.fresh):
        _LOG.warning("%s holds no backbone: the backbone starts from random weights", prefix)
    return report


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


def _assign(session: v1.Session, variables: dict[str, tf.Variable], reader,
            transforms: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None) -> None:
    """Set the variables' values with one run of their initializers (adds no op to the graph); ``transforms``
    change some checkpoint values on the way."""
    if not variables:
        return
    feed = {}
    for name, variable in variables.items():
        value = reader.get_tensor(name)
        if transforms and name in transforms:
            value = transforms[name](value)
        feed[variable.initializer.inputs[1]] = np.asarray(value, dtype=variable.dtype.base_dtype.as_numpy_dtype)
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


def _first_line(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
