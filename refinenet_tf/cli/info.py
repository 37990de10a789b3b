"""``info``: this machine (CPU features, oneDNN, GPUs, what ``--precision auto`` picks and why), then the
parameter count, multiply-adds and output shape of each architecture asked for, as one JSON line each."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from refinenet_tf.architectures import ARCHITECTURES
from refinenet_tf.cli import flags
from refinenet_tf.defaults import DEFAULT_ARCH, NUM_CLASSES
from refinenet_tf.description import default_description
from refinenet_tf.hardware import machine_summary


def model_info(arch: str, num_classes: int, input_size: tuple[int, int]) -> dict:
    """Build ``arch`` for one ``input_size`` image and describe it."""
    import tensorflow as tf  # deferred: --help needs no TensorFlow

    from refinenet_tf.models.complexity import count_multiply_adds, count_parameters  # deferred: TensorFlow
    from refinenet_tf.models.model import build_model  # deferred: TensorFlow

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [1, *input_size, 3], name="images")
        output = build_model(images, default_description(arch, num_classes))
        parameters = count_parameters(tf.compat.v1.global_variables())
        multiply_adds = count_multiply_adds(graph)
    return {
        "arch": arch,
        "num_classes": num_classes,
        "input_size": list(input_size),
        "parameters": parameters,
        "parameters_m": round(parameters / 1e6, 2),
        "multiply_adds_g": round(multiply_adds / 1e9, 2),
        "output_shape": output.logits.shape.as_list(),
        "end_points": {name: output.end_points[name].shape.as_list() for name in ("l1", "l2", "l3", "l4")},
    }


def build_parser() -> argparse.ArgumentParser:
    parser = flags.new_parser("python -m refinenet_tf info", __doc__)
    parser.add_argument("--arch", choices=[*ARCHITECTURES, "all"], default=DEFAULT_ARCH,
                        help="architecture, or 'all' for one line per architecture")
    parser.add_argument("--num-classes", type=int, default=NUM_CLASSES)
    parser.add_argument("--input-size", type=flags.parse_size, default=(468, 625), help="HEIGHT,WIDTH (default 468,625)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    print(json.dumps({"machine": machine_summary()}), flush=True)
    arches = list(ARCHITECTURES) if args.arch == "all" else [args.arch]
    for arch in arches:
        print(json.dumps(model_info(arch, args.num_classes, args.input_size)), flush=True)
