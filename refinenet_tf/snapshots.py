"""Save snapshots safely: every model variable of a training run as one DeepLab-style ``model.ckpt-<step>``,
written under a temporary name and renamed into place, with ``model.json`` beside it and TensorFlow's
``checkpoint`` state file replaced last (:mod:`refinenet_tf.checkpoints` finds and restores them)."""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Callable, Sequence

import tensorflow as tf

from refinenet_tf.checkpoints import SNAPSHOT_PREFIX, STATE_FILE, variable_name
from refinenet_tf.defaults import KEEP_SNAPSHOTS
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import CheckpointError
from refinenet_tf.files import write_text_atomically

v1 = tf.compat.v1

_TEMPORARY_MARK = ".tmp-"
_TF_ERROR_FRAME = ("Graph execution error", "Detected at node", "File ", "Node:", "[[", "Hint:")


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
