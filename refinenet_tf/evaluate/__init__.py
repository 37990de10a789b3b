"""Evaluation: confusion-matrix metrics, the data-set evaluator, results files and reports (prediction itself is
:mod:`refinenet_tf.predict`)."""
