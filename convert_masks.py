"""Convert masks to index PNGs or prepare a data set's list files: see ``convert_masks.py --help``."""
import sys

from refinenet_tf.cli.common import run
from refinenet_tf.cli.convert_masks import main

sys.exit(run(main))
