"""Evaluate a checkpoint with and without dense-CRF refinement; see ``--help``."""

import sys

from refinenet_tf.cli.common import run
from refinenet_tf.cli.evaluate_crf import main

sys.exit(run(main))
