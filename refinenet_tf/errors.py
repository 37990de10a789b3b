"""Exceptions that carry a one-line, user-facing message.

Scripts catch :class:`RefineNetError` and print its message instead of a traceback, so every
message must say which file, line or flag is wrong and what to do about it.
"""


class RefineNetError(Exception):
    """Base class for errors caused by the user's input rather than by a bug."""


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
