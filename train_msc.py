import sys

from refinenet_tf.cli.common import run
from refinenet_tf.cli.train_msc import main

sys.exit(run(main))
