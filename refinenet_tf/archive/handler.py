"""The ``RunInference`` model handler of an archive run: Beam loads one :class:`ArchiveSegmenter` (a Predictor)
per worker process and hands it batches of decoded images, which it segments and publishes.

Beam's own TensorFlow handlers load models with Keras, which refuses this project's checkpoints, hence this one.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import tensorflow as tf
from apache_beam.ml.inference.base import ModelHandler

from refinenet_tf.archive.job import SCRATCH_LOGITS, ArchiveJob
from refinenet_tf.archive.outputs import publish
from refinenet_tf.errors import RefineNetError
from refinenet_tf.predict.crf import CRFPool
from refinenet_tf.predict.predictor import Predictor
from refinenet_tf.predict.segment import ImageSegmenter, Segmented

METRICS_NAMESPACE = "refinenet_tf.archive"
# What one image can cause without the run being wrong: bad input, too little memory for it, a graph that refuses it.
IMAGE_ERRORS = (RefineNetError, MemoryError, tf.errors.OpError)


@dataclass(frozen=True)
class ArchiveImage:
    """A decoded image of the archive and the path it was read from."""

    path: str
    image: np.ndarray


@dataclass(frozen=True)
class Outcome:
    """What became of one image: the files published and its pixel count, or the one-line reason it failed."""

    path: str
    files: tuple[str, ...] = ()
    pixels: int = 0
    error: str | None = None

    @classmethod
    def failed(cls, path: str, error: BaseException) -> Outcome:
        """The failure of ``path``, its error on one line (without the path when the message starts with it)."""
        message = " ".join(str(error).split()) or type(error).__name__
        return cls(path, error=message.removeprefix(f"{path}: "))

    def failure_line(self) -> str:
        """``path<TAB>error``: a line of the failures file."""
        return f"{self.path}\t{self.error}"


class ArchiveSegmenter:
    """A worker's model: the job's Predictor (and CRF), segmenting batches of images into the job's output."""

    def __init__(self, job: ArchiveJob):
        self.job = job
        self.predictor = Predictor(job.checkpoint, job.description, job.options, threads=job.threads,
                                   precision=job.precision)
        self.pool = CRFPool(job.settings.crf, 1) if job.settings.crf else None  # one process: runs in this one

    def segment_batch(self, batch: Sequence[ArchiveImage]) -> list[Outcome]:
        """Segment and publish every image of ``batch``; same-size whole images go through the graph together,
        ``batch_size`` at a time, as in ``inference.py``."""
        with tempfile.TemporaryDirectory(prefix="refinenet-archive-") as scratch:
            settings = self.job.settings
            if settings.save_logits:
                settings = replace(settings, save_logits=os.path.join(scratch, SCRATCH_LOGITS))
            segmenter = ImageSegmenter(self.predictor, scratch, settings, self.pool, self.job.several)
            outcomes: dict[int, Outcome] = {}
            whole: dict[tuple[int, ...], list[int]] = {}
            for index, item in enumerate(batch):
                tile = self.predictor.tile_for(item.image.shape[:2], settings.tile)
                if tile is None:
                    whole.setdefault(item.image.shape, []).append(index)
                else:
                    work = functools.partial(segmenter.segment_tiled, item.path, item.image, tile)
                    outcomes[index] = self._publish(scratch, item, work)
            for indices in whole.values():
                for start in range(0, len(indices), settings.batch_size):
                    chunk = indices[start:start + settings.batch_size]
                    outcomes.update(self._segment_whole(scratch, segmenter, batch, chunk))
            return [outcomes[index] for index in range(len(batch))]

    def _segment_whole(self, scratch: str, segmenter: ImageSegmenter, batch: Sequence[ArchiveImage],
                       indices: list[int]) -> dict[int, Outcome]:
        """The same-size images ``batch[indices]`` predicted together, then each written and published."""
        items = [batch[index] for index in indices]
        try:
            predictions = self.predictor.predict_batch(np.stack([item.image for item in items]), segmenter.fields,
                                                       self.job.settings.rule)
        except IMAGE_ERRORS as error:
            return {index: Outcome.failed(item.path, error) for index, item in zip(indices, items, strict=True)}
        return {index: self._publish(scratch, item, functools.partial(segmenter.write_whole, item.path, item.image,
                                                                      prediction))
                for index, item, prediction in zip(indices, items, predictions, strict=True)}

    def _publish(self, scratch: str, item: ArchiveImage, work: Callable[[], Segmented]) -> Outcome:
        """Run ``work`` (which writes the image's files into ``scratch``) and publish the files."""
        plan = self.job.planned_files(item.path)
        try:
            work()
            publish(scratch, plan)
        except IMAGE_ERRORS as error:
            return Outcome.failed(item.path, error)
        return Outcome(item.path, tuple(plan.values()), item.image.shape[0] * item.image.shape[1])


class SegmentHandler(ModelHandler[ArchiveImage, Outcome, ArchiveSegmenter]):
    """Loads the job's model once per worker process and segments batches of at most ``batch_size`` images."""

    def __init__(self, job: ArchiveJob):
        super().__init__(max_batch_size=job.settings.batch_size)
        self.job = job

    def load_model(self) -> ArchiveSegmenter:
        """The worker's Predictor, built from the job's checkpoint."""
        return ArchiveSegmenter(self.job)

    def run_inference(self, batch: Sequence[ArchiveImage], model: ArchiveSegmenter,
                      inference_args: dict | None = None) -> list[Outcome]:
        """Segment and publish ``batch``: one Outcome per image, in order."""
        return model.segment_batch(batch)

    def get_num_bytes(self, batch: Sequence[ArchiveImage]) -> int:
        """The decoded pixels' bytes (what Beam reports as the data's size)."""
        return sum(item.image.nbytes for item in batch)

    def get_metrics_namespace(self) -> str:
        """Beam's RunInference counters go beside the archive's own."""
        return METRICS_NAMESPACE
