"""Publishing one image's files so that a reader, a killed worker or a restart never sees a partial one.

Each file is copied from the worker's scratch folder to a hidden ``.tmp-...`` name beside its destination and then
renamed into place, the index mask last. A restart (see :func:`is_complete`) redoes every image whose planned
files are not all there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Mapping

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from refinenet_tf.errors import ConfigError
from refinenet_tf.files import temporary_name


def is_complete(destinations: Iterable[str]) -> bool:
    """True when every one of ``destinations`` exists."""
    return all(FileSystems.exists(path) for path in destinations)


def publish(scratch: str, plan: Mapping[str, str]) -> None:
    """Move the files of ``plan`` (name in the local folder ``scratch`` -> destination) into place, the first
    (the index mask) last."""
    items = list(plan.items())
    for name, destination in items[1:] + items[:1]:
        _publish_file(os.path.join(scratch, name), destination)


def _publish_file(local: str, destination: str) -> None:
    folder, name = FileSystems.split(destination)
    temporary = FileSystems.join(folder, temporary_name(name))
    try:
        with open(local, "rb") as source, FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as target:
            shutil.copyfileobj(source, target)
        FileSystems.rename([temporary], [destination])
    except Exception as error:  # Beam's file systems raise their own error types
        with contextlib.suppress(Exception):  # the temporary file may not exist; the first error is the one to tell
            FileSystems.delete([temporary])
        raise ConfigError(f"{destination}: cannot write ({' '.join(str(error).split())})") from None
