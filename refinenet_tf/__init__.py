"""RefineNet and Light-Weight RefineNet semantic segmentation in TensorFlow (graph mode).

``from refinenet_tf import RefineNet`` gives the high-level API; it is imported on first use, so
``import refinenet_tf`` alone does not load TensorFlow.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["RefineNet", "__version__"]


def __getattr__(name: str):
    if name == "RefineNet":
        from refinenet_tf.api import RefineNet

        return RefineNet
    raise AttributeError(f"module 'refinenet_tf' has no attribute {name!r}")
