"""RefineNet and Light-Weight RefineNet semantic segmentation in TensorFlow (graph mode).

``from refinenet_tf import RefineNet`` gives the high-level API; it is imported on first use, so
``import refinenet_tf`` alone does not load TensorFlow.

When TensorFlow is imported after ``refinenet_tf``, its start-up log lines are kept off stderr (other
output passes unchanged); set ``REFINENET_TF_VERBOSE=1`` or call ``refinenet_tf.tf_quiet.set_verbose()``
to see them, see :mod:`refinenet_tf.tf_quiet`.
"""

from __future__ import annotations

from refinenet_tf import tf_quiet
from refinenet_tf.version import __version__

tf_quiet.arm()
__all__ = ["RefineNet", "__version__"]


def __getattr__(name: str):
    if name == "RefineNet":
        from refinenet_tf.api import RefineNet  # deferred: TensorFlow ('import refinenet_tf' stays light)

        return RefineNet
    raise AttributeError(f"module 'refinenet_tf' has no attribute {name!r}")
