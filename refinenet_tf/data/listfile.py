"""DeepLab-style list files: one ``image [mask]`` pair per line, paths relative to ``--data-dir``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from refinenet_tf.errors import DataError, parameter

T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    """One line of a list file: an image, its mask (None for unlabeled lists) and where it was listed."""

    image_path: str
    mask_path: str | None
    list_path: str
    line_number: int

    @property
    def origin(self) -> str:
        """``list.txt:12``: where this sample was listed, for error messages."""
        return f"{self.list_path}:{self.line_number}"


def read_list_file(data_dir: str, list_path: str, require_masks: bool = True) -> list[Sample]:
    """Parse a list file into samples, checking every referenced file exists inside ``data_dir``.

    Fields are separated by spaces or tabs. A field is appended to ``data_dir`` as DeepLab does
    (``/JPEGImages/x.jpg``), whether or not it starts with ``/``. Blank lines and ``#`` comments are
    skipped. Image-only lines are allowed when ``require_masks`` is False; a list must not mix
    labeled and unlabeled lines.
    """
    lines = _read_lines(list_path)
    samples: list[Sample] = []
    for line_number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{list_path}:{line_number}"
        if len(fields) > 2:
            raise DataError(
                f"{where}: expected 'image mask' or 'image', found {len(fields)} fields: {line.strip()!r}"
            )
        if len(fields) == 1 and require_masks:
            raise DataError(f"{where}: no mask path for {fields[0]!r} (each line needs 'image mask')")
        if samples and (len(fields) == 2) != (samples[0].mask_path is not None):
            has_mask = len(fields) == 2
            raise DataError(
                f"{where}: this line {'has a mask' if has_mask else 'has no mask'} but line "
                f"{samples[0].line_number} {'does not' if has_mask else 'does'}; "
                "a list must be all 'image mask' lines or all 'image' lines"
            )
        image_path = _resolve(data_dir, fields[0], where)
        mask_path = _resolve(data_dir, fields[1], where) if len(fields) == 2 else None
        samples.append(Sample(image_path, mask_path, list_path, line_number))
    if not samples:
        raise DataError(f"{list_path}: the list file holds no samples")
    return samples


def spread_over(items: Sequence[T], count: int) -> list[T]:
    """Up to ``count`` of ``items`` taken at even steps from the first, so that a sorted list is covered end to end."""
    return list(items)[:: max(1, len(items) // count)][:count]


def _read_lines(list_path: str) -> list[str]:
    if not os.path.isfile(list_path):
        problem = "is a directory, not a list file" if os.path.isdir(list_path) else "list file not found"
        raise DataError(f"{list_path}: {problem} (check {parameter('data_list')})")
    try:
        with open(list_path, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except UnicodeDecodeError as error:
        raise DataError(
            f"{list_path}: not a UTF-8 text list file ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise DataError(f"{list_path}: cannot read the list file ({error.strerror})") from None


def _resolve(data_dir: str, field: str, where: str) -> str:
    """``data_dir`` + field, refusing paths that leave ``data_dir`` and files that do not exist."""
    root = os.path.abspath(data_dir)
    path = os.path.normpath(os.path.join(root, field.lstrip("/")))
    if os.path.commonpath([root, path]) != root:
        raise DataError(f"{where}: {field!r} points outside the data directory {data_dir}")
    if not os.path.isfile(path):
        raise DataError(f"{where}: {path} does not exist (check {parameter('data_dir')} {data_dir})")
    return path
