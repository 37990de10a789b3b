"""The progress line of long work: rate, ETA, throttling, and the final line."""

import io

from refinenet_tf.progress import Progress


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_line_rate_eta_and_throttling():
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress(120, "evaluate", stream=stream, min_interval=1.0, clock=clock)
    clock.now += 10.0
    progress.update(30)  # 3.0 img/s, 90 left -> 30 s
    clock.now += 0.5
    progress.update(1)  # too soon: not shown
    clock.now += 0.5
    progress.update(1)
    progress.close()
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "evaluate  30/120  3.0 img/s  ETA 0:00:30"
    assert lines[1].startswith("evaluate  32/120  2.9 img/s  ETA 0:00:3")
    assert lines[2] == "evaluate  32/120  2.9 img/s  done in 0:00:11"
    assert len(lines) == 3


def test_progress_with_unknown_total():
    clock, stream = FakeClock(), io.StringIO()
    with Progress(None, "predict", unit="batch", stream=stream, min_interval=0.0, clock=clock) as progress:
        clock.now += 2.0
        progress.update(5)
    assert stream.getvalue().splitlines() == ["predict  5  2.5 batch/s", "predict  5  2.5 batch/s  done in 0:00:02"]
