"""Segment images: ``python inference.py IMAGE CKPT`` writes coloured masks into ./output/; see ``--help``."""

import sys

from refinenet_tf.cli.common import run
from refinenet_tf.cli.infer import main

sys.exit(run(main))
