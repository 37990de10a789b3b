"""RefineNet and Light-Weight RefineNet semantic segmentation in TensorFlow (graph mode).

``from refinenet_tf import RefineNet`` gives the high-level API; it is imported on first use, so
``import refinenet_tf`` alone does not load TensorFlow.

Importing the library leaves the process as it is: no import hooks, no processes, stderr untouched. The
commands keep TensorFlow's start-up log lines off stderr themselves; a program using the API can ask for the
same with :func:`quiet` before TensorFlow is imported (see :mod:`refinenet_tf.tf_quiet`).
"""

from __future__ import annotations

from refinenet_tf.version import __version__

__all__ = ["RefineNet", "__version__", "quiet"]


def quiet() -> None:
    """Keep TensorFlow's start-up log lines (absl's banner, CUDA and oneDNN notices) off stderr, as the commands
    do; every other byte written to stderr passes unchanged and in order. Call it before TensorFlow is first
    imported: it does nothing once TensorFlow is loaded, or when ``REFINENET_TF_VERBOSE=1``. It routes file
    descriptor 2 through a small filter process for the rest of the program."""
    from refinenet_tf import tf_quiet  # deferred: a program that never asks loads none of it

    tf_quiet.arm()


def __getattr__(name: str):
    if name == "RefineNet":
        from refinenet_tf.api import RefineNet  # deferred: TensorFlow ('import refinenet_tf' stays light)

        return RefineNet
    raise AttributeError(f"module 'refinenet_tf' has no attribute {name!r}")
