"""Exceptions that carry a one-line, user-facing message.

Scripts catch :class:`RefineNetError` and print its message instead of a traceback, so every
message must say which file, line or parameter is wrong and what to do about it.

A message names a parameter through :func:`parameter` (``f"{parameter('batch_size')} must be ..."``). The
library renders it as the Python name (``batch_size``, what an API caller passed); the command line renders
it as its flag (``--batch-size``) with :meth:`RefineNetError.render`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_PARAMETER = re.compile(r"\{parameter:(\w+)\}")


def parameter(name: str) -> str:
    """A placeholder for the parameter ``name`` inside an error message."""
    return f"{{parameter:{name}}}"


class RefineNetError(Exception):
    """Base class for errors caused by the user's input rather than by a bug."""

    def render(self, name_of: Callable[[str], str]) -> str:
        """The message with every parameter written as ``name_of(parameter)``."""
        return _PARAMETER.sub(lambda match: name_of(match.group(1)), super().__str__())

    def __str__(self) -> str:
        return self.render(lambda name: name)


class DataError(RefineNetError):
    """A list file, image or mask cannot be used."""


class DescriptionError(RefineNetError):
    """A model description (model.json) is missing, malformed or disagrees with the flags."""


class CheckpointError(RefineNetError):
    """A checkpoint is missing or does not fit the model being built."""


class WeightsError(RefineNetError):
    """A weight file cannot be converted: wrong format, architecture or class count."""


class ConfigError(RefineNetError):
    """An argument has a value that is not allowed."""


class TrainingError(RefineNetError):
    """Training cannot go on (e.g. the loss became non-finite); the message names the step."""


class QuantizationError(RefineNetError):
    """int8 quantization cannot meet its accuracy tolerance; the message says the best it reached."""
