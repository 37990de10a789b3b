"""Segment a whole archive of images on Apache Beam (``python -m refinenet_tf segment-archive``).

The same per-image work as ``inference.py`` (:class:`refinenet_tf.predict.segment.ImageSegmenter`), spread over
Beam workers: :mod:`.job` says what a worker needs, :mod:`.inputs` finds and reads the images, :mod:`.outputs`
plans and publishes each image's files atomically, :mod:`.handler` is the ``RunInference`` model handler,
:mod:`.pipeline` builds and runs the pipeline on the runner :mod:`.runner` picks, and :mod:`.watch` shows a local
run's progress. Importing this package alone does not need Beam; its modules do.
"""

from __future__ import annotations

import importlib.util

from refinenet_tf.errors import ConfigError

INSTALL_HINT = 'pip install "refinenet_tf[beam]"'


def require_beam() -> None:
    """Raise a ConfigError naming the install command when Apache Beam is missing."""
    if importlib.util.find_spec("apache_beam") is None:
        raise ConfigError(f"segmenting an archive needs Apache Beam, which is not installed: {INSTALL_HINT}")
