"""The memory estimate behind ``--tile auto`` against what whole-image prediction really takes.

Each (architecture, options, size) predicts one random image whole in a process of its own, after a small image
has loaded the model; "real" is the rise of its peak resident memory (VmHWM) over the resident memory before the
image, per image pixel. "estimate" is :func:`refinenet_tf.models.memory.prediction_bytes_per_pixel`, and "every
activation" the sum of every tensor of the same graph that the estimate used before (kept for comparison).
Without ``--checkpoint`` the weights are a random initialisation (memory does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np
from bench_inference import random_checkpoint
from common import (
    base_parser,
    machine_info,
    markdown_table,
    peak_rss_mb,
    resident_mb,
    run_workers,
    write_section,
)

OPTIONS = {"one scale": {}, "3 scales + flip": {"scales": [1.0, 0.75, 0.5], "fusion": "max", "flip": True}}
NUM_CLASSES = 21


def parse_args(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--archs", default="lw-refinenet-resnet50,lw-refinenet-mobilenetv2,refinenet-resnet101")
    parser.add_argument("--sides", help="comma-separated sides of the square images (default 1024,2048; "
                                         "256 with --quick)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # arch:options:side
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.archs = "lw-refinenet-mobilenetv2"
    args.sides = args.sides or ("256" if args.quick else "1024,2048")
    return args


def worker(args) -> dict:
    """Bytes per pixel that predicting one image whole adds to this process's peak resident memory."""
    from refinenet_tf.predict.graph import PredictOptions
    from refinenet_tf.predict.predictor import Predictor

    _, options, side = args.worker.split(":")
    side = int(side)
    with Predictor(args.weights, options=PredictOptions(**OPTIONS[options]), threads=args.threads) as predictor:
        predictor.predict(np.zeros((64, 64, 3), np.uint8))  # kernels chosen, weights in memory
        before = resident_mb()
        predictor.predict(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8))
        return {"real": (peak_rss_mb() - before) * 2**20 / side**2}


def estimates(arch: str, options: str) -> tuple[float, float]:
    """(the estimate, every activation's bytes) per pixel of ``arch``'s prediction graph with ``options``."""
    from refinenet_tf.description import default_description
    from refinenet_tf.models.memory import (
        REFERENCE_SIDE,
        forward_activation_bytes,
        prediction_bytes_per_pixel,
        reference_prediction_graph,
    )
    from refinenet_tf.predict.graph import PredictOptions

    description, predict_options = default_description(arch, NUM_CLASSES), PredictOptions(**OPTIONS[options])
    every = forward_activation_bytes(reference_prediction_graph(description, predict_options)) / REFERENCE_SIDE**2
    return prediction_bytes_per_pixel(description, predict_options), every


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps([worker(args)]))
        return
    from refinenet_tf.defaults import AUTO_TILE_MEMORY_FRACTION
    from refinenet_tf.description import default_description
    from refinenet_tf.models.memory import physical_memory_bytes

    memory = physical_memory_bytes()
    budget = memory * AUTO_TILE_MEMORY_FRACTION
    rows = []
    for arch in args.archs.split(","):
        with tempfile.TemporaryDirectory() as directory:
            description = default_description(arch, NUM_CLASSES)
            random_checkpoint(description, directory)
            description.save(directory)
            for options in OPTIONS:
                estimate, every = estimates(arch, options)
                workers = [f"{arch}:{options}:{side}" for side in args.sides.split(",")]
                for name, result in zip(workers, run_workers(__file__, [*args.argv, "--weights", directory],
                                                             workers), strict=True):
                    side = name.rsplit(":", 1)[1]
                    real = result["real"]
                    rows.append([arch, options, f"{side}x{side}", f"{real:.0f}", f"{estimate:.0f}",
                                 f"{estimate / real:.2f}", f"{every:.0f} ({every / real:.0f}x)",
                                 f"{budget / estimate / 1e6:.1f}"])
    table = markdown_table(["model", "prediction", "image", "real B/px", "estimate B/px", "estimate / real",
                            "every activation B/px", "whole up to (Mpx)"], rows)
    body = "\n".join([machine_info(args, timed=False),
                      f"- {NUM_CLASSES} classes, float32, labels, probabilities and logits fetched; 'whole up to' is "
                      f"the largest image `--tile auto` predicts whole here ({AUTO_TILE_MEMORY_FRACTION:g} of "
                      f"{memory / 2**30:.1f} GiB)", "", table])
    write_section(args.output, "memory-estimate", "Memory estimate of --tile auto", body,
                  tag=f"onednn{os.environ['TF_ENABLE_ONEDNN_OPTS']}" if "TF_ENABLE_ONEDNN_OPTS" in os.environ else None)
    print(body)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
