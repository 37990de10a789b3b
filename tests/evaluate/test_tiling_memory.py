"""A 6144x8192 RGB image through Light-Weight RefineNet ResNet-50 (21 classes) in tiles stays within 4 GiB."""

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
    from refinenet_tf.evaluate.predict import Predictor

    image = np.random.default_rng(0).integers(0, 256, (6144, 8192, 3), dtype=np.uint8)
    with Predictor(sys.argv[1], threads=2) as predictor:
        # no overlap: the peak depends on the window, not on how many windows there are
        labels = predictor.predict_tiled(image, (1024, 1024), overlap=0.0).labels()
    assert labels.shape == (6144, 8192)
    status = open("/proc/self/status").read().splitlines()
    print(next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmHWM:")))
""")


@pytest.mark.slow
def test_a_6144x8192_image_through_lw_resnet50_stays_within_4_gib(tmp_path):
    description = default_description("lw-refinenet-resnet50", 21)
    with tf.Graph().as_default(), v1.Session() as session:
        build_model(v1.placeholder(tf.float32, [1, None, None, 3]), description)
        session.run(v1.global_variables_initializer())
        v1.train.Saver().save(session, str(tmp_path / "model.ckpt"), global_step=1, write_meta_graph=False)
    description.save(str(tmp_path))
    done = subprocess.run([sys.executable, "-c", PREDICT, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          env=dict(script_environment(), PYTHONPATH=str(REPO)), timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    peak_mb = int(done.stdout.split()[-1])
    assert peak_mb <= PEAK_LIMIT_MB, f"peak resident memory {peak_mb} MiB"
