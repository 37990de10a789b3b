"""``demo``: train, evaluate and paint predictions on a built-in procedural data set (no download).

One command generates the scenes, converts their colour masks, trains a Light-Weight RefineNet
(MobileNet-v2) from random weights, evaluates it on held-out scenes and writes results.json,
coloured predictions and comparison.png under --output-dir.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from refinenet_tf.cli import flags
from refinenet_tf.demo import DEFAULT_OUTPUT_DIR, SEED, DemoSettings, run_demo


def build_parser() -> argparse.ArgumentParser:
    parser = flags.new_parser("python -m refinenet_tf demo", __doc__.splitlines()[0], [
        "python -m refinenet_tf demo", "python -m refinenet_tf demo --quick --output-dir demo_quick/"])
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                        help="where data, snapshots, predictions, results.json and comparison.png go "
                             "(default %(default)s)")
    parser.add_argument("--num-steps", type=int, default=None,
                        help=f"training steps (default {DemoSettings().num_steps}; fewer are faster and score lower)")
    flags.add_alias(parser, "--steps", "--num-steps", type=int)
    parser.add_argument("--random-seed", type=int, default=SEED,
                        help="seed of the scenes and the training (default %(default)s)")
    flags.add_alias(parser, "--seed", "--random-seed", type=int)
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra- and inter-op threads (default: TensorFlow's choice)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny data and a few steps: checks the pipeline in seconds, the scores mean nothing")
    parser.add_argument("--publish-picture", default=None, metavar="PATH", help="also copy comparison.png to PATH")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    """Entry point of ``python -m refinenet_tf demo``."""
    args = build_parser().parse_args(argv)
    return run_demo(args.output_dir, args.num_steps, args.random_seed, args.threads, args.quick,
                    args.publish_picture)
