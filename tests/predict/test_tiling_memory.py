"""Memory of prediction, measured in processes of its own: a 6144x8192 RGB image through Light-Weight RefineNet
ResNet-50 (21 classes) in tiles stays within 4 GiB. That the estimate behind ``tile='auto'`` bounds what a whole
image really takes is tested with the memory-estimate benchmark (``tests/predict/test_inference_graph.py``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from refinenet_tf.description import default_description
from refinenet_tf.models.model import build_model
from tests.support.scripts import REPO, script_environment

PEAK_LIMIT_MB = 4096

v1 = tf.compat.v1

PREDICT = textwrap.dedent("""
    import sys
    import numpy as np
    from refinenet_tf.predict.predictor import Predictor

    height, width = int(sys.argv[2]), int(sys.argv[3])
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    with Predictor(sys.argv[1], threads=2) as predictor:
        labels = predictor.predict_tiled(image, (1024, 1024), overlap=0.0).labels()
    assert labels.shape == (height, width)
    status = open("/proc/self/status").read().splitlines()
    print(next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")))
""")
TARGET = (6144, 8192)
MEASURED = ((2048, 2048), (2048, 4096))  # 4 and 8 windows of 1024x1024, where the target has 48
IMAGE_AND_LABEL_BYTES = 7  # per pixel: the RGB uint8 image and its int32 labels


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
    """The peak of tiled prediction is the window's work plus buffers that grow with the image: measured at two
    sizes in fresh processes, the growth per pixel carries the peak to 6144x8192 (a quarter of the windows)."""
    model = _random_model(tmp_path, "lw-refinenet-resnet50")
    (small, large) = [float(_run(PREDICT, model, str(height), str(width))) for height, width in MEASURED]
    pixels = [height * width for height, width in MEASURED]
    # the image and its labels (7 bytes a pixel) grow with it at least; a peak's noise (tens of MiB from run to run)
    # can hide that much growth between the two sizes, and even reverse it
    per_pixel = max((large - small) / (pixels[1] - pixels[0]), IMAGE_AND_LABEL_BYTES / 2**20)
    projected = max(small, large) + per_pixel * (TARGET[0] * TARGET[1] - pixels[1])
    assert projected <= PEAK_LIMIT_MB, f"projected peak {projected:.0f} MiB (measured {small:.0f}, {large:.0f} MiB)"
