"""The images of an archive: a file pattern, folder or list file expanded once at launch, and one image read
through Beam's file systems (local paths, ``gs://``, ``s3://``...)."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
from apache_beam.io.filesystems import FileSystems

from refinenet_tf.data.images import images_named_by, load_model_image
from refinenet_tf.description import Preprocessing
from refinenet_tf.errors import DataError
from refinenet_tf.predict.outputs import check_unique_stems


def archive_images(source: str, data_dir: str | None = None) -> list[str]:
    """The images ``source`` names, sorted as given: a local image, folder or DeepLab list file (as
    ``inference.py`` reads them), else a file pattern (``tiles/*.png``, ``gs://bucket/scans/*.tif``) matched by
    Beam. Refuses images whose outputs would share a name."""
    images = images_named_by(source, data_dir) if is_local(source) and os.path.exists(source) else _matched(source)
    check_unique_stems(images)
    return images


def is_local(path: str) -> bool:
    """True for a path on this machine's file system (no ``scheme://``)."""
    return FileSystems.get_scheme(path) in (None, "file")


def _matched(pattern: str) -> list[str]:
    try:
        matches = FileSystems.match([pattern])[0].metadata_list
    except Exception as error:  # Beam raises its own error types per file system
        raise DataError(f"{pattern}: cannot list the images ({' '.join(str(error).split())})") from None
    if not matches:
        raise DataError(f"{pattern}: matches no file")
    return sorted(metadata.path for metadata in matches)


def read_image(path: str, preprocessing: Preprocessing) -> np.ndarray:
    """The image at ``path`` as ``inference.py`` reads it for a model with this input ``preprocessing``; a remote
    one is copied to a local file first, and an error still names ``path``."""
    if is_local(path):
        return load_model_image(path, preprocessing)
    with tempfile.TemporaryDirectory(prefix="refinenet-image-") as scratch:
        local = os.path.join(scratch, os.path.basename(path))
        try:
            with FileSystems.open(path) as source, open(local, "wb") as target:
                shutil.copyfileobj(source, target)
        except Exception as error:  # Beam raises its own error types per file system
            raise DataError(f"{path}: cannot read the file ({' '.join(str(error).split())})") from None
        try:
            return load_model_image(local, preprocessing)
        except DataError as error:
            raise DataError(str(error).replace(local, path)) from None
