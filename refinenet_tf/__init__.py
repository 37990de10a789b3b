"""RefineNet and Light-Weight RefineNet semantic segmentation in TensorFlow (graph mode)."""

__version__ = "0.1.0"
