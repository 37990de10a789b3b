import sys

from refinenet_tf.cli.common import run
from refinenet_tf.cli.train import main

sys.exit(run(main))
