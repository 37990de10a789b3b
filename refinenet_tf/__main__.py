import sys

from refinenet_tf.cli import main

sys.exit(main())
