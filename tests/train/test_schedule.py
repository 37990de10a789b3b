"""Poly decay and the three-stage Light-Weight schedule."""

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.errors import ConfigError
from refinenet_tf.train.schedule import PolySchedule, StagedSchedule, make_schedule


def test_poly_rate_follows_deeplab_formula_in_python_and_graph():
    schedule = make_schedule("poly", 2.5e-4, 20001, 0.9)
    for step in (0, 1, 10000, 20000):
        expected = 2.5e-4 * (1 - step / 20001) ** 0.9
        assert schedule.rate_at(step) == pytest.approx(expected)
        assert float(schedule.rate(tf.constant(step, tf.int64))) == pytest.approx(expected, rel=1e-5)
    assert schedule.rate_at(0) == 2.5e-4
    assert schedule.rate_at(20001) == 0.0 and schedule.rate_at(30000) == 0.0
    assert schedule.stage_starts == ()


def test_three_stage_schedule_splits_steps_evenly_with_light_weight_rates():
    schedule = make_schedule("lw-3stage", 5e-4, 300)
    assert isinstance(schedule, StagedSchedule)
    assert schedule.stage_starts == (100, 200)
    rates = {step: schedule.rate_at(step) for step in (0, 99, 100, 199, 200, 299)}
    np.testing.assert_allclose(list(rates.values()), [5e-4, 5e-4, 2.5e-4, 2.5e-4, 1e-4, 1e-4])
    for step, rate in rates.items():
        assert float(schedule.rate(tf.constant(step, tf.int64))) == pytest.approx(rate, rel=1e-6)


def test_explicit_stage_starts_and_bad_values_are_checked():
    schedule = StagedSchedule(1.0, 50, factors=(1.0, 0.5), stage_starts=(10,))
    assert [schedule.stage_of(step) for step in (0, 9, 10, 49)] == [0, 0, 1, 1]
    with pytest.raises(ConfigError, match="stage starts"):
        StagedSchedule(1.0, 50, factors=(1.0, 0.5, 0.2), stage_starts=(30, 10))
    with pytest.raises(ConfigError, match="unknown schedule"):
        make_schedule("cosine", 1.0, 10)
    with pytest.raises(ConfigError, match="num_steps must be at least 1"):
        make_schedule("poly", 1.0, 0)
    assert PolySchedule(1.0, 4, 1.0).rate_at(2) == 0.5
