"""Memory of prediction, measured in a process of its own: a 6144x8192 RGB image through Light-Weight RefineNet
ResNet-50 (21 classes) in tiles stays within 4 GiB, and the estimate behind ``tile='auto'`` stays above what a
whole image really takes, without overstating it much."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from refinenet_tf.description import default_description
from refinenet_tf.models.memory import prediction_bytes_per_pixel
from refinenet_tf.models.model import build_model
from refinenet_tf.models.prediction import PredictOptions
from tests.support.scripts import REPO, script_environment

PEAK_LIMIT_MB = 4096

v1 = tf.compat.v1

PREDICT = textwrap.dedent("""
    import sys
    import numpy as np
    from refinenet_tf.evaluate.predict import Predictor

    image = np.random.default_rng(0).integers(0, 256, (6144, 8192, 3), dtype=np.uint8)
    with Predictor(sys.argv[1], threads=2) as predictor:
        # no overlap: the peak depends on the window, not on how many windows there are
        labels = predictor.predict_tiled(image, (1024, 1024), overlap=0.0).labels()
    assert labels.shape == (6144, 8192)
    status = open("/proc/self/status").read().splitlines()
    print(next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmHWM:")))
""")


# Whole-image prediction: how much the peak resident memory rises over the loaded model's (bytes per pixel).
PREDICT_WHOLE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from refinenet_tf.evaluate.predict import Predictor
    from refinenet_tf.models.prediction import PredictOptions

    def status_kib(field):
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))

    side, options = int(sys.argv[2]), PredictOptions(**json.loads(sys.argv[3]))
    with Predictor(sys.argv[1], options=options, threads=2) as predictor:
        predictor.predict(np.zeros((64, 64, 3), np.uint8))  # kernels chosen, weights in memory
        before = status_kib("VmRSS:")
        predictor.predict(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8))
    print((status_kib("VmHWM:") - before) * 1024 / side**2)
""")


def _random_model(directory, arch: str) -> str:
    description = default_description(arch, 21)
    with tf.Graph().as_default(), v1.Session() as session:
        build_model(v1.placeholder(tf.float32, [1, None, None, 3]), description)
        session.run(v1.global_variables_initializer())
        v1.train.Saver().save(session, str(directory / "model.ckpt"), global_step=1, write_meta_graph=False)
    description.save(str(directory))
    return str(directory)


def _run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True,
                          env=dict(script_environment(), PYTHONPATH=str(REPO)), timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()[-1]


@pytest.mark.slow
def test_a_6144x8192_image_through_lw_resnet50_stays_within_4_gib(tmp_path):
    peak_mb = int(_run(PREDICT, _random_model(tmp_path, "lw-refinenet-resnet50")))
    assert peak_mb <= PEAK_LIMIT_MB, f"peak resident memory {peak_mb} MiB"


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, {"scales": [1.0, 0.75, 0.5], "fusion": "max", "flip": True}],
                         ids=["one-scale", "three-scales-flip"])
def test_the_auto_tile_estimate_bounds_a_whole_image_prediction(tmp_path, options):
    arch = "lw-refinenet-mobilenetv2"
    real = float(_run(PREDICT_WHOLE, _random_model(tmp_path, arch), "1024", json.dumps(options)))
    estimate = prediction_bytes_per_pixel(default_description(arch, 21), PredictOptions(**options))
    # measured 1.4-1.8x (oneDNN on and off); the sum of every activation, used before, was 8-11x
    assert real <= estimate <= 3 * real, f"estimate {estimate:.0f} B/px, real {real:.0f} B/px"
