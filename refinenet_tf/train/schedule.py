"""Learning-rate schedules: DeepLab's poly decay and Light-Weight RefineNet's three stages.

A schedule gives the base (backbone) learning rate of update ``step`` (0-based) as a graph op and as a
number, and the steps where a new stage begins; the trainer resets the optimiser's momentum there, which
is what rebuilding the optimisers each stage amounts to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import tensorflow as tf

from refinenet_tf.errors import ConfigError, parameter

SCHEDULES = ("poly", "lw-3stage")
# Light-Weight RefineNet's encoder rates 5e-4, 2.5e-4, 1e-4, relative to the first stage.
LW_STAGE_FACTORS = (1.0, 0.5, 0.2)


@dataclass(frozen=True)
class PolySchedule:
    """``base * (1 - step / num_steps) ** power`` (0 from ``num_steps`` on)."""

    base: float
    num_steps: int
    power: float = 0.9
    stage_starts: ClassVar[tuple[int, ...]] = ()

    def rate_at(self, step: int) -> float:
        """The learning rate of update ``step``."""
        return self.base * max(0.0, 1.0 - step / self.num_steps) ** self.power

    def rate(self, step: tf.Tensor) -> tf.Tensor:
        """Graph op: the learning rate of update ``step`` (an integer tensor such as the global step)."""
        fraction = tf.cast(step, tf.float64) / float(self.num_steps)
        return tf.cast(self.base * tf.pow(tf.maximum(1.0 - fraction, 0.0), self.power), tf.float32)


@dataclass(frozen=True)
class StagedSchedule:
    """Constant rate within each stage, ``base * factors[i]`` in stage ``i``; stages split ``num_steps`` evenly
    unless ``stage_starts`` (the first step of stages 2, 3, ...) is given."""

    base: float
    num_steps: int
    factors: tuple[float, ...] = LW_STAGE_FACTORS
    stage_starts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.stage_starts:
            count = len(self.factors)
            starts = tuple(round(self.num_steps * i / count) for i in range(1, count))
            object.__setattr__(self, "stage_starts", starts)
        if len(self.stage_starts) != len(self.factors) - 1 or list(self.stage_starts) != sorted(self.stage_starts):
            raise ConfigError(f"{len(self.factors)} stages need {len(self.factors) - 1} increasing stage starts, "
                              f"got {self.stage_starts}")

    def stage_of(self, step: int) -> int:
        """0-based stage of update ``step``."""
        return sum(step >= start for start in self.stage_starts)

    def rate_at(self, step: int) -> float:
        return self.base * self.factors[self.stage_of(step)]

    def rate(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.int64)
        stage = tf.add_n([tf.cast(step >= start, tf.int32) for start in self.stage_starts]) if self.stage_starts \
            else tf.constant(0)
        return tf.gather(tf.constant([self.base * f for f in self.factors], tf.float32), stage)


Schedule = PolySchedule | StagedSchedule


def make_schedule(name: str, base: float, num_steps: int, power: float = 0.9) -> Schedule:
    """The schedule selected by ``--schedule``."""
    if num_steps < 1:
        raise ConfigError(f"{parameter('num_steps')} must be at least 1, got {num_steps}")
    if name == "poly":
        return PolySchedule(base, num_steps, power)
    if name == "lw-3stage":
        return StagedSchedule(base, num_steps)
    raise ConfigError(f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")
