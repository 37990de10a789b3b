"""What every worker of an archive run needs: the model, the prediction settings and where the files go."""

from __future__ import annotations

import os
from dataclasses import dataclass

from apache_beam.io.filesystems import FileSystems

from refinenet_tf.description import ModelDescription
from refinenet_tf.predict.graph import SINGLE_SCALE, PredictOptions
from refinenet_tf.predict.outputs import image_stem, logits_path, prediction_names
from refinenet_tf.predict.probability_files import probability_paths
from refinenet_tf.predict.segment import SegmentSettings

# The name --save-logits gets in a worker's scratch folder (the logits file then follows inference.py's naming).
SCRATCH_LOGITS = "logits.npy"


@dataclass(frozen=True)
class ArchiveJob:
    """One archive run, sent to every worker: ``checkpoint`` (a prefix) with its ``description``, how to predict,
    and the ``output`` folder (local or any Beam file system). ``several`` names logits files by image stem, as
    ``inference.py`` does for a run over several images."""

    checkpoint: str
    description: ModelDescription
    output: str
    settings: SegmentSettings = SegmentSettings()
    options: PredictOptions = SINGLE_SCALE
    several: bool = True
    threads: int | None = None
    precision: str = "float32"

    def planned_files(self, path: str) -> dict[str, str]:
        """The files the image ``path`` gets: name in a worker's scratch folder -> destination, index mask first."""
        stem = image_stem(path)
        names = prediction_names(stem)
        if self.settings.probability_format:
            names += [os.path.basename(name) for name in probability_paths("", stem, self.description.names(),
                                                                           self.settings.probability_format)]
        plan = {name: FileSystems.join(self.output, name) for name in names}
        if self.settings.save_logits:
            named_by = stem if self.several else None
            plan[logits_path(SCRATCH_LOGITS, named_by)] = logits_path(self.settings.save_logits, named_by)
        return plan
