"""Evaluate a checkpoint at several input scales (DeepLab's evaluate_msc.py); see ``--help``."""

import sys

from refinenet_tf.cli.common import run
from refinenet_tf.cli.evaluate import main

sys.exit(run(main))
