"""Prediction: from an image to labels, probabilities and files.

The prediction graph with multi-scale fusion and mirroring (``graph``; training's validation and the memory
estimate build it too), the batch-norm-folded inference graph and its precision passes (``inference_graph``), the
checkpoint ``Predictor`` every command and the API use (``predictor``), large images window by window
(``tiling``), the dense CRF (``crf``), and the ``inference.py`` driver with its writers of masks, colours and
probabilities (``segment``, ``outputs``, ``probability_files``). Scoring and reports live in
:mod:`refinenet_tf.evaluate`.
"""
